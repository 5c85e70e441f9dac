#include "clickpipe/json.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

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

LifecycleContext context_from(const json& j, const std::string& parent) {
  LifecycleContext c;
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

void to_json(json& j, const LifecycleContext& c) {
  j = json{{"mode", c.mode},
           {"failed_in", c.failed_in == State::Unknown ? json(nullptr) : json(c.failed_in)},
           {"pause_for", c.pause_for},
           {"resyncing", c.resyncing},
           {"adding_tables", c.adding_tables},
           {"back_to_paused", c.back_to_paused}};
}
void from_json(const json& j, LifecycleContext& c) { c = context_from(j, ""); }

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
           {"internal", t.kind == TransitionKind::Internal},
           {"row", t.row}};
}
void from_json(const json& j, Transition& t) {
  t.from = parse_state(require_string(require(j, "", "from"), "from"));
  t.trigger = parse_enum<Trigger>(require(j, "", "trigger"), "trigger", parse_trigger, "trigger");
  t.to = parse_state(require_string(require(j, "", "to"), "to"));
  t.kind = require_bool(require(j, "", "internal"), "internal") ? TransitionKind::Internal
                                                                : TransitionKind::External;
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

namespace {

std::string time_text(TimePoint t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms.count() % 1000));
  return out;
}

template <class T>
void optional_field(const json& j, const std::string& parent, const char* name, T& out) {
  auto it = j.find(name);
  if (it == j.end()) return;
  try {
    out = it->template get<T>();
  } catch (const json::exception&) {
    throw InvalidField(field_path(parent, name),
                       std::string("expected ") + (std::is_same_v<T, bool>   ? "a boolean"
                                                   : std::is_arithmetic_v<T> ? "a number"
                                                                             : "a string"));
  }
}

template <class Int>
void count_field(const json& j, const std::string& parent, const char* name, Int& out) {
  auto it = j.find(name);
  if (it == j.end()) return;
  if (!it->is_number_integer() || it->template get<std::int64_t>() < 0)
    throw InvalidField(field_path(parent, name), "expected a whole number >= 0");
  out = static_cast<Int>(it->template get<std::int64_t>());
}

// Settings: every key known, every number whole and in range. Fractions, exponents (1e30),
// negatives and numbers past the limit are refused with the field named, never wrapped.
void known_keys(const json& j, const std::string& parent,
                std::initializer_list<std::string_view> known) {
  if (!j.is_object()) throw InvalidField(parent, "expected an object");
  for (const auto& [key, value] : j.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end())
      throw InvalidField(parent + "." + key, "unknown field");
  }
}

// A whole number >= 0, however nlohmann holds it: parsed text is unsigned, a C++ int is signed.
std::optional<std::uint64_t> non_negative(const json& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0)
    return static_cast<std::uint64_t>(v.get<std::int64_t>());
  return std::nullopt;
}

template <class Int>
void setting_count(const json& j, const std::string& parent, const char* name, Int& out,
                   std::uint64_t max = std::numeric_limits<std::int64_t>::max()) {
  auto it = j.find(name);
  if (it == j.end()) return;
  max = std::min<std::uint64_t>(max, std::numeric_limits<Int>::max());
  const auto v = non_negative(*it);
  if (!v || *v > max)
    throw InvalidField(field_path(parent, name),
                       "expected a whole number from 0 to " + std::to_string(max));
  out = static_cast<Int>(*v);
}

void setting_ms(const json& j, const std::string& parent, const char* name,
                std::chrono::milliseconds& out) {
  auto it = j.find(name);
  if (it == j.end()) return;
  const auto max = static_cast<std::uint64_t>(kMaxSettingDuration.count());
  const auto v = non_negative(*it);
  if (!v || *v > max)
    throw InvalidField(field_path(parent, name),
                       "expected whole milliseconds from 0 to " + std::to_string(max) + " (24 h)");
  out = std::chrono::milliseconds(static_cast<std::int64_t>(*v));
}

RetryPolicy retry_from(const json& j, const std::string& field, RetryPolicy r) {
  known_keys(j, field,
             {"max_attempts", "initial_backoff_ms", "max_backoff_ms", "multiplier", "jitter"});
  setting_count(j, field, "max_attempts", r.max_attempts);
  setting_ms(j, field, "initial_backoff_ms", r.initial_backoff);
  setting_ms(j, field, "max_backoff_ms", r.max_backoff);
  if (auto it = j.find("multiplier"); it != j.end()) {
    if (!it->is_number()) throw InvalidField(field + ".multiplier", "expected a number");
    r.multiplier = it->get<double>();
  }
  if (auto it = j.find("jitter"); it != j.end()) {
    if (!it->is_number()) throw InvalidField(field + ".jitter", "expected a number");
    r.jitter = it->get<double>();
  }
  return r;
}

}  // namespace

void to_json(json& j, Lsn lsn) { j = to_string(lsn); }
void from_json(const json& j, Lsn& lsn) {
  auto v = parse_lsn(require_string(j, "lsn"));
  if (!v) throw InvalidField("lsn", "expected a position like 16/B374D848");
  lsn = *v;
}

void to_json(json& j, const RetryPolicy& r) {
  j = json{{"max_attempts", r.max_attempts},
           {"initial_backoff_ms", r.initial_backoff.count()},
           {"max_backoff_ms", r.max_backoff.count()},
           {"multiplier", r.multiplier},
           {"jitter", r.jitter}};
}
void from_json(const json& j, RetryPolicy& r) { r = retry_from(j, "retry", r); }

void to_json(json& j, const Settings& s) {
  j = json{{"sync_interval_ms", s.sync_interval.count()},
           {"pull_batch_size", s.pull_batch_size},
           {"rows_per_partition", s.rows_per_partition},
           {"partitions_in_parallel", s.partitions_in_parallel},
           {"tables_in_parallel", s.tables_in_parallel},
           {"max_partitions_per_table", s.max_partitions_per_table},
           {"provisioning_retry", s.provisioning_retry},
           {"setup_retry", s.setup_retry},
           {"snapshot_partition_retry", s.snapshot_partition_retry},
           {"cdc_retry", s.cdc_retry}};
}
void from_json(const json& j, Settings& s) {
  const std::string p = "settings";
  known_keys(j, p,
             {"sync_interval_ms", "pull_batch_size", "rows_per_partition", "partitions_in_parallel",
              "tables_in_parallel", "max_partitions_per_table", "provisioning_retry", "setup_retry",
              "snapshot_partition_retry", "cdc_retry"});
  Settings out = s;
  setting_ms(j, p, "sync_interval_ms", out.sync_interval);
  setting_count(j, p, "pull_batch_size", out.pull_batch_size);
  setting_count(j, p, "rows_per_partition", out.rows_per_partition);
  setting_count(j, p, "partitions_in_parallel", out.partitions_in_parallel);
  setting_count(j, p, "tables_in_parallel", out.tables_in_parallel);
  setting_count(j, p, "max_partitions_per_table", out.max_partitions_per_table);
  for (auto [name, member] :
       {std::pair{"provisioning_retry", &Settings::provisioning_retry},
        std::pair{"setup_retry", &Settings::setup_retry},
        std::pair{"snapshot_partition_retry", &Settings::snapshot_partition_retry},
        std::pair{"cdc_retry", &Settings::cdc_retry}}) {
    if (auto it = j.find(name); it != j.end()) {
      out.*member = retry_from(*it, p + "." + name, out.*member);
    }
  }
  out.validate();
  s = out;
}

void to_json(json& j, const TableRef& t) { j = json{{"schema", t.schema}, {"name", t.name}}; }
void from_json(const json& j, TableRef& t) {
  t.schema = require_string(require(j, "table", "schema"), "table.schema");
  t.name = require_string(require(j, "table", "name"), "table.name");
}

void to_json(json& j, const Column& c) {
  j = json{{"name", c.name},         {"type", c.type},
           {"type_oid", c.type_oid}, {"type_modifier", c.type_modifier},
           {"nullable", c.nullable}, {"array_dimensions", c.array_dimensions}};
  // Written only when known or set, so records from before read and write back the same.
  if (c.attnum != 0) j["attnum"] = c.attnum;
  if (c.dropped) j["dropped"] = true;
}
void from_json(const json& j, Column& c) {
  c.name = require_string(require(j, "column", "name"), "column.name");
  c.type = require_string(require(j, "column", "type"), "column.type");
  optional_field(j, "column", "type_oid", c.type_oid);
  optional_field(j, "column", "type_modifier", c.type_modifier);
  optional_field(j, "column", "nullable", c.nullable);
  optional_field(j, "column", "array_dimensions", c.array_dimensions);
  optional_field(j, "column", "attnum", c.attnum);
  optional_field(j, "column", "dropped", c.dropped);
}

void to_json(json& j, const TableDefinition& d) {
  j = json{{"table", d.table}, {"columns", d.columns}, {"primary_key", d.primary_key}};
  if (d.oid != 0) j["oid"] = d.oid;
  if (!d.leaves.empty()) j["leaves"] = d.leaves;
}
void from_json(const json& j, TableDefinition& d) {
  d.table = require(j, "definition", "table").get<TableRef>();
  d.columns = require(j, "definition", "columns").get<std::vector<Column>>();
  d.primary_key = require(j, "definition", "primary_key").get<std::vector<std::string>>();
  optional_field(j, "definition", "oid", d.oid);
  if (auto it = j.find("leaves"); it != j.end()) d.leaves = it->get<std::vector<TableRef>>();
}

void to_json(json& j, const SlotInfo& s) {
  j = json{{"name", s.name}, {"consistent_point", s.consistent_point}};
}
void from_json(const json& j, SlotInfo& s) {
  s.name = require_string(require(j, "slot", "name"), "slot.name");
  s.consistent_point = require(j, "slot", "consistent_point").get<Lsn>();
}

void to_json(json& j, const Partition& p) {
  j = json{
      {"index", p.index}, {"begin", p.begin}, {"end", p.end}, {"estimated_rows", p.estimated_rows}};
  if (!p.leaf.name.empty()) j["leaf"] = p.leaf;
}
void from_json(const json& j, Partition& p) {
  count_field(j, "partition", "index", p.index);
  p.begin = require_string(require(j, "partition", "begin"), "partition.begin");
  p.end = require_string(require(j, "partition", "end"), "partition.end");
  count_field(j, "partition", "estimated_rows", p.estimated_rows);
  if (auto it = j.find("leaf"); it != j.end()) p.leaf = it->get<TableRef>();
}

void to_json(json& j, const PipeStatus& s) {
  json snapshot = json::array();
  for (const auto& t : s.snapshot) {
    snapshot.push_back(json{{"table", t.table.qualified()},
                            {"planned", t.planned},
                            {"partitions_total", t.partitions_total},
                            {"partitions_done", t.partitions_done},
                            {"rows_copied", t.rows_copied},
                            {"estimated_rows", t.estimated_rows}});
  }
  json tables = json::array();
  for (const auto& t : s.tables) tables.push_back(t.qualified());
  json cdc{{"confirmed", s.cdc.confirmed ? json(*s.cdc.confirmed) : json(nullptr)},
           {"source_head", s.cdc.source_head},
           {"lag_bytes", s.cdc.lag_bytes},
           {"batches", s.cdc.batches},
           {"changes", s.cdc.changes},
           {"last_batch_at",
            s.cdc.last_batch_at ? json(time_text(*s.cdc.last_batch_at)) : json(nullptr)},
           {"lag_seconds", s.cdc.lag_seconds ? json(*s.cdc.lag_seconds) : json(nullptr)},
           {"last_batch", nullptr},
           {"tables", json::array()}};
  if (const auto& b = s.cdc.last_batch) {
    cdc["last_batch"] =
        json{{"changes", b->changes},
             {"wal_bytes", b->wal_bytes},
             {"duration_ms", b->duration.count()},
             {"end", b->end},
             {"lag_bytes", b->lag_bytes},
             {"lag_seconds", b->lag_seconds ? json(*b->lag_seconds) : json(nullptr)},
             {"at", time_text(b->at)}};
  }
  for (const auto& t : s.cdc.tables)
    cdc["tables"].push_back(json{{"table", t.table.qualified()}, {"changes", t.changes}});
  json retry = nullptr;
  if (s.retry) {
    retry = json{
        {"operation", s.retry->operation},
        {"attempt", s.retry->attempt},
        {"max_attempts", s.retry->max_attempts},
        {"last_error", s.retry->last_error},
        {"next_attempt_at",
         s.retry->next_attempt_at ? json(time_text(*s.retry->next_attempt_at)) : json(nullptr)}};
  }
  json error = nullptr;
  if (s.last_error) {
    error = json{{"message", s.last_error->message},
                 {"state", s.last_error->state},
                 {"at", time_text(s.last_error->at)},
                 {"fatal", s.last_error->fatal}};
  }
  json history = json::array();
  for (const auto& h : s.history) {
    history.push_back(
        json{{"from", h.from}, {"trigger", h.trigger}, {"to", h.to}, {"at", time_text(h.at)}});
  }
  json stopped = json::array();
  for (const auto& st : s.stopped_tables) {
    stopped.push_back(
        json{{"table", st.table.qualified()}, {"reason", st.reason}, {"at", time_text(st.at)}});
  }
  json schema = json::array();
  for (const auto& e : s.schema_changes) {
    schema.push_back(json{{"table", e.table.qualified()},
                          {"kind", std::string(to_string(e.kind))},
                          {"description", e.description},
                          {"at", time_text(e.at)}});
  }
  j = json{{"id", s.id},
           {"state", s.state},
           {"mode", s.mode},
           {"since", time_text(s.since)},
           {"allowed_commands", s.allowed_commands},
           {"tables", tables},
           {"snapshot", snapshot},
           {"cdc", cdc},
           {"slot", s.slot ? json(*s.slot) : json(nullptr)},
           {"retry", retry},
           {"last_error", error},
           {"degraded_reason", s.degraded_reason.empty() ? json(nullptr) : json(s.degraded_reason)},
           {"settings", s.settings},
           {"history", history},
           {"transitions", s.transitions},
           {"stopped_tables", stopped},
           {"schema_changes", schema}};
}

std::string service_status_json(const std::vector<PipeStatus>& pipes,
                                const std::vector<BrokenRecord>& broken) {
  json pipes_json = json::array();
  for (const auto& s : pipes) pipes_json.push_back(s);
  json broken_json = json::array();
  for (const auto& b : broken) broken_json.push_back({{"name", b.name}, {"reason", b.reason}});
  return json{{"pipes", pipes_json}, {"broken", broken_json}}.dump(2, ' ', false,
                                                                   json::error_handler_t::replace);
}

json transition_table_json() {
  json rows = json::array();
  for (const TransitionRow& r : kTransitions) {
    rows.push_back(json{{"from", r.from},
                        {"trigger", r.trigger},
                        {"guard", describe(r.guard)},
                        {"to", r.to},
                        {"effect", std::string(to_string(r.effect))},
                        {"internal", r.kind == TransitionKind::Internal}});
  }
  return rows;
}

}  // namespace clickpipe
