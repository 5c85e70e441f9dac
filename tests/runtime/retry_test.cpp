// Transient errors, backoff, budgets, Failed, retry and resync, health and Degraded.
#include <gtest/gtest.h>

#include "world.hpp"

namespace clickpipe::test {
namespace {

using testing::wait_until;
namespace op = testing::op;
using Log = std::vector<std::string>;

TEST(Retry, TransientSetupErrorsAreRetriedWithExponentialBackoff) {
  World w;
  w.faults->transient(op::read_definitions, 1, 3);
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  EXPECT_EQ(w.faults->calls(op::read_definitions), 4u);
  EXPECT_EQ(w.clock->sleeps(),
            (std::vector<std::chrono::nanoseconds>{100ms, 200ms, 400ms}));  // jitter 0
  const auto retries = w.listener->retries();
  ASSERT_EQ(retries.size(), 3u);
  EXPECT_EQ(retries[2].attempt, 3u);
  EXPECT_EQ(retries[2].max_attempts, 20u);
  EXPECT_NE(retries[2].last_error.find("injected transient failure of read_definitions"),
            std::string::npos);
  EXPECT_FALSE(p.status().retry.has_value()) << "cleared after success";
}

TEST(Retry, StatusShowsTheAttemptWhileWaiting) {
  World w;
  auto clock = std::make_shared<testing::ManualClock>(false);
  w.clock = clock;
  w.faults->transient(op::provision, 1, 1);
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(clock->wait_for_sleepers(1, 10s));
  const PipeStatus s = p.status();
  EXPECT_EQ(s.state, State::Provisioning);
  ASSERT_TRUE(s.retry.has_value());
  EXPECT_EQ(s.retry->operation, "provisioning");
  EXPECT_EQ(s.retry->attempt, 1u);
  ASSERT_TRUE(s.retry->next_attempt_at.has_value());
  EXPECT_EQ(*s.retry->next_attempt_at - clock->now(), 100ms);
  clock->advance(100ms);
  EXPECT_TRUE(p.wait_for(State::Running, 10s));
}

TEST(Retry, JitterSpreadsTheBackoffWithinItsBounds) {
  RetryPolicy r{.max_attempts = 5,
                .initial_backoff = 1000ms,
                .max_backoff = 8000ms,
                .multiplier = 2.0,
                .jitter = 0.25};
  EXPECT_EQ(r.backoff(1, 0.0), 750ms);
  EXPECT_EQ(r.backoff(1, 0.5), 1000ms);
  EXPECT_EQ(r.backoff(3, 1.0), 5000ms);
  EXPECT_EQ(r.backoff(10, 1.0), 8000ms) << "capped";
}

TEST(Retry, ExhaustedBudgetFailsThePipeAndRetryReentersTheState) {
  World w;
  w.faults->transient(op::read_definitions, 1, 3);
  PipeConfig cfg = w.config("p1");
  cfg.settings.setup_retry.max_attempts = 3;
  Pipe& p = w.started(cfg);
  ASSERT_TRUE(p.wait_for(State::Failed, 10s));
  PipeStatus s = p.status();
  ASSERT_TRUE(s.last_error.has_value());
  EXPECT_TRUE(s.last_error->fatal);
  EXPECT_EQ(s.last_error->state, State::Setup);
  EXPECT_NE(s.last_error->message.find("failed after 3 attempts"), std::string::npos)
      << s.last_error->message;
  EXPECT_EQ(s.allowed_commands, (TriggerSet{Trigger::Retry, Trigger::Resync,
                                            Trigger::UpdateSettings, Trigger::Delete}));

  ASSERT_TRUE(p.retry());  // the fourth call succeeds
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  const Log log = w.log_from(1, 4);
  EXPECT_EQ(Log(log.begin(), log.begin() + 3),
            (Log{"Setup -[fatal_error]-> Failed", "Failed -[retry]-> Setup",
                 "Setup -[setup_done]-> Snapshot"}));
}

TEST(Retry, FatalErrorFailsAtOnce) {
  World w;
  w.faults->fatal(op::create_tables, 1);
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Failed, 10s));
  EXPECT_EQ(w.faults->calls(op::create_tables), 1u);
  EXPECT_TRUE(w.clock->sleeps().empty());
  EXPECT_NE(p.status().last_error->message.find("injected fatal failure"), std::string::npos);
}

TEST(Retry, AnUnclassifiedExceptionIsFatalWithItsMessageKept) {
  World w;
  w.faults->unclassified(op::provision, 1);
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Failed, 10s));
  EXPECT_NE(p.status().last_error->message.find("injected plain exception from provision"),
            std::string::npos);
}

TEST(Retry, EachSnapshotPartitionHasItsOwnBudget) {
  World w;
  PipeConfig cfg = w.config("p1");
  cfg.settings.partitions_in_parallel = 1;
  cfg.settings.tables_in_parallel = 1;
  w.faults->transient(op::copy_partition, 2, 4);  // partition 2 fails 4 times, 5th attempt wins
  Pipe& p = w.started(cfg);
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  EXPECT_TRUE(w.in_sync(w.orders));
}

TEST(Retry, ASnapshotPartitionOutOfAttemptsFailsAndRetryKeepsDonePartitions) {
  World w;
  PipeConfig cfg = w.config("p1");
  cfg.settings.partitions_in_parallel = 1;
  cfg.settings.tables_in_parallel = 1;
  w.faults->transient(op::copy_partition, 3, 5);
  Pipe& p = w.started(cfg);
  ASSERT_TRUE(p.wait_for(State::Failed, 10s));
  EXPECT_EQ(p.status().last_error->state, State::Snapshot);
  const auto done_before = p.status().snapshot[0].partitions_done;
  EXPECT_EQ(done_before, 2u);
  const auto calls_before = w.faults->calls(op::copy_partition);
  ASSERT_TRUE(p.retry());
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  // orders has 5 partitions, users 3: only the 6 not yet done are copied again.
  EXPECT_EQ(w.faults->calls(op::copy_partition) - calls_before, 6u);
  EXPECT_TRUE(w.in_sync(w.orders));
  EXPECT_TRUE(w.in_sync(w.users));
}

TEST(Retry, ResyncRecoversAFailedPipe) {
  World w;
  w.faults->fatal(op::pull, 3);
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Failed, 10s));
  EXPECT_EQ(p.status().last_error->state, State::Running);
  ASSERT_TRUE(p.resync());
  ASSERT_TRUE(wait_until(p, [](const PipeStatus& s) {
    return s.state == State::Running && s.history.back().trigger == Trigger::SwapDone;
  }));
  EXPECT_TRUE(w.wait_in_sync(w.orders));
}

TEST(Retry, CdcRetriesWithoutEndAndResumesFromTheConfirmedPosition) {
  World w;
  w.faults->transient(op::apply, 1, 30);
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  for (int i = 0; i < 5; ++i) w.mem.source->insert(w.orders, row(10000 + i, "x"));
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  EXPECT_GE(w.faults->calls(op::cdc_start), 31u) << "every failure reopens the stream";
  EXPECT_EQ(p.state(), State::Running);
}

TEST(Retry, WithoutAHealthPolicyThePipeIsNeverDegraded) {
  World w;
  w.faults->transient(op::pull, 1, 10);
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  ASSERT_TRUE(wait_until(p, [&](const PipeStatus&) { return w.faults->calls(op::pull) > 12; }));
  for (State s : w.listener->states()) EXPECT_NE(s, State::Degraded);
}

TEST(Health, APolicyMovesThePipeToDegradedAndBack) {
  World w;
  w.faults->transient(op::pull, 1, 3);
  Pipe& p = w.make(w.config("p1"), std::make_shared<ThresholdHealthPolicy>(2, 1u << 30));
  p.start();
  ASSERT_TRUE(wait_until(p, [&](const PipeStatus& s) {
    return s.state == State::Running && w.faults->calls(op::pull) > 4;
  }));
  ASSERT_TRUE(w.listener->wait_for_entries(6));
  const Log log = w.listener->log();
  const Log tail(log.begin() + 3, log.end());
  EXPECT_EQ(tail, (Log{"Running -[unhealthy]-> Degraded", "Degraded -[unhealthy]- (stays)",
                       "Degraded -[healthy]-> Running"}));
}

TEST(Health, DegradedKeepsStreamingAndCanBePaused) {
  World w;
  struct Always : HealthPolicy {
    std::optional<std::string> unhealthy(const HealthSignals&) override { return "always"; }
  };
  Pipe& p = w.make(w.config("p1"), std::make_shared<Always>());
  p.start();
  ASSERT_TRUE(p.wait_for(State::Degraded, 10s));
  EXPECT_EQ(p.status().degraded_reason, "always");
  w.fill(w.orders, 20000, 20010);
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  ASSERT_TRUE(p.pause());
  EXPECT_TRUE(p.wait_for(State::Paused, 10s));
}

}  // namespace
}  // namespace clickpipe::test
