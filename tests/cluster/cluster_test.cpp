// Worker processes sharing pipes through the test PostgreSQL (tests/cluster/cluster_helper.cpp):
// a worker SIGKILLed, one SIGSTOPped past its lease and resumed, and the store's kill points.
// Each ends with `cluster_helper verify`: every pipe Running with a legal history, and the
// destination equal to the source.
#include <gtest/gtest.h>
#include <clickpipe/cluster/pg_store.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "../crash/process.hpp"
#include "../files.hpp"
#include "cluster.hpp"

using namespace std::chrono_literals;
using namespace clickpipe;
namespace fs = std::filesystem;

namespace {

std::set<std::string> lines(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (!l.empty()) out.insert(l);
  }
  return out;
}

class Cluster : public ::testing::Test {
 protected:
  test::Schema schema;
  fs::path dir;
  std::chrono::milliseconds lease{2000};
  int pipes = 6;
  std::map<std::string, pid_t> workers;
  std::vector<std::unique_ptr<crash::KillOnExit>> reapers;  // a failed test leaves no worker

  void SetUp() override {
    dir = fs::temp_directory_path() / ("clickpipe_cluster_" + schema.name);
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override {
    reapers.clear();
    if (!HasFailure()) fs::remove_all(dir);
  }

  // Writes go on for `writing` from a moment just ahead, in every worker alike.
  void plan(std::chrono::milliseconds writing, std::chrono::milliseconds interval = 10ms) {
    const auto epoch = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch()) +
                       1000ms;
    ::setenv("CLUSTER_SCHEMA", schema.name.c_str(), 1);
    ::setenv("CLUSTER_LEASE_MS", std::to_string(lease.count()).c_str(), 1);
    ::setenv("CLUSTER_PIPES", std::to_string(pipes).c_str(), 1);
    ::setenv("CLUSTER_TXNS", std::to_string(writing / interval).c_str(), 1);
    ::setenv("CLUSTER_INTERVAL_MS", std::to_string(interval.count()).c_str(), 1);
    ::setenv("CLUSTER_EPOCH_MS", std::to_string(epoch.count()).c_str(), 1);
    writes_end_ = std::chrono::steady_clock::now() + 1000ms + writing;
  }

  void start(const std::string& name, const std::string& kill_at = "") {
    std::vector<std::string> args{CLICKPIPE_CLUSTER_HELPER, "run", dir.string(), name};
    if (!kill_at.empty()) {
      args.push_back("--kill-at");
      args.push_back(kill_at);
    }
    const pid_t pid = crash::spawn(args);
    ASSERT_GT(pid, 0);
    workers[name] = pid;
    reapers.emplace_back(new crash::KillOnExit{pid});  // never a temporary: its end kills
  }

  std::set<std::string> running(const std::string& name) {
    return lines(test::slurp(dir / (name + ".running")));
  }
  std::set<std::string> running_on(const std::vector<std::string>& names) {
    std::set<std::string> out;
    for (const auto& n : names) {
      for (const auto& p : running(n)) out.insert(p);
    }
    return out;
  }
  bool all_running_on(const std::vector<std::string>& names, std::chrono::milliseconds within) {
    return test::poll_until([&] { return static_cast<int>(running_on(names).size()) == pipes; },
                            within);
  }

  // After the writes: every pipe caught up, legal and equal to the source.
  void verify() {
    std::this_thread::sleep_until(writes_end_);
    const std::string out = (dir / "verify.out").string();
    const pid_t pid = crash::spawn({"/bin/sh", "-c",
                                    std::string("exec '") + CLICKPIPE_CLUSTER_HELPER +
                                        "' verify '" + dir.string() + "' >'" + out + "' 2>&1"});
    ASSERT_GT(pid, 0);
    const auto rc = crash::wait_exit(pid, 90s);
    const std::string said = test::slurp(out);
    ASSERT_EQ(rc, 0) << said;
    std::printf("%s", said.c_str());
  }

  void stop_all() {
    for (const auto& [name, pid] : workers) {
      if (::kill(pid, 0) != 0) continue;
      ::kill(pid, SIGCONT);
      ::kill(pid, SIGTERM);
    }
    for (const auto& [name, pid] : workers) {
      if (::kill(pid, 0) != 0) continue;
      const auto rc = crash::wait_exit(pid, 30s);
      EXPECT_EQ(rc, 0) << name << " did not drain and exit cleanly";
    }
  }

  std::chrono::steady_clock::time_point writes_end_;
};

TEST_F(Cluster,
       ThreeWorkersThirtyPipesAKilledWorkersPipesRunOnTheOthersWithinLeasePlusFiveSeconds) {
  pipes = 30;
  lease = 3000ms;
  plan(12s);
  for (const char* w : {"w1", "w2", "w3"}) start(w);
  ASSERT_TRUE(all_running_on({"w1", "w2", "w3"}, 30s)) << "the pipes never all ran";
  // Spread evenly: each worker its share of 10.
  ASSERT_TRUE(test::poll_until(
      [&] {
        return running("w1").size() == 10 && running("w2").size() == 10 &&
               running("w3").size() == 10;
      },
      20s))
      << running("w1").size() << "/" << running("w2").size() << "/" << running("w3").size();
  std::this_thread::sleep_for(1s);  // writes going on
  const std::set<std::string> orphaned = running("w2");
  ::kill(workers["w2"], SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_EQ(crash::wait_exit(workers["w2"], 5s), 128 + SIGKILL);
  ASSERT_TRUE(all_running_on({"w1", "w3"}, lease + 5s))
      << running_on({"w1", "w3"}).size() << " of 30 pipes running on the survivors after "
      << (lease + 5s).count() << " ms";
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - killed);
  std::printf(
      "the killed worker's %zu pipes ran on the others %lld ms after the kill (lease %lld ms)\n",
      orphaned.size(), static_cast<long long>(took.count()), static_cast<long long>(lease.count()));
  // The survivors share them: 15 each.
  EXPECT_TRUE(test::poll_until(
      [&] { return running("w1").size() == 15 && running("w3").size() == 15; }, 10s));
  verify();
  stop_all();
}

TEST_F(Cluster, AWorkerPausedPastItsLeaseStopsWithoutWritingWhenResumedAndTheNewOwnersStateStays) {
  pipes = 4;
  plan(14s);
  start("a");
  start("b");
  ASSERT_TRUE(
      test::poll_until([&] { return running("a").size() == 2 && running("b").size() == 2; }, 30s));
  const std::set<std::string> a_pipes = running("a");
  auto store = cluster::PgStore::open([&] {
    cluster::PgStoreOptions o;
    o.connection = test::postgres_settings();
    o.schema = schema.name;
    return o;
  }());
  std::map<std::string, std::uint64_t> a_ids;
  for (const auto& o : store->owners()) {
    if (a_pipes.count(o.id)) a_ids[o.id] = o.owner.value_or(0);
  }
  ::kill(workers["a"], SIGSTOP);
  const auto stopped = std::chrono::steady_clock::now();
  ASSERT_TRUE(test::poll_until([&] { return running("b").size() == 4; }, lease + 5s))
      << "b did not take over the paused worker's pipes";
  // Past the lease for sure, and b has saved positions of its own for a's old pipes.
  std::this_thread::sleep_until(stopped + lease + 1s);
  std::map<std::string, Lsn> before;
  for (const PipeRecord& r : store->load_all().records) before[r.id] = r.confirmed.value_or(Lsn(0));
  ::kill(workers["a"], SIGCONT);
  std::this_thread::sleep_for(3s);

  // a wrote nothing to the destination between waking and joining again under a new id.
  EXPECT_EQ(test::slurp(dir / "a.after_cont"), "");
  const std::string events = test::slurp(dir / "a.events");
  EXPECT_NE(events.find("lease_lost"), std::string::npos) << events;
  // The old id owns nothing; positions b saved never went back.
  for (const auto& o : store->owners()) {
    if (a_ids.count(o.id)) {
      EXPECT_NE(o.owner, a_ids[o.id]) << o.id << " still the paused one's";
    }
  }
  for (const PipeRecord& r : store->load_all().records) {
    EXPECT_GE(r.confirmed.value_or(Lsn(0)), before[r.id]) << r.id << " lost b's position";
  }
  verify();
  stop_all();
}

// The store's kill points: `first` runs alone until it runs every pipe, then `second` starts; the
// one with the kill point dies there, and the other must take every pipe over after the lease.
struct KillPoint {
  const char* name;
  const char* kill_at;
  bool killed_first;  // the killed worker is the one that starts first
};

class KillPoints : public Cluster, public ::testing::WithParamInterface<KillPoint> {};

TEST_P(KillPoints, TheOtherWorkerTakesEveryPipeOverAndNothingIsLost) {
  const KillPoint& k = GetParam();
  plan(9s);
  const std::string first = k.killed_first ? "k" : "f";
  const std::string second = k.killed_first ? "f" : "k";
  start(first, k.killed_first ? k.kill_at : "");
  ASSERT_TRUE(all_running_on({first}, 30s));
  start(second, k.killed_first ? "" : k.kill_at);
  ASSERT_EQ(crash::wait_exit(workers["k"], 20s), 128 + SIGKILL)
      << "the kill point " << k.kill_at << " was never reached";
  EXPECT_EQ(test::slurp(dir / "killed_at"),
            std::string(k.kill_at).substr(0, std::string(k.kill_at).find(':')));
  ASSERT_TRUE(all_running_on({"f"}, lease + 5s)) << running("f").size() << " of " << pipes;
  verify();
  stop_all();
}

INSTANTIATE_TEST_SUITE_P(
    Store, KillPoints,
    ::testing::Values(
        // Right after a save commits, before the worker learns it did (and before it confirms).
        KillPoint{"AfterASave", "saved:25", false},
        // Between saves and the next lease renewal.
        KillPoint{"BeforeALeaseRenewal", "renewing:3", false},
        // Pipes taken over, not yet run.
        KillPoint{"AfterAClaim", "claimed:1", false},
        // Handing a pipe over to a new worker: stopped, not yet released.
        KillPoint{"DuringHandover", "releasing:1", true}),
    [](const ::testing::TestParamInfo<KillPoint>& i) { return std::string(i.param.name); });

}  // namespace
