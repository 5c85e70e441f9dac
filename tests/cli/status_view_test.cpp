// `clickpipe status` (tools/cli/status_view.cpp): a fresh live status file wins over the saved
// record; a stale, broken, foreign or planted one does not; and the table a terminal shows.
#include "status_view.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>

#include "../expect.hpp"
#include "../files.hpp"
#include "clickpipe/store/file_store.hpp"
#include "control.hpp"
#include "telemetry.hpp"

namespace clickpipe::test {
namespace {

using nlohmann::json;
using std::chrono::seconds;
namespace fs = std::filesystem;

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

PipeRecord record(const std::string& id, State state) {
  PipeRecord r;
  r.id = id;
  r.lifecycle = Lifecycle::restore(state, LifecycleContext{});
  r.intent = state == State::Paused ? Intent::Paused : Intent::Running;
  r.since = TimePoint(std::chrono::milliseconds(1700000000000));
  r.tables = {{"public", "orders"}};
  r.confirmed = Lsn{0x16B374D848};
  return r;
}

PipeStatus status(const std::string& id) {
  PipeStatus s;
  s.id = id;
  s.state = State::Running;
  s.tables = {{"public", "orders"}};
  s.cdc.lag_bytes = 4096;
  s.cdc.changes = 10;
  return s;
}

// A store holding pipes a (Running) and b (Paused), with its status directory.
struct Store {
  fs::path root;
  std::string dir;
  fs::path live;

  Store() {
    static std::atomic<int> counter{0};
    root = fs::temp_directory_path() /
           ("clickpipe-status-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(root);
    fs::create_directories(root);
    fs::permissions(root, fs::perms::owner_all);
    dir = (root / "store").string();
    {
      auto store = FileStore::open(dir);
      store->save(record("a", State::Running));
      store->save(record("b", State::Paused));
    }
    live = cli::status_dir(dir);
    cli::make_private_dir(live, "status directory");
  }
  ~Store() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }

  // Publishes a's live document into `into` (default: the status directory) as of `at`.
  void publish_a(TimePoint at = std::chrono::system_clock::now(), fs::path into = {}) const {
    cli::Telemetry t;
    t.refresh({status("a")}, {}, at);
    ASSERT_EQ(t.publish(into.empty() ? live : into), "");
  }

  json pipe(const std::string& id) const {
    const json all = cli::read_status(dir, id);
    EXPECT_EQ(all.size(), 1u) << all.dump();
    return all.empty() ? json() : all[0];
  }
};

std::set<std::string> keys(const json& j) {
  std::set<std::string> out;
  for (const auto& [k, v] : j.items()) out.insert(k);
  return out;
}

TEST(StatusView, AFreshLiveFileWinsAndAPipeWithoutOneShowsItsRecord) {
  Store s;
  s.publish_a();
  const json all = cli::read_status(s.dir, std::nullopt);
  ASSERT_EQ(all.size(), 2u) << all.dump();
  const json& a = all[0];
  EXPECT_EQ(a["id"], "a");
  EXPECT_EQ(a["live"], true);
  EXPECT_EQ(a["cdc"]["lag_bytes"], 4096);
  EXPECT_TRUE(a["cdc"].contains("changes_per_s")) << a.dump();
  const json& b = all[1];
  EXPECT_EQ(keys(b), (std::set<std::string>{"id", "state", "intent", "tables", "confirmed",
                                            "stopped_tables", "last_error", "live"}))
      << b.dump();
  EXPECT_EQ(b["id"], "b");
  EXPECT_EQ(b["state"], "Paused");
  EXPECT_EQ(b["intent"], "paused");
  EXPECT_EQ(b["confirmed"], "16/B374D848");
  EXPECT_EQ(b["tables"], json::array({"public.orders"}));
  EXPECT_EQ(b["live"], false);
}

TEST(StatusView, AStaleLiveFileIsNotBelieved) {
  Store s;
  s.publish_a(std::chrono::system_clock::now() - seconds(30));  // the process stopped
  EXPECT_EQ(s.pipe("a")["live"], false);
  s.publish_a(std::chrono::system_clock::now() + seconds(60));  // a clock set back since
  EXPECT_EQ(s.pipe("a")["live"], false);
  s.publish_a();
  EXPECT_EQ(s.pipe("a")["live"], true);
}

TEST(StatusView, BrokenForeignOrPlantedLiveFilesAreNotRead) {
  Store s;
  const fs::path file = s.live / "a.json";
  const auto expect_record = [&](const char* what) {
    const json a = s.pipe("a");
    EXPECT_EQ(a["live"], false) << what << ": " << a.dump();
    EXPECT_EQ(a["state"], "Running") << what;
    fs::remove(file);
  };

  write_text(file, "{\"id\": \"a\", ");
  expect_record("broken JSON");
  write_text(file, "[1, 2]");
  expect_record("not an object");

  // A fresh document of another pipe, renamed to a's.
  {
    cli::Telemetry t;
    PipeStatus other = status("b");
    t.refresh({other}, {}, std::chrono::system_clock::now());
    ASSERT_EQ(t.publish(s.live), "");
    fs::rename(s.live / "b.json", file);
  }
  expect_record("another pipe's document");

  // A fresh, valid document of a's, but reached through a symlink.
  const fs::path elsewhere = s.root / "elsewhere";
  cli::make_private_dir(elsewhere, "test directory");
  s.publish_a(std::chrono::system_clock::now(), elsewhere);
  fs::create_symlink(elsewhere / "a.json", file);
  expect_record("symlink");

  // Valid and fresh again, padded past the cap with whitespace.
  write_text(file, slurp(elsewhere / "a.json") + std::string(cli::kMaxLiveStatusBytes, ' '));
  expect_record("oversized");

  ASSERT_EQ(::mkfifo(file.c_str(), 0600), 0);  // read_status must not wait for a writer
  expect_record("FIFO");
}

TEST(StatusView, AStatusDirectoryOthersMayWriteIsNotBelieved) {
  Store s;
  s.publish_a();
  fs::permissions(s.live, fs::perms::all);
  EXPECT_EQ(s.pipe("a")["live"], false);
  fs::permissions(s.live, fs::perms::owner_all);
  EXPECT_EQ(s.pipe("a")["live"], true);
}

TEST(StatusView, OnePipeByIdAndAnUnknownIdRefused) {
  Store s;
  EXPECT_EQ(s.pipe("b")["id"], "b");
  const auto e = expect_throws<std::runtime_error>([&] { cli::read_status(s.dir, "zzz"); });
  EXPECT_EQ(message(e), "no pipe 'zzz' in " + s.dir);
}

TEST(StatusView, BrokenRecordsAreListedByFileName) {
  Store s;
  write_text(fs::path(s.dir) / "c.json", "not a record");
  fs::copy_file(fs::path(s.dir) / "a.json", fs::path(s.dir) / "d.json");  // a's record, misplaced
  const json all = cli::read_status(s.dir, std::nullopt);
  ASSERT_EQ(all.size(), 4u) << all.dump();
  EXPECT_EQ(all[2]["file"], "c.json");
  EXPECT_TRUE(all[2]["broken"].is_string());
  EXPECT_EQ(all[3]["file"], "d.json");
  EXPECT_NE(all[3]["broken"].get<std::string>().find("holds pipe 'a'"), std::string::npos)
      << all[3].dump();
  EXPECT_EQ(s.pipe("c")["file"], "c.json");  // asked for by id: shown, not "no pipe"
  EXPECT_NE(cli::render_status_table(all).find("broken record c.json: "), std::string::npos);
}

TEST(StatusView, TheTableShowsLagRatesAndPerTableRows) {
  const json doc = json::parse(R"([{
    "id": "orders_to_ch", "state": "Running", "live": true,
    "tables": ["public.orders", "public.items"],
    "snapshot": [{"table": "public.orders", "planned": true, "partitions_done": 2,
                  "partitions_total": 4, "rows_copied": 1500, "estimated_rows": 8000,
                  "rows_per_s": 150.0, "eta_s": 65}],
    "cdc": {"confirmed": "0/16B3F00", "lag_bytes": 2048, "lag_seconds": 3.5,
            "changes_per_s": 12.5, "tables": [{"table": "public.orders", "changes": 42}]},
    "retry": {"operation": "cdc", "attempt": 2, "max_attempts": 5},
    "last_error": {"message": "boom\u001b[31m red\nnext line"},
    "stopped_tables": [{"table": "public.items", "reason": "column a was renamed"}]
  }])");
  const std::string out = cli::render_status_table(doc);
  for (const char* want : {"ID",
                           "STATE",
                           "LAG",
                           "CHANGES/S",
                           "CONFIRMED",
                           "RETRY",
                           "LAST ERROR",
                           "orders_to_ch",
                           "Running",
                           "2.0 KiB / 3.5s",
                           "12.5",
                           "0/16B3F00",
                           "cdc #2/5",
                           "boom?[31m red next line",
                           "TABLE",
                           "ROWS",
                           "PARTITIONS",
                           "ROWS/S",
                           "ETA",
                           "CDC CHANGES",
                           "public.orders",
                           "1500",
                           "2/4",
                           "150.0",
                           "1m05s",
                           "42",
                           "stopped public.items: column a was renamed"}) {
    EXPECT_NE(out.find(want), std::string::npos) << want << " in\n" << out;
  }
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
}

TEST(StatusView, TheTableOfSavedRecordsShowsDashes) {
  Store s;
  const std::string out = cli::render_status_table(cli::read_status(s.dir, std::nullopt));
  std::istringstream lines(out);
  std::string header, a, b;
  std::getline(lines, header);
  std::getline(lines, a);
  std::getline(lines, b);
  EXPECT_EQ(header.rfind("ID", 0), 0u) << out;
  EXPECT_EQ(a.rfind("a ", 0), 0u) << out;
  EXPECT_NE(a.find("Running"), std::string::npos) << out;
  EXPECT_NE(a.find(" - "), std::string::npos) << out;  // no lag known
  EXPECT_NE(a.find("16/B374D848"), std::string::npos) << out;
  EXPECT_NE(b.find("Paused"), std::string::npos) << out;
  EXPECT_NE(out.find("a (saved record"), std::string::npos) << out;
  EXPECT_NE(out.find("public.orders"), std::string::npos) << out;
}

TEST(StatusView, ALongErrorIsCutToTheLine) {
  const json doc = {{"id", "a"}, {"state", "Failed"}, {"last_error", std::string(500, 'x')}};
  const std::string out = cli::render_status_table(doc);
  std::istringstream lines(out);
  std::string header, line;
  std::getline(lines, header);
  std::getline(lines, line);
  EXPECT_LE(line.size(), 130u) << line;
  EXPECT_NE(line.find("xxx\xE2\x80\xA6"), std::string::npos) << line;
  EXPECT_EQ(cli::render_status_table(json::array()), "no pipes\n");
}

}  // namespace
}  // namespace clickpipe::test
