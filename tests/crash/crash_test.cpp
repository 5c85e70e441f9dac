// Kill tests with real processes: crash_helper runs pipes over journaled in-memory executors and
// a FileStore while writes go on, and is killed with SIGKILL at seeded random moments; after the
// last kill it must catch up with everything equal, no done partition copied again, every saved
// state legal, and the paused pipe still paused and unmoved. Every kill must land (none late), at
// least a third of them in each phase of pipe A, and a mutation run shows the final comparison
// fails when a batch is lost.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "../files.hpp"
#include "process.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kKillsPerSeed = 5;
constexpr int kSeeds = 10;
constexpr int kThird = (kKillsPerSeed + 2) / 3;  // kills each phase must get, at least

using clickpipe::crash::KillOnExit;
using clickpipe::crash::poll_until;
using clickpipe::crash::spawn;
using clickpipe::crash::wait_exit;
using clickpipe::test::slurp;

bool wait_file(const fs::path& p, const std::string& value, std::chrono::milliseconds timeout) {
  return poll_until([&] { return slurp(p) == value; }, timeout);
}

// A directory of this test process's own, empty.
fs::path fresh_dir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("clickpipe-crash-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(dir);
  return dir;
}

// The phase of pipe A a kill landed in, from the state A was last seen in (none yet: it was
// still provisioning).
enum class Phase { Load, Cdc, Other };
Phase phase_of(const std::string& state) {
  if (state.empty() || state == "Setup" || state == "Snapshot") return Phase::Load;
  if (state == "Running") return Phase::Cdc;
  return Phase::Other;
}

class KillAtRandomPoints : public ::testing::TestWithParam<int> {};

TEST_P(KillAtRandomPoints, RecoversWithNothingLostOrCopiedTwice) {
  const int seed = GetParam();
  const fs::path dir = fresh_dir(std::to_string(seed));
  const std::string helper = CLICKPIPE_CRASH_HELPER;
  ASSERT_EQ(wait_exit(spawn({helper, dir.string(), "init"}), 60s), 0);

  std::mt19937 rng(static_cast<unsigned>(seed));
  std::map<std::string, int> landed;  // state of pipe A at each kill
  int late = 0, in_load = 0, in_cdc = 0;
  for (int k = 0; k < kKillsPerSeed; ++k) {
    const pid_t pid = spawn({helper, dir.string(), "run", std::to_string(seed * 100 + k)});
    ASSERT_GT(pid, 0);
    KillOnExit guard{pid};
    // Kills are timed from when this process has its pipes (restored or created). The first
    // two come early, in the initial load (it takes over 300 ms: 40 partitions of at least
    // 15 ms, two at a time); the third at any moment, the end of the load included; the rest
    // wait for CDC.
    bool reached = wait_file(dir / "started", std::to_string(pid), 60s);
    if (reached && k >= 3) reached = wait_file(dir / "state_A", "Running", 60s);
    const int ms = static_cast<int>(rng() % (k < 2 ? 100 : 300));
    if (reached) std::this_thread::sleep_for(std::chrono::milliseconds(ms));  // the seeded moment
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    const std::optional<int> rc = wait_exit(pid, 60s);
    if (!reached || rc != 128 + SIGKILL) {
      ++late;
      ADD_FAILURE() << "kill " << k << " came late: "
                    << (reached ? "the helper ended before it" : "its point was never reached");
    }
    const std::string state = slurp(dir / "state_A");
    ++landed[state.empty() ? "before Setup" : state];
    in_load += phase_of(state) == Phase::Load;
    in_cdc += phase_of(state) == Phase::Cdc;
    ASSERT_EQ(slurp(dir / "violations"), "") << "after kill " << k << " at " << ms << " ms";
  }
  std::string where;
  for (const auto& [s, n] : landed) where += s + ":" + std::to_string(n) + " ";
  RecordProperty("kill_points", where);
  std::printf("seed %d: %d kills landed in %s\n", seed, kKillsPerSeed, where.c_str());
  EXPECT_EQ(late, 0);
  EXPECT_GE(in_load, kThird) << "kills must land in the initial load: " << where;
  EXPECT_GE(in_cdc, kThird) << "kills must land in CDC: " << where;

  const pid_t verifier = spawn({helper, dir.string(), "verify"});
  KillOnExit verify_guard{verifier};  // a verify that hangs must not outlive the test
  EXPECT_EQ(wait_exit(verifier, 120s), 0)
      << "after kills in " << where << "; violations: " << slurp(dir / "violations");
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Seeds, KillAtRandomPoints, ::testing::Range(1, kSeeds + 1));

// The mutation check: after a restart the helper leaves one batch of inserts unapplied while its
// position is saved and confirmed as usual. verify must then fail, finding the tables differ:
// the comparison the kill tests rely on can catch a lost batch.
TEST(KillAtRandomPoints, ABatchDroppedAfterARestartIsCaught) {
  const fs::path dir = fresh_dir("mutation");
  const std::string helper = CLICKPIPE_CRASH_HELPER;
  ASSERT_EQ(wait_exit(spawn({helper, dir.string(), "init"}), 60s), 0);
  {
    // Up to CDC, then killed: the next run is a restart.
    const pid_t pid = spawn({helper, dir.string(), "run", "1"});
    ASSERT_GT(pid, 0);
    KillOnExit guard{pid};
    ASSERT_TRUE(wait_file(dir / "started", std::to_string(pid), 60s));
    ASSERT_TRUE(wait_file(dir / "state_A", "Running", 60s));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    ASSERT_EQ(wait_exit(pid, 60s), 128 + SIGKILL);
  }
  {
    const pid_t pid = spawn({helper, dir.string(), "run", "2", "--drop-one-batch-after-restart"});
    ASSERT_GT(pid, 0);
    KillOnExit guard{pid};
    ASSERT_TRUE(wait_file(dir / "started", std::to_string(pid), 60s));
    ASSERT_TRUE(poll_until([&] { return !slurp(dir / "dropped").empty(); }, 60s))
        << "no batch was dropped";
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    ASSERT_EQ(wait_exit(pid, 60s), 128 + SIGKILL);
  }
  const pid_t verifier = spawn({helper, dir.string(), "verify"});
  KillOnExit verify_guard{verifier};
  EXPECT_EQ(wait_exit(verifier, 120s), 1)
      << "verify passed without the dropped batch: " << slurp(dir / "dropped");
  EXPECT_NE(slurp(dir / "mismatch"), "") << "the destination must differ from the source";
  EXPECT_EQ(slurp(dir / "violations"), "") << "and nothing else may be wrong";
  fs::remove_all(dir);
}

}  // namespace
