#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../expect.hpp"
#include "clickpipe/clickpipe.hpp"
#include "clickpipe/json.hpp"
#include "expectations.hpp"

namespace clickpipe {
namespace {

using nlohmann::json;

TEST(Json, StatesAreTheirUpstreamStrings) {
  for (State s : kAllStates) {
    json j = s;
    EXPECT_EQ(j.get<std::string>(), to_string(s));
    EXPECT_EQ(j.get<State>(), s);
  }
  EXPECT_EQ(json("Stopped").get<State>(), State::Unknown);
}

TEST(Json, EveryLifecycleRoundTrips) {
  for (State s : kAllStates) {
    for (const LifecycleContext& c : test::all_contexts()) {
      // failed_in only travels as a known state or null; Unknown is the null.
      const Lifecycle l = Lifecycle::restore(s, c);
      const json j = l;
      EXPECT_EQ(j.get<Lifecycle>(), l) << j.dump();
    }
  }
}

TEST(Json, LifecycleHasTheDocumentedShape) {
  Lifecycle l(Mode::CdcOnly);
  l.apply(Trigger::FatalError);
  EXPECT_EQ(json(l), json::parse(R"({
    "state": "Failed",
    "context": {"mode": "cdc_only", "failed_in": "Provisioning", "pause_for": "pause",
                "resyncing": false, "adding_tables": false, "back_to_paused": false}})"));
}

TEST(Json, TransitionAndRejectionRoundTrip) {
  Lifecycle l;
  const Transition t = l.apply(Trigger::Provisioned).transition();
  EXPECT_EQ(json(t).get<Transition>(), t);
  const Rejection r = l.apply(Trigger::Resume).rejection();
  const json jr = r;
  EXPECT_EQ(jr.at("message"), "resume is not allowed in state Setup");
  EXPECT_EQ(jr.get<Rejection>(), r);
}

TEST(Json, TriggerSetRoundTrips) {
  const TriggerSet s = allowed_commands(State::Running, Mode::InitialLoadAndCdc);
  const json j = s;
  EXPECT_EQ(
      j,
      json::parse(R"(["pause","resync","add_tables","remove_tables","update_settings","delete"])"));
  EXPECT_EQ(j.get<TriggerSet>(), s);
}

// Each malformed document names the field at fault.
struct Malformed {
  const char* doc;
  const char* field;
};

class MalformedLifecycle : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedLifecycle, IsRejectedNamingTheField) {
  const json j = json::parse(GetParam().doc);
  const auto e =
      test::expect_throws<InvalidField>([&] { (void)j.get<Lifecycle>(); }, GetParam().doc);
  EXPECT_EQ(e ? e->field() : "", GetParam().field) << test::message(e);
}

INSTANTIATE_TEST_SUITE_P(
    Fields, MalformedLifecycle,
    ::testing::Values(
        Malformed{R"([])", "(root)"}, Malformed{R"({"context":{}})", "state"},
        Malformed{R"({"state":7,"context":{}})", "state"},
        Malformed{R"({"state":"Running"})", "context"},
        Malformed{R"({"state":"Running","context":{"failed_in":null}})", "context.mode"},
        Malformed{R"({"state":"Running","context":{"mode":"cdc","failed_in":null}})",
                  "context.mode"},
        Malformed{R"({"state":"Running","context":{"mode":"cdc_only","failed_in":3}})",
                  "context.failed_in"},
        Malformed{R"({"state":"Running","context":{"mode":"cdc_only","failed_in":null,
                  "pause_for":"later","resyncing":false}})",
                  "context.pause_for"},
        Malformed{R"({"state":"Running","context":{"mode":"cdc_only","failed_in":null,
                  "pause_for":"pause","resyncing":"no"}})",
                  "context.resyncing"},
        Malformed{R"({"state":"Running","context":{"mode":"cdc_only","failed_in":null,
                  "pause_for":"pause","resyncing":false,"adding_tables":false}})",
                  "context.back_to_paused"}));

TEST(Json, MalformedTriggerNamesTheField) {
  const auto e = test::expect_throws<InvalidField>(
      [] { (void)json::parse(R"(["pause", "stop"])").get<TriggerSet>(); });
  EXPECT_EQ(e ? e->field() : "", "triggers[1]");
  EXPECT_NE(test::message(e).find("'stop'"), std::string::npos);
}

TEST(Json, TableExportHasEveryRow) {
  const json rows = transition_table_json();
  ASSERT_EQ(rows.size(), kTransitions.size());
  EXPECT_EQ(rows[0].at("from"), "Provisioning");
  EXPECT_EQ(rows[0].at("to"), "Setup");
  EXPECT_EQ(rows[0].at("trigger"), "provisioned");
}

}  // namespace
}  // namespace clickpipe
