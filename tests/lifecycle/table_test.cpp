// The table against the spec, exhaustively: every (state, trigger, context) has a defined result,
// and it equals the independent reading in expectations.hpp.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>

#include "clickpipe/clickpipe.hpp"
#include "expectations.hpp"

namespace clickpipe {
namespace {

using test::all_contexts;
using test::expect;

class EveryTriggerFrom : public ::testing::TestWithParam<State> {};

TEST_P(EveryTriggerFrom, MatchesTheSpecInEveryContext) {
  const State s = GetParam();
  int checked = 0;
  for (const LifecycleContext& c : all_contexts()) {
    for (Trigger t : kAllTriggers) {
      Lifecycle l = Lifecycle::restore(s, c);
      const test::Expected want = expect(s, t, c);
      const ApplyResult got = l.apply(t);
      ++checked;
      ASSERT_EQ(got.ok(), want.ok) << fmt::format("{} in {} (mode {})", t, s, c.mode);
      if (got.ok()) {
        const Transition& tr = got.transition();
        EXPECT_EQ(tr.from, s);
        EXPECT_EQ(tr.trigger, t);
        if (want.internal) {
          EXPECT_EQ(tr.kind, TransitionKind::Internal) << fmt::format("{} in {}", t, s);
          EXPECT_EQ(l.state(), s);
        } else {
          EXPECT_EQ(tr.kind, TransitionKind::External) << fmt::format("{} in {}", t, s);
          EXPECT_EQ(tr.to, want.to) << fmt::format("{} in {} (mode {})", t, s, c.mode);
          EXPECT_EQ(l.state(), want.to);
        }
        EXPECT_EQ(l.mode(), c.mode) << "no transition changes the mode";
      } else {
        EXPECT_EQ(got.rejection(), (Rejection{s, t, want.reason})) << fmt::format("{} in {}", t, s);
        EXPECT_EQ(l, Lifecycle::restore(s, c)) << "a rejection must change nothing";
      }
    }
  }
  EXPECT_EQ(checked, 1008 * static_cast<int>(kTriggerCount));
}

TEST_P(EveryTriggerFrom, CheckAgreesWithApplyAndDoesNotMutate) {
  const State s = GetParam();
  for (const LifecycleContext& c : all_contexts()) {
    for (Trigger t : kAllTriggers) {
      const Lifecycle before = Lifecycle::restore(s, c);
      Lifecycle l = before;
      const ApplyResult checked = l.check(t);
      EXPECT_EQ(l, before);
      EXPECT_EQ(l.apply(t), checked);
    }
  }
}

TEST_P(EveryTriggerFrom, AllowedCommandsAreExactlyTheAcceptedOnes) {
  const State s = GetParam();
  for (const LifecycleContext& c : all_contexts()) {
    const Lifecycle l = Lifecycle::restore(s, c);
    const TriggerSet allowed = l.allowed_commands();
    for (Trigger t : kAllTriggers) {
      if (!is_command(t)) {
        EXPECT_FALSE(allowed.contains(t));
        continue;
      }
      EXPECT_EQ(allowed.contains(t), expect(s, t, c).ok) << fmt::format("{} in {}", t, s);
    }
  }
}

TEST_P(EveryTriggerFrom, StaticallyAllowedCommandsFollowTheCommandTable) {
  const State s = GetParam();
  for (Mode m : kAllModes) {
    const TriggerSet allowed = allowed_commands(s, m);
    for (Trigger t : kAllTriggers) {
      EXPECT_EQ(allowed.contains(t), test::command_legal_somewhere_in(t, s))
          << fmt::format("{} in {} (mode {})", t, s, m);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllStates, EveryTriggerFrom, ::testing::ValuesIn(kAllStates),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(TransitionTable, EveryRowIsTakenInSomeContext) {
  std::set<std::size_t> taken;
  for (State s : kAllStates)
    for (const LifecycleContext& c : all_contexts())
      for (Trigger t : kAllTriggers)
        if (auto row = find_row(s, t, c)) taken.insert(*row);
  EXPECT_EQ(taken.size(), kTransitions.size());
}

TEST(TransitionTable, EveryStateButTheFinalOnesCanBeLeftAndReached) {
  std::set<State> left, reached{State::Provisioning};
  for (const TransitionRow& r : kTransitions) {
    if (r.kind == TransitionKind::Internal) continue;
    left.insert(r.from);
    reached.insert(r.to);
  }
  for (State s : kAllStates) {
    if (s == State::Unknown) continue;
    EXPECT_TRUE(reached.count(s)) << to_string(s) << " is never entered";
    if (s != State::Terminated) {
      EXPECT_TRUE(left.count(s)) << to_string(s) << " is a dead end";
    }
  }
}

TEST(TransitionTable, DegradedIsOnlyEnteredThroughAHealthSignal) {
  for (const TransitionRow& r : kTransitions) {
    if (r.to == State::Degraded && r.kind == TransitionKind::External) {
      EXPECT_EQ(r.trigger, Trigger::Unhealthy);
    }
  }
}

TEST(TransitionTable, WorksAtCompileTime) {
  constexpr auto walk = [] {
    Lifecycle l;
    l.apply(Trigger::Provisioned);
    l.apply(Trigger::SetupDone);
    l.apply(Trigger::SnapshotDone);
    l.apply(Trigger::Pause);
    return l.state();
  }();
  static_assert(walk == State::Pausing);
  static_assert(allowed_commands(State::Paused, Mode::InitialLoadAndCdc).contains(Trigger::Resume));
  EXPECT_EQ(walk, State::Pausing);
}

}  // namespace
}  // namespace clickpipe
