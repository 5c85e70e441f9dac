// Kill tests with real processes: crash_helper runs pipes over journaled in-memory executors and
// a FileStore while writes go on, and is killed with SIGKILL at seeded random moments; after the
// last kill it must catch up with everything equal, no done partition copied again, every saved
// state legal, and the paused pipe still paused and unmoved.
#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include "process.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
constexpr int kKillsPerSeed = 5;
constexpr int kSeeds = 10;

using clickpipe::crash::spawn;

// Waits as long as it takes (ctest's timeout bounds it).
int wait_exit(pid_t pid) { return *clickpipe::crash::wait_exit(pid, std::chrono::hours(1)); }

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class KillAtRandomPoints : public ::testing::TestWithParam<int> {};

TEST_P(KillAtRandomPoints, RecoversWithNothingLostOrCopiedTwice) {
  const int seed = GetParam();
  const fs::path dir =
      fs::temp_directory_path() /
      ("clickpipe-crash-" + std::to_string(::getpid()) + "-" + std::to_string(seed));
  fs::remove_all(dir);
  const std::string helper = CLICKPIPE_CRASH_HELPER;
  ASSERT_EQ(wait_exit(spawn({helper, dir.string(), "init"})), 0);

  std::mt19937 rng(static_cast<unsigned>(seed));
  std::map<std::string, int> landed;  // state of pipe A at each kill
  for (int k = 0; k < kKillsPerSeed; ++k) {
    const pid_t pid = spawn({helper, dir.string(), "run", std::to_string(seed * 100 + k)});
    ASSERT_GT(pid, 0);
    // Wait until this process has its pipes running (restored or created), then kill it after a
    // seeded random delay: early kills land in the initial load, later ones in CDC.
    const auto up_by = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (read(dir / "started") != std::to_string(pid) &&
           std::chrono::steady_clock::now() < up_by) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    // The first kills come early, in the initial load; then half of them wait for CDC.
    if (k >= 2 && rng() % 2) {
      while (read(dir / "state_A") != "Running" && std::chrono::steady_clock::now() < up_by) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
    const int ms = static_cast<int>(rng() % (k < 2 ? 150 : 300));
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    EXPECT_EQ(wait_exit(pid), 128 + SIGKILL) << "the helper ended before its kill";
    const std::string state = read(dir / "state_A");
    ++landed[state.empty() ? "before Setup" : state];
    ASSERT_EQ(read(dir / "violations"), "") << "after kill " << k << " at " << ms << " ms";
  }
  std::string where;
  for (const auto& [s, n] : landed) where += s + ":" + std::to_string(n) + " ";
  RecordProperty("kill_points", where);
  std::printf("seed %d: %d kills landed in %s\n", seed, kKillsPerSeed, where.c_str());

  EXPECT_EQ(wait_exit(spawn({helper, dir.string(), "verify"})), 0)
      << "after kills in " << where << "; violations: " << read(dir / "violations");
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Seeds, KillAtRandomPoints, ::testing::Range(1, kSeeds + 1));

}  // namespace
