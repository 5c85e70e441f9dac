// A store that refuses saves. For good (a StoreError that is not transient): the pipe's work stops
// where it was saved, status and listeners say why, and a restart on a healed store resumes. For
// now (StoreErrorCode::Unavailable): the save is retried until the store heals.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "clickpipe/store/memory_store.hpp"
#include "world.hpp"

namespace clickpipe::test {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

// A MemoryStore that counts save attempts and fails those it is told to.
class CountingStore final : public StateStore {
 public:
  LoadResult load_all() override { return inner_.load_all(); }
  void save(const PipeRecord& record) override {
    std::optional<StoreErrorCode> code;
    {
      std::lock_guard lk(mu_);
      ++attempts_;
      if (code_ && attempts_ >= fail_from_) {
        code = code_;
        ++failures_;
        if (times_ > 0 && --times_ == 0) code_.reset();
      }
    }
    if (code) throw StoreError(*code, "injected " + std::string(to_string(*code)));
    inner_.save(record);
  }
  void remove(const std::string& id) override { inner_.remove(id); }
  bool holds(const std::string& id) override { return inner_.holds(id); }

  // Save attempts from the `from`-th on fail with `code`: `times` of them, or all until heal().
  void fail_from(std::size_t from, StoreErrorCode code, std::size_t times = 0) {
    std::lock_guard lk(mu_);
    fail_from_ = from;
    code_ = code;
    times_ = times;
  }
  void heal() {
    std::lock_guard lk(mu_);
    code_.reset();
  }
  std::size_t attempts() const {
    std::lock_guard lk(mu_);
    return attempts_;
  }
  std::size_t failures() const {
    std::lock_guard lk(mu_);
    return failures_;
  }
  PipeRecord saved(const std::string& id) {
    for (auto& r : inner_.load_all().records) {
      if (r.id == id) return r;
    }
    ADD_FAILURE() << "no record " << id;
    return PipeRecord();
  }

 private:
  MemoryStore inner_;
  mutable std::mutex mu_;
  std::size_t attempts_ = 0;
  std::size_t failures_ = 0;
  std::size_t fail_from_ = 0;
  std::size_t times_ = 0;
  std::optional<StoreErrorCode> code_;
};

// Records the retries listeners are told of and lets a test wait for them.
class RetryWitness final : public TransitionListener {
 public:
  void on_retry(const std::string&, const RetryStatus& retry) override {
    std::lock_guard lk(mu_);
    retries_.push_back(retry);
    cv_.notify_all();
  }
  std::vector<RetryStatus> wait_for(std::size_t n) const {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, 10s, [&] { return retries_.size() >= n; });
    return retries_;
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<RetryStatus> retries_;
};

PipeOptions options(const World& w, std::shared_ptr<StateStore> store) {
  PipeOptions o;
  o.logger = quiet_logger();
  o.clock = w.clock;
  o.seed = 1;
  o.store = std::move(store);
  return o;
}

bool names_the_store(const std::string& text) {
  return text.find("the store cannot save: injected") == 0;
}

TEST(StoreFailure, ARefusedTransitionSaveStopsTheWorkAndSaysWhy) {
  World w;
  auto store = std::make_shared<CountingStore>();
  store->fail_from(2, StoreErrorCode::Failed);  // the constructor's save goes through
  auto witness = std::make_shared<RetryWitness>();
  Pipe p(w.config("p1"), w.mem.executors("p1"), options(w, store));
  p.add_listener(witness);
  p.start();

  const std::vector<RetryStatus> told = witness->wait_for(1);
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].operation, "store: save transition");
  EXPECT_TRUE(names_the_store(told[0].last_error)) << told[0].last_error;
  EXPECT_FALSE(told[0].next_attempt_at.has_value()) << "no retry is coming";

  const PipeStatus s = p.status();
  EXPECT_EQ(s.state, State::Provisioning) << "the state stays what was last saved";
  ASSERT_TRUE(s.last_error.has_value());
  EXPECT_TRUE(names_the_store(s.last_error->message)) << s.last_error->message;
  ASSERT_TRUE(s.retry.has_value());
  EXPECT_TRUE(names_the_store(s.retry->last_error)) << s.retry->last_error;
  EXPECT_EQ(store->saved("p1").lifecycle.state(), State::Provisioning);

  // A command that must save is refused with the reason, and changes nothing.
  const CommandResult r = p.remove();
  EXPECT_EQ(r.status, CommandResult::Status::Unavailable);
  EXPECT_NE(r.message.find("injected failed"), std::string::npos) << r.message;
  EXPECT_EQ(p.state(), State::Provisioning);

  // Joined: three attempts in all (the constructor's, the worker's refused one, the command's);
  // the worker never backed off to try again.
  p.shutdown();
  EXPECT_EQ(store->attempts(), 3u);
  EXPECT_TRUE(w.clock->sleeps().empty());

  // Restarted on a healed store, it resumes.
  store->heal();
  p.start();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  EXPECT_TRUE(w.in_sync(w.orders));
  EXPECT_FALSE(p.status().retry.has_value());
}

TEST(StoreFailure, ARefusedPartitionSaveKeepsTheDonePartitionsForARestart) {
  World w;
  auto store = std::make_shared<CountingStore>();
  PipeConfig cfg = w.config("p1");
  cfg.settings.partitions_in_parallel = 1;  // one copy at a time: the attempts are exact
  cfg.settings.tables_in_parallel = 1;
  // Saves: created, provisioned, definitions, set up, slot, two plans, then partitions.
  store->fail_from(10, StoreErrorCode::Refused);
  {
    Pipe p(cfg, w.mem.executors("p1"), options(w, store));
    p.start();
    ASSERT_TRUE(wait_until(
        p, [](const PipeStatus& s) { return s.retry && names_the_store(s.retry->last_error); }));
    const PipeStatus s = p.status();
    EXPECT_EQ(s.state, State::Snapshot);
    EXPECT_EQ(s.retry->operation, "store: save partition");
    p.shutdown();
    EXPECT_EQ(store->attempts(), 10u) << "one refused attempt, none after it";
    EXPECT_EQ(store->failures(), 1u);
  }
  const PipeRecord saved = store->saved("p1");
  EXPECT_EQ(saved.lifecycle.state(), State::Snapshot);
  ASSERT_FALSE(saved.load.empty());
  EXPECT_EQ(saved.load[0].done.size(), 2u) << "the partitions saved before the refusal";

  store->heal();
  Pipe again(saved, w.mem.executors("p1"), options(w, store));
  again.start();
  ASSERT_TRUE(again.wait_for(State::Running, 10s));
  EXPECT_TRUE(w.in_sync(w.orders));
  EXPECT_TRUE(w.in_sync(w.users));
}

TEST(StoreFailure, ARefusedCdcPositionStopsStreamingBeforeConfirming) {
  World w;
  auto store = std::make_shared<CountingStore>();
  Pipe p(w.config("p1"), w.mem.executors("p1"), options(w, store));
  p.start();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  ASSERT_TRUE(w.wait_in_sync(w.orders));
  store->fail_from(store->attempts() + 1, StoreErrorCode::Failed);
  w.fill(w.orders, 10000, 10050);
  ASSERT_TRUE(wait_until(
      p, [](const PipeStatus& s) { return s.retry && names_the_store(s.retry->last_error); }));
  EXPECT_EQ(p.status().retry->operation, "store: save CDC position");
  EXPECT_EQ(p.state(), State::Running);
  p.shutdown();
  EXPECT_EQ(store->failures(), 1u) << "refused once, never tried again";
  EXPECT_EQ(w.mem.source->confirmed("clickpipe_p1"), store->saved("p1").confirmed)
      << "nothing the store refused was confirmed to the source";

  const auto refused_at = store->saved("p1").confirmed;
  store->heal();
  p.start();
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  // The restarted stream saves (and only then confirms) past the refused point.
  EXPECT_TRUE(wait_until(p, [&](const PipeStatus&) {
    return store->saved("p1").confirmed > refused_at &&
           w.mem.source->confirmed("clickpipe_p1") == store->saved("p1").confirmed;
  }));
  EXPECT_EQ(store->failures(), 1u);
  EXPECT_FALSE(p.status().retry);
}

TEST(StoreFailure, AnUnavailableStoreIsRetriedAndThePipeMovesOnWhenItHeals) {
  World w;
  auto clock = std::make_shared<testing::ManualClock>(false);
  w.clock = clock;
  auto store = std::make_shared<CountingStore>();
  store->fail_from(2, StoreErrorCode::Unavailable);
  Pipe p(w.config("p1"), w.mem.executors("p1"), options(w, store));
  p.start();

  ASSERT_TRUE(clock->wait_for_sleepers(1, 10s)) << "waiting to try again";
  const PipeStatus s = p.status();
  EXPECT_EQ(s.state, State::Provisioning);
  ASSERT_TRUE(s.retry.has_value());
  EXPECT_EQ(s.retry->operation, "store: save transition");
  EXPECT_EQ(s.retry->last_error, "injected unavailable");
  EXPECT_TRUE(s.retry->next_attempt_at.has_value());
  EXPECT_EQ(store->attempts(), 2u);

  store->heal();
  clock->advance(100ms);  // the first backoff of World::fast_settings
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  EXPECT_EQ(store->failures(), 1u);
  EXPECT_GT(store->attempts(), 2u);
  EXPECT_FALSE(p.status().retry.has_value());
  EXPECT_TRUE(w.in_sync(w.orders));
}

TEST(StoreFailure, AFewUnavailableSavesAreRetriedWithBackoff) {
  World w;
  auto store = std::make_shared<CountingStore>();
  store->fail_from(2, StoreErrorCode::Unavailable, 3);
  auto witness = std::make_shared<RetryWitness>();
  Pipe p(w.config("p1"), w.mem.executors("p1"), options(w, store));
  p.add_listener(witness);
  p.start();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  const std::vector<RetryStatus> told = witness->wait_for(3);
  ASSERT_EQ(told.size(), 3u);
  for (std::uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(told[i].attempt, i + 1);
    EXPECT_TRUE(told[i].next_attempt_at.has_value());
  }
  EXPECT_EQ(w.clock->sleeps(), (std::vector<std::chrono::nanoseconds>{100ms, 200ms, 400ms}));
  EXPECT_EQ(store->failures(), 3u);
}

}  // namespace
}  // namespace clickpipe::test
