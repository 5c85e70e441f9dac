// Listeners and concurrency: every transition exactly once and in order, commands from listeners
// queued (never recursive), racing commands from many threads.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "world.hpp"

namespace clickpipe::test {
namespace {

using testing::drive_to;
using testing::wait_until;
namespace op = testing::op;
using Log = std::vector<std::string>;

// The ids of this process's threads, as the kernel lists them.
std::set<std::string> thread_ids() {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    out.insert(e.path().filename().string());
  }
  return out;
}

// How many threads run now that were not there in `before`.
std::size_t threads_since(const std::set<std::string>& before) {
  std::size_t n = 0;
  for (const std::string& t : thread_ids()) n += before.count(t) == 0;
  return n;
}

// Waits until every thread started since `before` is gone: a joined thread may stay listed for
// a moment after join() returns. The wait is short on purpose: a detached worker that ends on
// its own a little later must not pass for a joined one.
bool all_gone_since(const std::set<std::string>& before, std::chrono::milliseconds timeout = 1s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (threads_since(before) > 0) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Pauses the pipe from inside the listener when it reaches Running, and checks it is never
// re-entered while a call is in progress.
struct PausingListener : TransitionListener {
  Pipe* pipe = nullptr;
  std::atomic<int> depth{0};
  std::atomic<int> max_depth{0};
  std::atomic<int> queued{0};
  void on_transition(const TransitionEvent& e) override {
    const int d = ++depth;
    max_depth = std::max(max_depth.load(), d);
    if (e.transition.to == State::Running && e.transition.from == State::Snapshot) {
      const CommandResult r = pipe->pause();
      if (r.status == CommandResult::Status::Queued) ++queued;
    }
    --depth;
  }
};

TEST(Listeners, ACommandFromAListenerIsQueuedNotDispatchedRecursively) {
  World w;
  Pipe& p = w.make(w.config("p1"));
  auto l = std::make_shared<PausingListener>();
  l->pipe = &p;
  p.add_listener(l);
  p.start();
  ASSERT_TRUE(p.wait_for(State::Paused, 10s));
  EXPECT_EQ(l->queued.load(), 1);
  EXPECT_EQ(l->max_depth.load(), 1);
  ASSERT_TRUE(w.listener->wait_for_entries(5));
  EXPECT_EQ(w.log_from(2, 5),
            (Log{"Snapshot -[snapshot_done]-> Running", "Running -[pause]-> Pausing",
                 "Pausing -[cdc_stopped]-> Paused"}));
}

TEST(Listeners, AQueuedCommandRefusedLaterReachesOnRejected) {
  World w;
  Pipe& p = w.make(w.config("p1"));
  struct ResumeInSetup : TransitionListener {
    Pipe* pipe = nullptr;
    void on_transition(const TransitionEvent& e) override {
      if (e.transition.to == State::Setup) pipe->resume();
    }
  };
  auto l = std::make_shared<ResumeInSetup>();
  l->pipe = &p;
  p.add_listener(l);
  p.start();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  const Log log = w.log_from(0, 4);
  ASSERT_GE(log.size(), 2u);
  EXPECT_EQ(log[1], "REJECTED: resume is not allowed in state Setup");
}

TEST(Listeners, AThrowingListenerDoesNotStopThePipeOrOthers) {
  World w;
  struct Thrower : TransitionListener {
    void on_transition(const TransitionEvent&) override { throw std::runtime_error("boom"); }
  };
  Pipe& p = w.make(w.config("p1"));
  p.add_listener(std::make_shared<Thrower>());
  p.start();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  ASSERT_TRUE(w.listener->wait_for_entries(3));
}

TEST(Listeners, SeeEveryTransitionExactlyOnceInOrderUnderRacingCommands) {
  World w;
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  std::atomic<bool> go{true};
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int i = 0; i < 1500 && go; ++i) {
        CommandResult r;
        switch (rng() % 4) {
          case 0: r = p.pause(); break;
          case 1: r = p.resume(); break;
          case 2: r = p.update_settings(World::fast_settings()); break;
          default: (void)p.status(); break;
        }
        if (r.accepted()) ++accepted;
      }
    });
  }
  std::thread writer([&] {
    for (int i = 0; go && i < 3000; ++i) w.mem.source->insert(w.orders, row(50000 + i, "r"));
  });
  for (auto& t : threads) t.join();
  go = false;
  writer.join();

  // Settle in Running and compare what listeners saw with the history.
  if (p.state() == State::Pausing) {
    ASSERT_TRUE(p.wait_for(State::Paused, 10s));
  }
  if (p.state() == State::Paused) {
    ASSERT_TRUE(p.resume());
  }
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  const PipeStatus s = p.status();
  ASSERT_TRUE(w.listener->wait_for_entries(s.transitions));
  const Log log = w.listener->log();
  EXPECT_EQ(log.size(), s.transitions);
  EXPECT_GT(accepted.load(), 10);
  // The sequence of external transitions is connected: each starts where the last ended.
  ASSERT_FALSE(s.history.empty());
  State at = s.history.front().from;
  for (const HistoryEntry& h : s.history) {
    if (h.from == h.to && h.trigger == Trigger::UpdateSettings) continue;
    EXPECT_EQ(h.from, at);
    at = h.to;
  }
  // Each recorded line is a legal row of the table.
  for (const HistoryEntry& h : s.history) {
    Lifecycle l = Lifecycle::restore(h.from, LifecycleContext{});
    if (h.from == State::Pausing) continue;  // its rows depend on why it paused
    EXPECT_TRUE(l.check(h.trigger).ok()) << fmt::format("{} -[{}]-> {}", h.from, h.trigger, h.to);
  }
}

TEST(Concurrency, ManyPipesOnOneServiceProvisionTheServiceOnce) {
  World w;
  std::vector<Pipe*> ps;
  for (int i = 0; i < 8; ++i) ps.push_back(&w.started(w.config(fmt::format("p{}", i))));
  for (Pipe* p : ps) ASSERT_TRUE(p->wait_for(State::Running, 10s));
  EXPECT_EQ(w.mem.service->bring_ups(), 1);
  EXPECT_EQ(w.mem.service->pipes().size(), 8u);
  w.fill(w.orders, 60000, 60100);
  EXPECT_TRUE(w.wait_in_sync(w.orders));
}

// Destroyed right after start (whatever state it is in), in the initial load with a partition
// worker inside a copy, or streaming: every thread the pipe started is gone afterwards.
TEST(Concurrency, DestroyingARunningPipeStopsItsWorkers) {
  // A first thread makes a sanitizer start its background thread (ThreadSanitizer does at the
  // first pthread_create): listed before, it is not taken for a worker left behind.
  std::thread([] {}).join();
  const std::set<std::string> before = thread_ids();
  for (int i = 0; i < 48; ++i) {
    World w;
    if (i % 3 == 1) w.faults->hang(op::copy_partition, 2);  // until cancelled
    Pipe& p = w.started(w.config("p1"));
    if (i % 3 == 1) {
      ASSERT_TRUE(wait_until(p, [&](const PipeStatus& s) {
        return s.state == State::Snapshot && w.faults->calls(op::copy_partition) >= 2;
      }));
    } else if (i % 3 == 2) {
      ASSERT_TRUE(wait_until(p, [&](const PipeStatus& s) {
        return s.state == State::Running && w.faults->calls(op::pull) >= 2;
      }));
    }
    EXPECT_GT(threads_since(before), 0u) << "round " << i << ": the pipe has a worker";
    const State at = p.state();
    w.pipes.clear();  // joins, whatever the state
    EXPECT_TRUE(all_gone_since(before)) << "round " << i << ", destroyed in " << to_string(at)
                                        << ": " << threads_since(before) << " thread(s) left";
  }
}

}  // namespace
}  // namespace clickpipe::test
