#include <gtest/gtest.h>

#include <string>

#include "../print.hpp"
#include "clickpipe/clickpipe.hpp"

namespace clickpipe {
namespace {

class StateStrings : public ::testing::TestWithParam<State> {};

TEST_P(StateStrings, RoundTripsThroughItsUpstreamString) {
  const State s = GetParam();
  EXPECT_EQ(parse_state(to_string(s)), s);
}

INSTANTIATE_TEST_SUITE_P(AllStates, StateStrings, ::testing::ValuesIn(kAllStates),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(StateStrings, AreExactlyTheUpstreamNames) {
  const char* names[] = {"Provisioning", "Setup",       "Snapshot",  "Running",   "Pausing",
                         "Paused",       "Modifying",   "Resync",    "Completed", "Failed",
                         "Degraded",     "Terminating", "Terminated"};
  ASSERT_EQ(std::size(names) + 1, kStateCount);
  for (std::size_t i = 0; i < std::size(names); ++i) {
    EXPECT_EQ(to_string(kAllStates[i]), names[i]);
  }
}

class UnknownStateStrings : public ::testing::TestWithParam<const char*> {};

TEST_P(UnknownStateStrings, ParseToUnknown) { EXPECT_EQ(parse_state(GetParam()), State::Unknown); }

INSTANTIATE_TEST_SUITE_P(ForwardCompatibility, UnknownStateStrings,
                         ::testing::Values("", "Unknown", "running", "RUNNING", "Stopped",
                                           "Stopping", "InternalError", "Running ", " Running",
                                           "Snapshot\n", "Paus", "Provisioning2", "\xff\xfe"));

TEST(StateStrings, ParseDoesNotReadPastTheView) {
  const char text[] = "RunningXYZ";
  EXPECT_EQ(parse_state(std::string_view(text, 7)), State::Running);
  EXPECT_EQ(parse_state(std::string_view(text, 6)), State::Unknown);
}

TEST(ModeStrings, RoundTripAndRejectUnknown) {
  for (Mode m : kAllModes) EXPECT_EQ(parse_mode(to_string(m)), m);
  EXPECT_EQ(parse_mode("initial_load"), std::nullopt);
  EXPECT_EQ(parse_mode(""), std::nullopt);
}

TEST(TriggerStrings, RoundTripAndClassify) {
  int commands = 0;
  for (Trigger t : kAllTriggers) {
    EXPECT_EQ(parse_trigger(to_string(t)), t);
    EXPECT_NE(is_command(t), is_event(t));
    commands += is_command(t) ? 1 : 0;
  }
  EXPECT_EQ(commands, 9);
  EXPECT_EQ(parse_trigger("start"), std::nullopt);
}

TEST(TriggerSet, InsertsCountsAndIterates) {
  TriggerSet s{Trigger::Delete, Trigger::Pause};
  EXPECT_EQ(s.size(), 2u);
  EXPECT_TRUE(s.contains(Trigger::Pause));
  EXPECT_FALSE(s.contains(Trigger::Resume));
  std::string seen;
  s.for_each([&](Trigger t) { seen += std::string(to_string(t)) + ";"; });
  EXPECT_EQ(seen, "pause;delete;");
}

}  // namespace
}  // namespace clickpipe
