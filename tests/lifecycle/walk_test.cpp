// Whole journeys through the model, recording every transition and asserting the exact sequence.
#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "../print.hpp"
#include "clickpipe/clickpipe.hpp"

namespace clickpipe {
namespace {

using T = Trigger;
using S = State;

// Applies each trigger in turn; records "From -[trigger]-> To", or "REJECTED: ..." and goes on.
std::vector<std::string> run(Lifecycle& l, std::initializer_list<Trigger> triggers) {
  std::vector<std::string> log;
  for (Trigger t : triggers) {
    ApplyResult r = l.apply(t);
    log.push_back(r ? fmt::format("{}", r.transition())
                    : fmt::format("REJECTED: {}", r.rejection()));
  }
  return log;
}

using Log = std::vector<std::string>;

TEST(Walk, InitialLoadAndCdcHappyPath) {
  Lifecycle l;
  EXPECT_EQ(l.state(), S::Provisioning);
  EXPECT_EQ(run(l, {T::Provisioned, T::SetupDone, T::SnapshotDone}),
            (Log{"Provisioning -[provisioned]-> Setup", "Setup -[setup_done]-> Snapshot",
                 "Snapshot -[snapshot_done]-> Running"}));
}

TEST(Walk, CdcOnlySkipsTheSnapshot) {
  Lifecycle l(Mode::CdcOnly);
  EXPECT_EQ(run(l, {T::Provisioned, T::SetupDone}),
            (Log{"Provisioning -[provisioned]-> Setup", "Setup -[setup_done]-> Running"}));
}

TEST(Walk, SnapshotOnlyCompletesAndCannotPause) {
  Lifecycle l(Mode::SnapshotOnly);
  EXPECT_EQ(run(l, {T::Provisioned, T::SetupDone, T::SnapshotDone, T::Pause}),
            (Log{"Provisioning -[provisioned]-> Setup", "Setup -[setup_done]-> Snapshot",
                 "Snapshot -[snapshot_done]-> Completed",
                 "REJECTED: pause is not allowed in state Completed"}));
}

Lifecycle running(Mode m = Mode::InitialLoadAndCdc) {
  Lifecycle l(m);
  l.apply(T::Provisioned);
  l.apply(T::SetupDone);
  if (m != Mode::CdcOnly) l.apply(T::SnapshotDone);
  return l;
}

TEST(Walk, PauseGoesThroughPausingAndResumeReturns) {
  Lifecycle l = running();
  EXPECT_EQ(run(l, {T::Pause, T::Pause, T::CdcStopped, T::Resume}),
            (Log{"Running -[pause]-> Pausing", "REJECTED: pause is not allowed in state Pausing",
                 "Pausing -[cdc_stopped]-> Paused", "Paused -[resume]-> Running"}));
}

TEST(Walk, AddTablesWhileRunningPausesSetsUpAndCopiesOnlyTheNewTables) {
  Lifecycle l = running();
  EXPECT_EQ(run(l, {T::AddTables, T::CdcStopped}),
            (Log{"Running -[add_tables]-> Pausing", "Pausing -[cdc_stopped]-> Setup"}));
  EXPECT_TRUE(l.context().adding_tables);
  EXPECT_EQ(run(l, {T::SetupDone, T::SnapshotDone}),
            (Log{"Setup -[setup_done]-> Snapshot", "Snapshot -[snapshot_done]-> Running"}));
  EXPECT_FALSE(l.context().adding_tables);
}

TEST(Walk, AddTablesFromPausedGoesStraightToSetup) {
  Lifecycle l = running();
  run(l, {T::Pause, T::CdcStopped});
  EXPECT_EQ(run(l, {T::AddTables, T::SetupDone, T::SnapshotDone}),
            (Log{"Paused -[add_tables]-> Setup", "Setup -[setup_done]-> Snapshot",
                 "Snapshot -[snapshot_done]-> Running"}));
}

TEST(Walk, CancelTableAdditionOnlyWhileCopyingAddedTables) {
  Lifecycle initial;
  run(initial, {T::Provisioned, T::SetupDone});
  EXPECT_EQ(run(initial, {T::CancelTableAddition}),
            (Log{"REJECTED: cancel_table_addition is not possible in state Snapshot now"}));

  Lifecycle l = running();
  EXPECT_EQ(run(l, {T::AddTables, T::CdcStopped, T::SetupDone, T::CancelTableAddition}),
            (Log{"Running -[add_tables]-> Pausing", "Pausing -[cdc_stopped]-> Setup",
                 "Setup -[setup_done]-> Snapshot", "Snapshot -[cancel_table_addition]-> Running"}));
  EXPECT_FALSE(l.context().adding_tables);
}

TEST(Walk, RemoveTablesReturnsToWhereItCameFrom) {
  Lifecycle l = running();
  EXPECT_EQ(run(l, {T::RemoveTables, T::CdcStopped, T::TablesRemoved}),
            (Log{"Running -[remove_tables]-> Pausing", "Pausing -[cdc_stopped]-> Modifying",
                 "Modifying -[tables_removed]-> Running"}));
  run(l, {T::Pause, T::CdcStopped});
  EXPECT_EQ(run(l, {T::RemoveTables, T::TablesRemoved}),
            (Log{"Paused -[remove_tables]-> Modifying", "Modifying -[tables_removed]-> Paused"}));
}

TEST(Walk, ResyncLoadsThenSwapsThenRuns) {
  Lifecycle l = running();
  EXPECT_EQ(run(l, {T::Resync, T::SnapshotDone, T::SwapDone}),
            (Log{"Running -[resync]-> Snapshot", "Snapshot -[snapshot_done]-> Resync",
                 "Resync -[swap_done]-> Running"}));
  EXPECT_FALSE(l.context().resyncing);
}

TEST(Walk, ResyncOfASnapshotOnlyPipeEndsCompleted) {
  Lifecycle l(Mode::SnapshotOnly);
  run(l, {T::Provisioned, T::SetupDone, T::SnapshotDone});
  EXPECT_EQ(run(l, {T::Resync, T::SnapshotDone, T::SwapDone}),
            (Log{"Completed -[resync]-> Snapshot", "Snapshot -[snapshot_done]-> Resync",
                 "Resync -[swap_done]-> Completed"}));
}

TEST(Walk, ResyncOfACdcOnlyPipeStillCopiesOnce) {
  Lifecycle l = running(Mode::CdcOnly);
  EXPECT_EQ(run(l, {T::Resync, T::SnapshotDone, T::SwapDone}),
            (Log{"Running -[resync]-> Snapshot", "Snapshot -[snapshot_done]-> Resync",
                 "Resync -[swap_done]-> Running"}));
}

TEST(Walk, ResyncDuringSetupRestartsSetupAndEndsWithASwap) {
  Lifecycle l;
  EXPECT_EQ(run(l, {T::Provisioned, T::Resync, T::SetupDone, T::SnapshotDone, T::SwapDone}),
            (Log{"Provisioning -[provisioned]-> Setup", "Setup -[resync]-> Setup",
                 "Setup -[setup_done]-> Snapshot", "Snapshot -[snapshot_done]-> Resync",
                 "Resync -[swap_done]-> Running"}));
}

TEST(Walk, ResyncClearsAPendingTableAddition) {
  Lifecycle l = running();
  run(l, {T::AddTables, T::CdcStopped, T::SetupDone});
  ASSERT_TRUE(l.context().adding_tables);
  l.apply(T::Resync);
  EXPECT_FALSE(l.context().adding_tables);
  EXPECT_TRUE(l.context().resyncing);
}

class FailureAndRetry : public ::testing::TestWithParam<std::pair<std::vector<Trigger>, State>> {};

// Drives a pipe into a state, fails it there, and checks retry goes back to the right place.
TEST_P(FailureAndRetry, RetryReentersTheFailedState) {
  const auto& [path, back_to] = GetParam();
  Lifecycle l;
  for (Trigger t : path) ASSERT_TRUE(l.apply(t).ok()) << to_string(t);
  const State failed_in = l.state();
  ASSERT_TRUE(l.apply(T::FatalError).ok());
  EXPECT_EQ(l.state(), S::Failed);
  EXPECT_EQ(l.context().failed_in, failed_in);
  EXPECT_EQ(l.allowed_commands(), (TriggerSet{T::Retry, T::Resync, T::UpdateSettings, T::Delete}));
  ApplyResult r = l.apply(T::Retry);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(l.state(), back_to);
  EXPECT_EQ(l.context().failed_in, S::Unknown);
}

INSTANTIATE_TEST_SUITE_P(
    EachWorkingState, FailureAndRetry,
    ::testing::Values(
        std::pair{std::vector<Trigger>{}, S::Provisioning},
        std::pair{std::vector<Trigger>{T::Provisioned}, S::Setup},
        std::pair{std::vector<Trigger>{T::Provisioned, T::SetupDone}, S::Snapshot},
        std::pair{std::vector<Trigger>{T::Provisioned, T::SetupDone, T::SnapshotDone}, S::Running},
        std::pair{std::vector<Trigger>{T::Provisioned, T::SetupDone, T::SnapshotDone, T::Pause},
                  S::Paused},
        std::pair{std::vector<Trigger>{T::Provisioned, T::SetupDone, T::SnapshotDone,
                                       T::RemoveTables, T::CdcStopped},
                  S::Modifying},
        std::pair{std::vector<Trigger>{T::Provisioned, T::SetupDone, T::SnapshotDone, T::Resync,
                                       T::SnapshotDone},
                  S::Resync},
        std::pair{std::vector<Trigger>{T::Provisioned, T::SetupDone, T::SnapshotDone, T::Unhealthy},
                  S::Running},
        std::pair{std::vector<Trigger>{T::Provisioned, T::Delete}, S::Terminating}));

TEST(Walk, FailureDuringAResyncKeepsResyncingAfterRetry) {
  Lifecycle l = running();
  run(l, {T::Resync, T::FatalError, T::Retry});
  EXPECT_EQ(l.state(), S::Snapshot);
  EXPECT_TRUE(l.context().resyncing);
  EXPECT_EQ(run(l, {T::SnapshotDone}), (Log{"Snapshot -[snapshot_done]-> Resync"}));
}

TEST(Walk, DeleteFromEveryLiveStateEndsTerminated) {
  for (State s : kAllStates) {
    if (s == S::Unknown || s == S::Terminated) continue;
    Lifecycle l = Lifecycle::restore(s, LifecycleContext{});
    ASSERT_TRUE(l.apply(T::Delete).ok()) << to_string(s);
    EXPECT_EQ(l.state(), S::Terminating);
    ASSERT_TRUE(l.apply(T::Terminated).ok());
    EXPECT_EQ(l.state(), S::Terminated);
    EXPECT_TRUE(l.allowed_commands().empty());
  }
}

TEST(Walk, DegradedComesAndGoesWithHealth) {
  Lifecycle l = running();
  EXPECT_EQ(run(l, {T::Unhealthy, T::Unhealthy, T::Healthy}),
            (Log{"Running -[unhealthy]-> Degraded", "Degraded -[unhealthy]- (stays)",
                 "Degraded -[healthy]-> Running"}));
}

TEST(Walk, UpdateSettingsNeverChangesState) {
  Lifecycle l = running();
  EXPECT_EQ(run(l, {T::UpdateSettings}), (Log{"Running -[update_settings]- (stays)"}));
  EXPECT_EQ(l.state(), S::Running);
}

TEST(Walk, RestoreTakesNoTransition) {
  const LifecycleContext ctx{.mode = Mode::CdcOnly, .failed_in = S::Setup};
  Lifecycle l = Lifecycle::restore(S::Failed, ctx);
  EXPECT_EQ(l.state(), S::Failed);
  EXPECT_EQ(l.context(), ctx);
  EXPECT_EQ(run(l, {T::Retry, T::SetupDone}),
            (Log{"Failed -[retry]-> Setup", "Setup -[setup_done]-> Running"}));
}

TEST(Walk, UnknownStateRefusesEverything) {
  Lifecycle l = Lifecycle::restore(S::Unknown, LifecycleContext{});
  for (Trigger t : kAllTriggers) {
    ApplyResult r = l.apply(t);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.rejection().reason, RejectReason::UnknownState);
  }
  EXPECT_EQ(l.state(), S::Unknown);
}

}  // namespace
}  // namespace clickpipe
