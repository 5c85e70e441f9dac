// Kill tests on the real servers: a pipe from PostgreSQL to ClickHouse runs in a helper process
// (pg_crash_helper) that is killed with SIGKILL at seeded points — by this test at random moments,
// or by itself right after rows reached ClickHouse and before the checkpoint, or after the
// checkpoint and before the LSN confirmation — in the initial load and in CDC, while this test
// keeps writing to the source tables. After the last kill the pipe must catch up and ClickHouse
// FINAL must equal PostgreSQL (row count and checksum of all columns), with no partition saved
// done copied again, no return to Snapshot after Running, and every saved history legal. Every
// kill must land where it was aimed (none late), at least a third in each phase, and a mutation
// run shows the checksums differ when a batch is lost.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "../servers.hpp"
#include "checks.hpp"
#include "clickpipe/postgres/connection.hpp"
#include "process.hpp"

namespace clickpipe {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kSeeds = 3;
constexpr int kKillsPerSeed = 8;                 // 3 in the initial load, 5 in CDC
constexpr int kThird = (kKillsPerSeed + 2) / 3;  // kills each phase must get, at least

using crash::KillOnExit;
using crash::poll_until;
using crash::spawn;
using crash::wait_exit;

bool wait_file(const crash::Dir& d, const std::string& name, const std::string& value,
               std::chrono::seconds timeout) {
  return poll_until([&] { return d.read(name) == value; }, timeout);
}

// Writes to the source tables until stopped: inserts, updates (some with a large value that
// PostgreSQL keeps out of line, so later updates send it as unchanged TOAST), key changes and
// deletes, one to four statements per transaction.
class Writer {
 public:
  Writer(std::vector<std::string> tables, unsigned seed)
      : tables_(std::move(tables)), seed_(seed), thread_([this] { loop(); }) {}
  ~Writer() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  long transactions() const { return transactions_; }

 private:
  void loop() {
    postgres::Connection pg = postgres::Connection::open(test::postgres_settings());
    std::mt19937_64 rng(seed_);
    long next = 1'000'000;
    const std::string texts[] = {"plain",          "tab\there", "new\nline", "quote ' \" \\ back",
                                 "unicode ü 日本", ""};
    while (!stop_) {
      pg.exec("BEGIN");
      for (int s = 0, n = 1 + static_cast<int>(rng() % 4); s < n; ++s) {
        const std::string t = tables_[rng() % tables_.size()];
        const std::string some = std::to_string(rng() % 20000);
        switch (rng() % 10) {
          case 0:
          case 1:
          case 2:
            pg.exec("INSERT INTO " + t + " (id, v, n, amount) VALUES ($1, $2, $3, $4)",
                    {std::to_string(next++), texts[rng() % 6], std::to_string(rng() % 1000),
                     std::to_string(rng() % 100000) + ".25"});
            break;
          case 3:
          case 4:
          case 5:
            pg.exec("UPDATE " + t + " SET v = $1, n = n + 1 WHERE id = $2",
                    {texts[rng() % 6] + std::to_string(rng() % 99), some});
            break;
          case 6:
            // 9,600 random hex digits: over 8 kB and incompressible, so stored out of line
            // (STORAGE EXTERNAL) and sent as unchanged TOAST by later updates of the row.
            pg.exec("UPDATE " + t +
                        " SET doc = (SELECT string_agg(md5(random()::text), '') FROM "
                        "generate_series(1, 300)) WHERE id = $1",
                    {some});
            break;
          case 7:
            pg.exec("UPDATE " + t + " SET id = $1 WHERE id = $2", {std::to_string(next++), some});
            break;
          default: pg.exec("DELETE FROM " + t + " WHERE id = $1", {some});
        }
      }
      pg.exec("COMMIT");
      ++transactions_;
      std::this_thread::sleep_for(2ms);
    }
  }

  std::vector<std::string> tables_;
  unsigned seed_;
  std::atomic<bool> stop_{false};
  std::atomic<long> transactions_{0};
  std::thread thread_;
};

// The sum of the counts helper processes left in files named prefix + pid.
std::uint64_t total(const crash::Dir& dir, const std::string& prefix) {
  std::uint64_t sum = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name.find(".tmp") == std::string::npos) {
      const std::string v = dir.read(name);
      if (!v.empty()) sum += std::stoull(v);
    }
  }
  return sum;
}

class KillOnRealServers : public ::testing::TestWithParam<int> {};

TEST_P(KillOnRealServers, CatchesUpEqualWithNothingCopiedTwice) {
  const int seed = GetParam();
  const std::string tag = std::to_string(::getpid()) + "_" + std::to_string(seed);
  const crash::Dir dir{(fs::temp_directory_path() / ("clickpipe-pgcrash-" + tag)).string()};
  fs::remove_all(dir.path);
  fs::create_directories(dir.path);
  const std::vector<std::string> tables = {"kill_orders_" + tag, "kill_users_" + tag};
  {
    postgres::Connection pg = postgres::Connection::open(test::postgres_settings());
    for (const auto& [t, rows] : {std::pair{tables[0], 60000}, std::pair{tables[1], 15000}}) {
      pg.exec("CREATE TABLE " + t +
              " (id int8 PRIMARY KEY, v text, n int4 NOT NULL, amount numeric(12, 2), doc text)");
      pg.exec("INSERT INTO " + t + " SELECT g, 'row ' || g, g % 97, g * 0.25, NULL " +
              "FROM generate_series(1, " + std::to_string(rows) + ") g");
      pg.exec("ALTER TABLE " + t + " ALTER COLUMN doc SET STORAGE EXTERNAL");
      pg.exec("ANALYZE " + t);
    }
  }
  dir.write("pipe", "kill_" + tag);
  dir.write("tables", tables[0] + "\n" + tables[1] + "\n");
  const std::string helper = CLICKPIPE_PG_CRASH_HELPER;

  Writer writer(tables, static_cast<unsigned>(seed));
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::map<std::string, int> killed_at;  // "<state> by <point>" -> kills
  int kills = 0, late = 0, in_snapshot = 0, in_running = 0;
  for (int k = 0; k < kKillsPerSeed; ++k) {
    // The first kills land in the initial load: at a random moment, or right after a
    // partition's rows reached ClickHouse. Later ones wait for CDC and pick any point.
    std::string point = "none";
    const bool load = k < 3;
    if (load) {
      point = k == 1 ? "none" : "copied";
    } else {
      const char* points[] = {"none", "applied", "confirming"};
      point = points[(k + seed) % 3];
    }
    const int nth = 1 + static_cast<int>(rng() % 4);
    const pid_t pid = spawn({helper, dir.path, "run", point, std::to_string(nth)});
    ASSERT_GT(pid, 0);
    KillOnExit guard{pid};  // a failed assertion must not leave the helper running
    ASSERT_TRUE(wait_file(dir, "started", std::to_string(pid), 60s)) << "the helper did not start";
    if (!load) {
      ASSERT_TRUE(wait_file(dir, "state", "Running", 120s)) << dir.read("state");
    }
    if (point == "none") {
      // The kill's seeded moment: real time has to pass for it.
      std::this_thread::sleep_for(
          std::chrono::milliseconds(load ? 200 + rng() % 500 : rng() % 800));
      ::kill(pid, SIGKILL);
    }
    std::optional<int> rc = wait_exit(pid, 60s);
    if (!rc) {  // the point was not reached in time: kill it here instead, and count it
      ::kill(pid, SIGKILL);
      rc = wait_exit(pid, 10s);
      point += " (late)";
      ++late;
    }
    ASSERT_EQ(rc, 128 + SIGKILL) << "the helper ended without being killed: "
                                 << dir.read("violations");
    const std::string state = dir.read("state");
    ++killed_at[state + " by " + point];
    ++kills;
    in_snapshot += state == "Snapshot";
    in_running += state == "Running";
  }
  writer.stop();
  for (const auto& [where, n] : killed_at) std::printf("  killed %d x in %s\n", n, where.c_str());
  std::printf("  %ld source transactions written during the kills\n", writer.transactions());
  EXPECT_EQ(kills, kKillsPerSeed);
  EXPECT_EQ(late, 0) << "kill points never reached: those kills landed where nobody aimed";
  EXPECT_GE(in_snapshot, kThird) << "kills must land in the initial load";
  EXPECT_GE(in_running, std::max(kThird, 4)) << "kills must land in CDC (5 wait for it)";

  const pid_t v = spawn({helper, dir.path, "verify"});
  ASSERT_GT(v, 0);
  KillOnExit verify_guard{v};
  EXPECT_EQ(wait_exit(v, 300s), 0) << dir.read("violations");
  const std::uint64_t refilled = total(dir, "toast.");
  std::printf("  %llu unchanged TOAST values read back from the source\n",
              static_cast<unsigned long long>(refilled));
  EXPECT_GT(refilled, 0u) << "the unchanged-TOAST path never ran";
  fs::remove_all(dir.path);
}

INSTANTIATE_TEST_SUITE_P(Seeds, KillOnRealServers, ::testing::Range(1, kSeeds + 1));

// The defect: a transaction was buffered whole in memory, so a huge one killed the process on
// every replay. Now it is spilled to disk and applied in several batches, confirmed after the
// last: killed in the middle of applying one, the pipe must replay it whole and end equal, with
// no table stopped by the column the transaction added.
TEST(KillOnRealServers, KilledWhileApplyingASpilledTransactionEndsEqual) {
  const std::string tag = std::to_string(::getpid()) + "_spill";
  const crash::Dir dir{(fs::temp_directory_path() / ("clickpipe-pgcrash-" + tag)).string()};
  fs::remove_all(dir.path);
  fs::create_directories(dir.path);
  const std::string t = "kill_big_" + tag;
  postgres::Connection pg = postgres::Connection::open(test::postgres_settings());
  pg.exec("CREATE TABLE " + t +
          " (id int8 PRIMARY KEY, v text, n int4 NOT NULL, amount numeric(12, 2), doc text)");
  pg.exec("INSERT INTO " + t + " SELECT g, 'row ' || g, g % 97, g * 0.25, NULL " +
          "FROM generate_series(1, 20000) g");
  dir.write("pipe", "kill_" + tag);
  dir.write("tables", t + "\n");
  dir.write("spill_bytes", std::to_string(256 << 10));  // 256 KiB: the transaction is ~5 MiB
  const std::string helper = CLICKPIPE_PG_CRASH_HELPER;

  // Up to Running, then one transaction: every row updated, 20,000 inserted, 1,000 deleted.
  const pid_t first = spawn({helper, dir.path, "run", "applied", "4"});
  ASSERT_GT(first, 0);
  KillOnExit guard{first};
  ASSERT_TRUE(wait_file(dir, "state", "Running", 120s)) << dir.read("state");
  pg.exec("BEGIN");
  pg.exec("UPDATE " + t + " SET v = v || ' updated', n = n + 1");
  // A column added in the middle: seen with the first batch, saved only with the last, so the
  // replay (which describes the table as it was before) does not stop the table.
  pg.exec("ALTER TABLE " + t + " ADD COLUMN extra text");
  pg.exec("INSERT INTO " + t + " SELECT g, 'new ' || g, 1, 0.5, NULL, 'e' " +
          "FROM generate_series(100001, 120000) g");
  pg.exec("DELETE FROM " + t + " WHERE id % 20 = 0");
  pg.exec("COMMIT");
  // The helper kills itself after the 4th batch of the transaction reached ClickHouse.
  EXPECT_EQ(wait_exit(first, 120s), 128 + SIGKILL) << dir.read("violations");
  const std::uint64_t spilled_before = total(dir, "spilled.");
  EXPECT_GT(spilled_before, 0u) << "the transaction was not spilled";

  const pid_t v = spawn({helper, dir.path, "verify"});
  ASSERT_GT(v, 0);
  KillOnExit verify_guard{v};
  EXPECT_EQ(wait_exit(v, 300s), 0) << dir.read("violations");
  // Had any of it been confirmed, PostgreSQL would not send it again.
  EXPECT_GT(total(dir, "spilled.") - spilled_before, 0u)
      << "the transaction applied in part was not replayed whole after the kill";
  fs::remove_all(dir.path);
}

// The mutation check (docs/durability.md): after a restart the helper leaves one batch of inserts
// unapplied while its position is saved and confirmed as usual. verify must then fail with the
// checksums differing: the check the kill tests rely on can catch a lost batch.
TEST(KillOnRealServers, ABatchDroppedAfterARestartMakesTheChecksumsDiffer) {
  const std::string tag = std::to_string(::getpid()) + "_mutation";
  const crash::Dir dir{(fs::temp_directory_path() / ("clickpipe-pgcrash-" + tag)).string()};
  fs::remove_all(dir.path);
  fs::create_directories(dir.path);
  const std::string t = "kill_mut_" + tag;
  {
    postgres::Connection pg = postgres::Connection::open(test::postgres_settings());
    pg.exec("CREATE TABLE " + t +
            " (id int8 PRIMARY KEY, v text, n int4 NOT NULL, amount numeric(12, 2), doc text)");
    pg.exec("INSERT INTO " + t + " SELECT g, 'row ' || g, g % 97, g * 0.25, NULL " +
            "FROM generate_series(1, 5000) g");
  }
  dir.write("pipe", "kill_" + tag);
  dir.write("tables", t + "\n");
  const std::string helper = CLICKPIPE_PG_CRASH_HELPER;
  {
    // Up to CDC, then killed: the next run is a restart.
    const pid_t pid = spawn({helper, dir.path, "run", "none", "1"});
    ASSERT_GT(pid, 0);
    KillOnExit guard{pid};
    ASSERT_TRUE(wait_file(dir, "started", std::to_string(pid), 60s));
    ASSERT_TRUE(wait_file(dir, "state", "Running", 120s)) << dir.read("state");
    ::kill(pid, SIGKILL);
    ASSERT_EQ(wait_exit(pid, 60s), 128 + SIGKILL);
  }
  Writer writer({t}, 7);
  {
    const pid_t pid =
        spawn({helper, dir.path, "run", "none", "1", "--drop-one-batch-after-restart"});
    ASSERT_GT(pid, 0);
    KillOnExit guard{pid};
    ASSERT_TRUE(wait_file(dir, "started", std::to_string(pid), 60s));
    ASSERT_TRUE(poll_until([&] { return !dir.read("dropped").empty(); }, 120s))
        << "no batch was dropped";
    ::kill(pid, SIGKILL);
    ASSERT_EQ(wait_exit(pid, 60s), 128 + SIGKILL);
  }
  writer.stop();

  const pid_t v = spawn({helper, dir.path, "verify"});
  ASSERT_GT(v, 0);
  KillOnExit verify_guard{v};
  EXPECT_EQ(wait_exit(v, 300s), 1)
      << "verify passed without the dropped batch (" << dir.read("dropped") << ")";
  EXPECT_NE(dir.read("mismatch").find(t + ":"), std::string::npos)
      << "the checksums must differ: " << dir.read("mismatch");
  EXPECT_EQ(dir.read("violations"), "") << "and nothing else may be wrong";
  fs::remove_all(dir.path);
}

}  // namespace
}  // namespace clickpipe
