#include "clickpipe/json.hpp"

#include <nlohmann/json.hpp>

#include <string>

#include "clickpipe/error.hpp"
#include "clickpipe/lifecycle/diagram.hpp"

namespace clickpipe {
namespace {

using nlohmann::json;

std::string field_path(const std::string& parent, const char* name) {
  return parent.empty() ? std::string(name) : parent + "." + name;
}

const json& require(const json& j, const std::string& parent, const char* name) {
  if (!j.is_object()) throw InvalidField(parent.empty() ? "(root)" : parent, "expected an object");
  auto it = j.find(name);
  if (it == j.end()) throw InvalidField(field_path(parent, name), "missing");
  return *it;
}

std::string require_string(const json& j, const std::string& field) {
  if (!j.is_string())
    throw InvalidField(field, "expected a string, got " + std::string(j.type_name()));
  return j.get<std::string>();
}

bool require_bool(const json& j, const std::string& field) {
  if (!j.is_boolean()) throw InvalidField(field, "expected true or false");
  return j.get<bool>();
}

template <class Enum, class Parse>
Enum parse_enum(const json& j, const std::string& field, Parse parse, const char* what) {
  std::string text = require_string(j, field);
  auto v = parse(text);
  if (!v) throw InvalidField(field, "unknown " + std::string(what) + " '" + text + "'");
  return *v;
}

std::optional<PauseFor> parse_pause_for(std::string_view s) {
  for (PauseFor p : {PauseFor::Pause, PauseFor::AddTables, PauseFor::RemoveTables}) {
    if (to_string(p) == s) return p;
  }
  return std::nullopt;
}

std::optional<RejectReason> parse_reject_reason(std::string_view s) {
  for (RejectReason r :
       {RejectReason::NotAllowed, RejectReason::GuardFailed, RejectReason::UnexpectedEvent,
        RejectReason::FinalState, RejectReason::UnknownState}) {
    if (to_string(r) == s) return r;
  }
  return std::nullopt;
}

Context context_from(const json& j, const std::string& parent) {
  Context c;
  c.mode =
      parse_enum<Mode>(require(j, parent, "mode"), field_path(parent, "mode"), parse_mode, "mode");
  const json& failed = require(j, parent, "failed_in");
  if (!failed.is_null()) {
    c.failed_in = parse_state(require_string(failed, field_path(parent, "failed_in")));
  }
  c.pause_for = parse_enum<PauseFor>(require(j, parent, "pause_for"),
                                     field_path(parent, "pause_for"), parse_pause_for, "pause_for");
  c.resyncing = require_bool(require(j, parent, "resyncing"), field_path(parent, "resyncing"));
  c.adding_tables =
      require_bool(require(j, parent, "adding_tables"), field_path(parent, "adding_tables"));
  c.back_to_paused =
      require_bool(require(j, parent, "back_to_paused"), field_path(parent, "back_to_paused"));
  return c;
}

std::size_t require_row(const json& j, const std::string& field) {
  if (!j.is_number_unsigned() || j.get<std::size_t>() >= kTransitions.size()) {
    throw InvalidField(field, "expected a row index below " + std::to_string(kTransitions.size()));
  }
  return j.get<std::size_t>();
}

}  // namespace

void to_json(json& j, State s) { j = std::string(to_string(s)); }
void from_json(const json& j, State& s) { s = parse_state(require_string(j, "state")); }

void to_json(json& j, Mode m) { j = std::string(to_string(m)); }
void from_json(const json& j, Mode& m) { m = parse_enum<Mode>(j, "mode", parse_mode, "mode"); }

void to_json(json& j, Trigger t) { j = std::string(to_string(t)); }
void from_json(const json& j, Trigger& t) {
  t = parse_enum<Trigger>(j, "trigger", parse_trigger, "trigger");
}

void to_json(json& j, PauseFor p) { j = std::string(to_string(p)); }
void from_json(const json& j, PauseFor& p) {
  p = parse_enum<PauseFor>(j, "pause_for", parse_pause_for, "pause_for");
}

void to_json(json& j, RejectReason r) { j = std::string(to_string(r)); }
void from_json(const json& j, RejectReason& r) {
  r = parse_enum<RejectReason>(j, "reason", parse_reject_reason, "reason");
}

void to_json(json& j, const Context& c) {
  j = json{{"mode", c.mode},
           {"failed_in", c.failed_in == State::Unknown ? json(nullptr) : json(c.failed_in)},
           {"pause_for", c.pause_for},
           {"resyncing", c.resyncing},
           {"adding_tables", c.adding_tables},
           {"back_to_paused", c.back_to_paused}};
}
void from_json(const json& j, Context& c) { c = context_from(j, ""); }

void to_json(json& j, const Lifecycle& l) {
  j = json{{"state", l.state()}, {"context", l.context()}};
}
void from_json(const json& j, Lifecycle& l) {
  State s = parse_state(require_string(require(j, "", "state"), "state"));
  l = Lifecycle::restore(s, context_from(require(j, "", "context"), "context"));
}

void to_json(json& j, const Transition& t) {
  j = json{{"from", t.from},
           {"trigger", t.trigger},
           {"to", t.to},
           {"internal", t.kind == Kind::Internal},
           {"row", t.row}};
}
void from_json(const json& j, Transition& t) {
  t.from = parse_state(require_string(require(j, "", "from"), "from"));
  t.trigger = parse_enum<Trigger>(require(j, "", "trigger"), "trigger", parse_trigger, "trigger");
  t.to = parse_state(require_string(require(j, "", "to"), "to"));
  t.kind = require_bool(require(j, "", "internal"), "internal") ? Kind::Internal : Kind::External;
  t.row = require_row(require(j, "", "row"), "row");
}

void to_json(json& j, const Rejection& r) {
  j = json{
      {"state", r.state}, {"trigger", r.trigger}, {"reason", r.reason}, {"message", message(r)}};
}
void from_json(const json& j, Rejection& r) {
  r.state = parse_state(require_string(require(j, "", "state"), "state"));
  r.trigger = parse_enum<Trigger>(require(j, "", "trigger"), "trigger", parse_trigger, "trigger");
  r.reason =
      parse_enum<RejectReason>(require(j, "", "reason"), "reason", parse_reject_reason, "reason");
}

void to_json(json& j, const TriggerSet& s) {
  j = json::array();
  s.for_each([&](Trigger t) { j.push_back(t); });
}
void from_json(const json& j, TriggerSet& s) {
  if (!j.is_array()) throw InvalidField("triggers", "expected an array");
  s = TriggerSet{};
  for (std::size_t i = 0; i < j.size(); ++i) {
    std::string field = "triggers[" + std::to_string(i) + "]";
    s.insert(parse_enum<Trigger>(j[i], field, parse_trigger, "trigger"));
  }
}

json transition_table_json() {
  json rows = json::array();
  for (const Row& r : kTransitions) {
    rows.push_back(json{{"from", r.from},
                        {"trigger", r.trigger},
                        {"guard", describe(r.guard)},
                        {"to", r.to},
                        {"effect", std::string(to_string(r.effect))},
                        {"internal", r.kind == Kind::Internal}});
  }
  return rows;
}

}  // namespace clickpipe
