// The live figures of `clickpipe run` (tools/cli/telemetry.cpp): rates and ETAs from samples of
// synthetic statuses, the Prometheus text (checked line by line and against a golden file), and
// the status files it publishes.
#include "telemetry.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../files.hpp"
#include "clickpipe/lifecycle/state.hpp"
#include "clickpipe/version.hpp"
#include "control.hpp"

namespace clickpipe::test {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
namespace fs = std::filesystem;

const TimePoint kT0 = TimePoint(milliseconds(1'800'000'000'000));

TimePoint at(double secs) {
  return kT0 + std::chrono::round<TimePoint::duration>(std::chrono::duration<double>(secs));
}

PipeStatus pipe(const std::string& id, State state = State::Running) {
  PipeStatus s;
  s.id = id;
  s.state = state;
  s.since = kT0;
  s.tables = {{"public", "orders"}};
  return s;
}

TableProgress load(const std::string& name, std::uint64_t rows, std::uint64_t estimated,
                   std::uint32_t done = 1, std::uint32_t total = 10) {
  TableProgress t;
  t.table = {"public", name};
  t.planned = true;
  t.partitions_done = done;
  t.partitions_total = total;
  t.rows_copied = rows;
  t.estimated_rows = estimated;
  return t;
}

BatchSummary batch(int ms) {
  BatchSummary b;
  b.duration = milliseconds(ms);
  return b;
}

TransitionEvent transition(const std::string& id) {
  TransitionEvent e;
  e.pipe_id = id;
  return e;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool has_line(const std::string& text, const std::string& line) {
  for (const auto& l : lines_of(text)) {
    if (l == line) return true;
  }
  return false;
}

// Lines starting with `prefix`.
std::vector<std::string> lines_with(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& l : lines_of(text)) {
    if (l.rfind(prefix, 0) == 0) out.push_back(l);
  }
  return out;
}

struct TempDir {
  fs::path root;
  TempDir() {
    static std::atomic<int> counter{0};
    root = fs::temp_directory_path() /
           ("clickpipe-telemetry-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(root);
    fs::create_directories(root);
    fs::permissions(root, fs::perms::owner_all);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

TEST(Telemetry, FirstSampleShowsTheStatusWithZeroRatesAndNoEta) {
  cli::Telemetry t;
  PipeStatus s = pipe("a");
  s.snapshot = {load("orders", 1000, 10000)};
  s.cdc.changes = 70;
  s.cdc.lag_bytes = 512;
  t.refresh({s}, {}, at(0));

  const auto doc = t.pipe_json("a");
  ASSERT_TRUE(doc);
  EXPECT_EQ((*doc)["id"], "a");
  EXPECT_EQ((*doc)["state"], "Running");
  EXPECT_EQ((*doc)["live"], true);
  EXPECT_EQ((*doc)["published_at"], cli::format_published_at(at(0)));
  EXPECT_EQ((*doc)["cdc"]["lag_bytes"], 512);
  EXPECT_EQ((*doc)["cdc"]["changes_per_s"], 0.0);
  EXPECT_EQ((*doc)["snapshot"][0]["rows_per_s"], 0.0);
  EXPECT_TRUE((*doc)["snapshot"][0]["eta_s"].is_null());
  EXPECT_EQ((*doc)["retries_total"], 0);
  EXPECT_FALSE(t.pipe_json("zzz"));
  EXPECT_EQ(t.pipe_count(), 1u);
}

TEST(Telemetry, RatesAndEtaComeFromTheLastTenSeconds) {
  cli::Telemetry t;
  PipeStatus s = pipe("a");
  s.snapshot = {load("orders", 1000, 10000), load("users", 50, 50, 2, 2)};
  t.refresh({s}, {}, at(0));

  s.cdc.changes = 500;
  s.snapshot[0].rows_copied = 2000;
  t.refresh({s}, {}, at(5));
  json doc = *t.pipe_json("a");
  EXPECT_DOUBLE_EQ(doc["cdc"]["changes_per_s"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(doc["snapshot"][0]["rows_per_s"].get<double>(), 200.0);
  EXPECT_EQ(doc["snapshot"][0]["eta_s"], 40.0);  // 8,000 rows left at 200 a second
  // Every partition copied: done, whatever the estimate said.
  EXPECT_TRUE(doc["snapshot"][1]["eta_s"].is_null());

  s.cdc.changes = 1500;
  s.snapshot[0].rows_copied = 3000;
  t.refresh({s}, {}, at(10));
  doc = *t.pipe_json("a");
  EXPECT_DOUBLE_EQ(doc["cdc"]["changes_per_s"].get<double>(), 150.0);
  EXPECT_EQ(doc["snapshot"][0]["eta_s"], 35.0);

  // Now the window starts at 5 s: the first 500 changes and 1,000 rows are out of it.
  s.cdc.changes = 2000;
  t.refresh({s}, {}, at(15));
  doc = *t.pipe_json("a");
  EXPECT_DOUBLE_EQ(doc["cdc"]["changes_per_s"].get<double>(), 150.0);
  EXPECT_DOUBLE_EQ(doc["snapshot"][0]["rows_per_s"].get<double>(), 100.0);
  EXPECT_EQ(doc["snapshot"][0]["eta_s"], 70.0);

  // Idle for a whole window: 0, and the ETA unknown.
  t.refresh({s}, {}, at(25));
  t.refresh({s}, {}, at(26));
  doc = *t.pipe_json("a");
  EXPECT_EQ(doc["cdc"]["changes_per_s"], 0.0);
  EXPECT_TRUE(doc["snapshot"][0]["eta_s"].is_null());
}

TEST(Telemetry, FrequentSamplesDoNotShortenTheWindow) {
  cli::Telemetry t;
  PipeStatus s = pipe("a");
  t.refresh({s}, {}, at(0));
  // An HTTP client polling every 10 ms for 12 s, changes flowing at 50 a second.
  for (int i = 1; i <= 1200; ++i) {
    s.cdc.changes = static_cast<std::uint64_t>(i) / 2;
    t.refresh({s}, {}, at(i / 100.0));
  }
  EXPECT_NEAR((*t.pipe_json("a"))["cdc"]["changes_per_s"].get<double>(), 50.0, 0.5);
}

TEST(Telemetry, ACounterGoingDownStartsTheRatesAgain) {
  cli::Telemetry t;
  PipeStatus s = pipe("a");
  s.snapshot = {load("orders", 5000, 10000)};
  t.refresh({s}, {}, at(0));
  s.snapshot[0].rows_copied = 100;  // a resync started the table again
  t.refresh({s}, {}, at(2));
  json doc = *t.pipe_json("a");
  EXPECT_EQ(doc["snapshot"][0]["rows_per_s"], 0.0);
  EXPECT_TRUE(doc["snapshot"][0]["eta_s"].is_null());
  s.snapshot[0].rows_copied = 600;
  t.refresh({s}, {}, at(7));
  doc = *t.pipe_json("a");
  EXPECT_DOUBLE_EQ(doc["snapshot"][0]["rows_per_s"].get<double>(), 100.0);
}

TEST(Telemetry, HooksBeforeTheFirstSampleAreCounted) {
  cli::Telemetry t;
  t.on_transition(transition("a"));
  t.on_transition(transition("a"));
  for (int i = 0; i < 3; ++i) t.on_retry("a", RetryStatus{"cdc", 1, 0, "boom", std::nullopt});
  t.on_batch("a", batch(100));
  EXPECT_EQ(t.pipe_count(), 0u);
  EXPECT_FALSE(t.pipe_json("a"));
  EXPECT_FALSE(has_line(t.metrics_text(), "clickpipe_retries_total{pipe=\"a\"} 3"));

  t.refresh({pipe("a")}, {}, at(0));
  EXPECT_EQ((*t.pipe_json("a"))["retries_total"], 3);
  const std::string m = t.metrics_text();
  EXPECT_TRUE(has_line(m, "clickpipe_transitions_total{pipe=\"a\"} 2")) << m;
  EXPECT_TRUE(has_line(m, "clickpipe_retries_total{pipe=\"a\"} 3")) << m;
  EXPECT_TRUE(has_line(m, "clickpipe_cdc_batch_duration_seconds_count{pipe=\"a\"} 1")) << m;
  EXPECT_TRUE(has_line(m, "clickpipe_cdc_batch_duration_seconds_bucket{pipe=\"a\",le=\"0.1\"} 1"))
      << m;
  EXPECT_TRUE(has_line(m, "clickpipe_cdc_batch_duration_seconds_bucket{pipe=\"a\",le=\"0.05\"} 0"))
      << m;
}

TEST(Telemetry, OnlyThePipesOfTheLastSampleAreShown) {
  cli::Telemetry t;
  t.refresh({pipe("a"), pipe("b")}, {}, at(0));
  EXPECT_EQ(t.pipe_count(), 2u);
  t.refresh({pipe("a")}, {BrokenRecord{"c", "checksum mismatch"}}, at(1));
  EXPECT_EQ(t.pipe_count(), 1u);
  EXPECT_FALSE(t.pipe_json("b"));
  const json all = t.pipes_json();
  ASSERT_EQ(all["pipes"].size(), 1u);
  EXPECT_EQ(all["pipes"][0]["id"], "a");
  EXPECT_EQ(all["broken"], json::parse(R"([{"name":"c","reason":"checksum mismatch"}])"));
  const std::string m = t.metrics_text();
  EXPECT_EQ(m.find("pipe=\"b\""), std::string::npos) << m;
  EXPECT_TRUE(has_line(m, "clickpipe_pipes 1"));
  EXPECT_TRUE(has_line(m, "clickpipe_broken_records 1"));
}

// The input of tests/golden/metrics.txt: two pipes, one with a table name that needs escaping,
// one broken record.
cli::Telemetry& golden_input(cli::Telemetry& t) {
  const TableRef odd{"odd", "we\"ird\\na\nme"};
  PipeStatus a = pipe("alpha");
  a.tables = {{"public", "orders"}, odd};
  a.snapshot = {load("orders", 1000, 1000, 4, 4), load("x", 40, 100, 1, 2)};
  a.snapshot[1].table = odd;
  a.cdc.confirmed = Lsn{0x1000};
  a.cdc.source_head = Lsn{0x1800};
  a.cdc.lag_bytes = 2048;
  a.cdc.batches = 3;
  a.cdc.changes = 120;
  a.cdc.lag_seconds = 1.5;
  a.cdc.tables = {TableChanges{{"public", "orders"}, 100}, TableChanges{odd, 20}};
  for (int i = 0; i < 3; ++i) t.on_transition(transition("alpha"));
  t.on_retry("alpha", RetryStatus{"cdc", 1, 5, "connection reset", std::nullopt});
  for (int ms : {0, 250, 500, 2000, 120000}) t.on_batch("alpha", batch(ms));

  PipeStatus b = pipe("beta", State::Paused);
  b.tables = {{"public", "items"}};
  b.cdc.confirmed = Lsn{0x500};  // no source head yet: the retained WAL is unknown

  t.refresh({b, a}, {BrokenRecord{"zeta", "checksum mismatch"}}, at(0));
  return t;
}

std::string golden_path() {
#ifdef CLICKPIPE_SOURCE_DIR
  return std::string(CLICKPIPE_SOURCE_DIR) + "/tests/golden/metrics.txt";
#else
  return "tests/golden/metrics.txt";
#endif
}

// The golden file has "VERSION" where the version goes, so that a release changes nothing.
TEST(Telemetry, MetricsMatchTheGoldenFile) {
  cli::Telemetry t;
  std::string m = golden_input(t).metrics_text();
  const std::string version = "version=\"" + std::to_string(kVersionMajor) + "." +
                              std::to_string(kVersionMinor) + "." + std::to_string(kVersionPatch) +
                              "\"";
  const auto pos = m.find(version);
  ASSERT_NE(pos, std::string::npos) << m;
  m.replace(pos, version.size(), "version=\"VERSION\"");
  if (const char* update = std::getenv("CLICKPIPE_UPDATE_GOLDEN"); update && *update) {
    std::ofstream(golden_path(), std::ios::binary | std::ios::trunc) << m;
  }
  EXPECT_EQ(m, slurp(golden_path())) << "set CLICKPIPE_UPDATE_GOLDEN=1 to rewrite " << golden_path()
                                     << " after a deliberate change";
}

TEST(Telemetry, EveryFamilyHasHelpAndTypeAndEverySampleAFamily) {
  cli::Telemetry t;
  const std::string m = golden_input(t).metrics_text();
  std::string family;
  for (const std::string& line : lines_of(m)) {
    if (line.rfind("# HELP ", 0) == 0) {
      family = line.substr(7, line.find(' ', 7) - 7);
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      EXPECT_EQ(line.substr(7, family.size() + 1), family + " ") << line;
      continue;
    }
    const std::string name = line.substr(0, line.find_first_of("{ "));
    const bool ok =
        name == family ||
        (name.rfind(family, 0) == 0 &&
         (name == family + "_bucket" || name == family + "_sum" || name == family + "_count"));
    EXPECT_TRUE(ok) << line << " under " << family;
  }
}

TEST(Telemetry, LabelValuesAreEscaped) {
  cli::Telemetry t;
  PipeStatus s = pipe("a");
  TableProgress p = load("x", 5, 5);
  p.table = {"s", "q\"b\\n\nl\xff"};
  s.snapshot = {p};
  t.refresh({s}, {}, at(0));
  const std::string m = t.metrics_text();
  EXPECT_TRUE(has_line(
      m,
      "clickpipe_snapshot_rows_copied_total{pipe=\"a\",table=\"s.q\\\"b\\\\n\\nl\xEF\xBF\xBD\"} 5"))
      << m;
}

TEST(Telemetry, HistogramBucketsAreCumulativeWithInclusiveBounds) {
  cli::Telemetry t;
  for (int ms : {5, 10, 70, 2000, 100000}) t.on_batch("a", batch(ms));
  t.refresh({pipe("a")}, {}, at(0));
  const std::string m = t.metrics_text();
  const std::vector<std::pair<std::string, int>> want = {
      {"0.01", 2}, {"0.05", 2}, {"0.1", 3}, {"0.25", 3}, {"0.5", 3}, {"1", 3},
      {"2.5", 4},  {"5", 4},    {"10", 4},  {"30", 4},   {"60", 4},  {"+Inf", 5}};
  const auto buckets = lines_with(m, "clickpipe_cdc_batch_duration_seconds_bucket{pipe=\"a\"");
  ASSERT_EQ(buckets.size(), want.size()) << m;
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(buckets[i], "clickpipe_cdc_batch_duration_seconds_bucket{pipe=\"a\",le=\"" +
                              want[i].first + "\"} " + std::to_string(want[i].second));
  }
  EXPECT_TRUE(has_line(m, "clickpipe_cdc_batch_duration_seconds_count{pipe=\"a\"} 5"));
  const auto sum = lines_with(m, "clickpipe_cdc_batch_duration_seconds_sum{pipe=\"a\"} ");
  ASSERT_EQ(sum.size(), 1u);
  EXPECT_NEAR(std::stod(sum[0].substr(sum[0].rfind(' ') + 1)), 102.085, 1e-9);
}

TEST(Telemetry, EveryKnownStateHasAStateLineAndOnlyTheCurrentIsOne) {
  for (const State current : kAllStates) {
    cli::Telemetry t;
    t.refresh({pipe("a", current)}, {}, at(0));
    const auto lines = lines_with(t.metrics_text(), "clickpipe_pipe_state{");
    ASSERT_EQ(lines.size(), kStateCount - 1);
    std::size_t ones = 0;
    for (const State s : kAllStates) {
      if (s == State::Unknown) continue;
      const std::string prefix =
          "clickpipe_pipe_state{pipe=\"a\",state=\"" + std::string(to_string(s)) + "\"} ";
      const bool found =
          std::find(lines.begin(), lines.end(), prefix + (s == current ? "1" : "0")) != lines.end();
      EXPECT_TRUE(found) << prefix;
      ones += s == current;
    }
    EXPECT_EQ(ones, current == State::Unknown ? 0u : 1u);
  }
}

TEST(Telemetry, LagSecondsAndRetainedWalOnlyWhenKnown) {
  cli::Telemetry t;
  PipeStatus a = pipe("a");
  a.cdc.confirmed = Lsn{100};
  a.cdc.source_head = Lsn{350};
  a.cdc.lag_bytes = 250;
  a.cdc.lag_seconds = 0.0;
  PipeStatus b = pipe("b");
  b.cdc.lag_bytes = 0;
  t.refresh({a, b}, {}, at(0));
  const std::string m = t.metrics_text();
  EXPECT_TRUE(has_line(m, "clickpipe_cdc_lag_seconds{pipe=\"a\"} 0")) << m;
  EXPECT_TRUE(has_line(m, "clickpipe_slot_retained_wal_bytes{pipe=\"a\"} 250")) << m;
  EXPECT_TRUE(has_line(m, "clickpipe_cdc_lag_bytes{pipe=\"b\"} 0")) << m;
  EXPECT_TRUE(lines_with(m, "clickpipe_cdc_lag_seconds{pipe=\"b\"").empty()) << m;
  EXPECT_TRUE(lines_with(m, "clickpipe_slot_retained_wal_bytes{pipe=\"b\"").empty()) << m;
}

// SlotMonitor's readings: a paused pipe streams nothing, so only the source knows what its slot
// keeps; the reading wins over the streamed figure, and a missing slot shows no retention.
TEST(Telemetry, TheSlotAsTheSourceShowsItWinsInEveryState) {
  cli::Telemetry t;
  PipeStatus a = pipe("a", State::Paused);
  a.cdc.confirmed = Lsn{100};
  a.cdc.source_head = Lsn{350};  // as last streamed, before the pause
  PipeStatus b = pipe("b", State::Failed);
  t.set_slot("a", cli::SlotSample{true, 9000, "extended", at(1)});
  t.set_slot("b", cli::SlotSample{false, 0, "", at(1)});
  t.refresh({a, b}, {}, at(2));
  const std::string m = t.metrics_text();
  EXPECT_TRUE(has_line(m, "clickpipe_slot_retained_wal_bytes{pipe=\"a\"} 9000")) << m;
  EXPECT_TRUE(lines_with(m, "clickpipe_slot_retained_wal_bytes{pipe=\"b\"").empty()) << m;
  const auto doc = t.pipe_json("a");
  ASSERT_TRUE(doc);
  EXPECT_EQ((*doc)["slot_wal"]["exists"], true);
  EXPECT_EQ((*doc)["slot_wal"]["retained_bytes"], 9000);
  EXPECT_EQ((*doc)["slot_wal"]["wal_status"], "extended");
  EXPECT_EQ((*t.pipe_json("b"))["slot_wal"]["exists"], false);

  t.set_slot("a", std::nullopt);  // the source stopped answering: back to the streamed figure
  EXPECT_TRUE(has_line(t.metrics_text(), "clickpipe_slot_retained_wal_bytes{pipe=\"a\"} 250"));
  EXPECT_TRUE((*t.pipe_json("a"))["slot_wal"].is_null());
}

TEST(Telemetry, PublishedAtReadsBack) {
  const TimePoint t = at(0.123);
  EXPECT_EQ(cli::format_published_at(t), "2027-01-15T08:00:00.123Z");
  EXPECT_EQ(cli::parse_published_at("2027-01-15T08:00:00.123Z"), t);
  EXPECT_EQ(cli::parse_published_at("2027-01-15T08:00:00Z"), at(0));
  for (const char* bad :
       {"", "2027-01-15 08:00:00Z", "2027-13-15T08:00:00Z", "2027-01-15T08:00:00.Z",
        "2027-01-15T08:00:00.123", "x027-01-15T08:00:00Z"})
    EXPECT_FALSE(cli::parse_published_at(bad)) << bad;
}

TEST(Telemetry, PublishWritesPrivateFilesAtomicallyAndRemovesOnlyStaleOnes) {
  TempDir tmp;
  const fs::path dir = tmp.root / "status";
  cli::make_private_dir(dir, "status directory");
  // What publish must leave alone: names no pipe could have, a directory, a link's target.
  for (const char* name : {"Foreign.json", "notes.txt", "a.json.bak"})
    std::ofstream(dir / name) << "keep";
  fs::create_directory(dir / "sub.json");
  std::ofstream(tmp.root / "target.json") << "target";
  fs::create_symlink(tmp.root / "target.json", dir / "link.json");
  std::ofstream(dir / "gone.json") << "{}";  // a pipe of an earlier run

  cli::Telemetry t;
  PipeStatus a = pipe("a");
  a.cdc.changes = 1;
  t.refresh({a, pipe("b")}, {}, at(0));
  ASSERT_EQ(t.publish(dir), "");

  for (const char* id : {"a", "b"}) {
    const fs::path f = dir / (std::string(id) + ".json");
    struct stat st {};
    ASSERT_EQ(::lstat(f.c_str(), &st), 0) << f;
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
    const json doc = json::parse(slurp(f));
    EXPECT_EQ(doc["id"], id);
    EXPECT_EQ(doc["live"], true);
    EXPECT_EQ(doc["published_at"], cli::format_published_at(at(0)));
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir / "gone.json")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir / "link.json")));
  EXPECT_EQ(slurp(tmp.root / "target.json"), "target");  // the link went, not its target
  for (const char* name : {"Foreign.json", "notes.txt", "a.json.bak"})
    EXPECT_EQ(slurp(dir / name), "keep") << name;
  EXPECT_TRUE(fs::is_directory(dir / "sub.json"));

  // A new file replaces the old by rename: a reader holding the old one sees it whole.
  fs::create_hard_link(dir / "a.json", dir / "held.old");
  const std::string before = slurp(dir / "a.json");
  a.cdc.changes = 2;
  t.refresh({a}, {}, at(1));
  ASSERT_EQ(t.publish(dir), "");
  EXPECT_EQ(slurp(dir / "held.old"), before);
  EXPECT_EQ(json::parse(slurp(dir / "a.json"))["cdc"]["changes"], 2);
  EXPECT_FALSE(fs::exists(dir / "b.json"));  // b is no longer run
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(Telemetry, PublishReportsAFailureInOneLineWithoutThrowing) {
  TempDir tmp;
  cli::Telemetry t;
  t.refresh({pipe("a")}, {}, at(0));
  const std::string why = t.publish(tmp.root / "missing");
  EXPECT_NE(why.find((tmp.root / "missing").string()), std::string::npos) << why;
  EXPECT_EQ(why.find('\n'), std::string::npos) << why;
}

TEST(Telemetry, HooksRefreshesAndReadersMayRunAtOnce) {
  cli::Telemetry t;
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop) {
      (void)t.metrics_text();
      (void)t.pipes_json();
      std::this_thread::yield();
    }
  });
  std::thread sampler([&] {
    for (int i = 0; i < 200; ++i) t.refresh({pipe("a"), pipe("b")}, {}, at(i * 0.1));
  });
  std::vector<std::thread> hooks;
  for (const char* id : {"a", "b"}) {
    hooks.emplace_back([&t, id] {
      for (int i = 0; i < 500; ++i) {
        t.on_transition(transition(id));
        t.on_retry(id, RetryStatus{});
        t.on_batch(id, batch(i % 50));
      }
    });
  }
  for (auto& h : hooks) h.join();
  sampler.join();
  stop = true;
  reader.join();
  const std::string m = t.metrics_text();
  for (const char* id : {"a", "b"}) {
    const std::string p = std::string("{pipe=\"") + id + "\"} ";
    EXPECT_TRUE(has_line(m, "clickpipe_transitions_total" + p + "500")) << m;
    EXPECT_TRUE(has_line(m, "clickpipe_retries_total" + p + "500")) << m;
    EXPECT_TRUE(has_line(m, "clickpipe_cdc_batch_duration_seconds_count" + p + "500")) << m;
  }
}

}  // namespace
}  // namespace clickpipe::test
