// The record file format: {"format_version", "generation", "checksum", "record"}.
#include <nlohmann/json.hpp>

#include <cstdio>

#include "clickpipe/json.hpp"
#include "clickpipe/store/file_store.hpp"

namespace clickpipe {
namespace {

using nlohmann::json;

std::int64_t ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
TimePoint from_ms(std::int64_t v) { return TimePoint(std::chrono::milliseconds(v)); }

std::string fnv1a64(std::string_view data) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "fnv1a64:%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::optional<Intent> parse_intent(std::string_view s) {
  for (Intent i : {Intent::Running, Intent::Paused, Intent::Deleted}) {
    if (to_string(i) == s) return i;
  }
  return std::nullopt;
}

json record_body(const PipeRecord& r) {
  json load = json::array();
  for (const auto& l : r.load) {
    load.push_back(json{{"table", l.table},
                        {"partitions", l.partitions},
                        {"done", l.done},
                        {"rows_done", l.rows_done}});
  }
  json history = json::array();
  for (const auto& h : r.history) {
    history.push_back(
        json{{"from", h.from}, {"trigger", h.trigger}, {"to", h.to}, {"at_ms", ms(h.at)}});
  }
  json error = nullptr;
  if (r.last_error) {
    error = json{{"message", r.last_error->message},
                 {"state", r.last_error->state},
                 {"at_ms", ms(r.last_error->at)},
                 {"fatal", r.last_error->fatal}};
  }
  json stopped = json::array();
  for (const auto& st : r.stopped_tables) {
    stopped.push_back(json{{"table", st.table}, {"reason", st.reason}, {"at_ms", ms(st.at)}});
  }
  json schema = json::array();
  for (const auto& e : r.schema_changes) {
    schema.push_back(json{{"table", e.table},
                          {"kind", std::string(to_string(e.kind))},
                          {"description", e.description},
                          {"at_ms", ms(e.at)}});
  }
  return json{
      {"id", r.id},
      {"lifecycle", r.lifecycle},
      {"intent", std::string(to_string(r.intent))},
      {"since_ms", ms(r.since)},
      {"settings", r.settings},
      {"tables", r.tables},
      {"definitions", r.definitions},
      {"pending_added", r.pending_added},
      {"pending_removed", r.pending_removed},
      {"cancelled_added", r.cancelled_added},
      {"slot", r.slot ? json(*r.slot) : json(nullptr)},
      {"load", load},
      {"confirmed", r.confirmed ? json(*r.confirmed) : json(nullptr)},
      {"cdc_batches", r.cdc_batches},
      {"cdc_changes", r.cdc_changes},
      {"last_error", error},
      {"history", history},
      {"transitions", r.transitions},
      {"stopped_tables", stopped},
      {"schema_changes", schema},
      {"row_versions", r.row_versions == RowVersions::CommitLsn ? "commit_lsn" : "packed_legacy"}};
}

const json& need(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) throw InvalidField(std::string("record.") + name, "missing");
  return *it;
}

template <class T>
T get(const json& j, const char* name) {
  try {
    return need(j, name).get<T>();
  } catch (const InvalidField& e) {
    throw InvalidField(std::string("record.") + name + "." + e.field(), e.what());
  } catch (const json::exception& e) {
    throw InvalidField(std::string("record.") + name, e.what());
  }
}

std::optional<SchemaChange::Kind> parse_schema_change_kind(std::string_view s) {
  for (auto k : {SchemaChange::Kind::ColumnsAdded, SchemaChange::Kind::ColumnsDropped,
                 SchemaChange::Kind::PartitionsChanged, SchemaChange::Kind::TableStopped,
                 SchemaChange::Kind::Identified}) {
    if (to_string(k) == s) return k;
  }
  return std::nullopt;
}

PipeRecord record_from(const json& j, int version) {
  if (!j.is_object()) throw InvalidField("record", "expected an object");
  PipeRecord r;
  r.id = get<std::string>(j, "id");
  r.lifecycle = get<Lifecycle>(j, "lifecycle");
  if (version >= 2) {
    const auto text = get<std::string>(j, "intent");
    auto intent = parse_intent(text);
    if (!intent) throw InvalidField("record.intent", "unknown intent '" + text + "'");
    r.intent = *intent;
    r.cancelled_added = get<std::vector<TableRef>>(j, "cancelled_added");
  } else {
    // Version 1 kept no intent: a paused pipe was meant to be paused, anything else to run.
    r.intent = r.lifecycle.state() == State::Paused ? Intent::Paused : Intent::Running;
  }
  r.since = from_ms(get<std::int64_t>(j, "since_ms"));
  r.settings = get<Settings>(j, "settings");
  r.tables = get<std::vector<TableRef>>(j, "tables");
  r.definitions = get<std::vector<TableDefinition>>(j, "definitions");
  r.pending_added = get<std::vector<TableRef>>(j, "pending_added");
  r.pending_removed = get<std::vector<TableRef>>(j, "pending_removed");
  if (const json& s = need(j, "slot"); !s.is_null()) r.slot = get<SlotInfo>(j, "slot");
  for (const json& l : need(j, "load")) {
    TableLoadRecord t;
    t.table = get<TableRef>(l, "table");
    t.partitions = get<std::vector<Partition>>(l, "partitions");
    t.done = get<std::vector<std::uint32_t>>(l, "done");
    t.rows_done = get<std::uint64_t>(l, "rows_done");
    for (auto d : t.done) {
      if (d >= t.partitions.size()) throw InvalidField("record.load.done", "index out of range");
    }
    r.load.push_back(std::move(t));
  }
  if (const json& c = need(j, "confirmed"); !c.is_null()) r.confirmed = get<Lsn>(j, "confirmed");
  r.cdc_batches = get<std::uint64_t>(j, "cdc_batches");
  r.cdc_changes = get<std::uint64_t>(j, "cdc_changes");
  if (const json& e = need(j, "last_error"); !e.is_null()) {
    r.last_error = ErrorInfo{get<std::string>(e, "message"), get<State>(e, "state"),
                             from_ms(get<std::int64_t>(e, "at_ms")), get<bool>(e, "fatal")};
  }
  for (const json& h : need(j, "history")) {
    r.history.push_back(HistoryEntry{get<State>(h, "from"), get<Trigger>(h, "trigger"),
                                     get<State>(h, "to"), from_ms(get<std::int64_t>(h, "at_ms"))});
  }
  r.transitions = get<std::uint64_t>(j, "transitions");
  if (version >= 3) {
    for (const json& st : need(j, "stopped_tables")) {
      r.stopped_tables.push_back(StoppedTable{get<TableRef>(st, "table"),
                                              get<std::string>(st, "reason"),
                                              from_ms(get<std::int64_t>(st, "at_ms"))});
    }
    for (const json& e : need(j, "schema_changes")) {
      const auto text = get<std::string>(e, "kind");
      auto kind = parse_schema_change_kind(text);
      if (!kind) throw InvalidField("record.schema_changes.kind", "unknown kind '" + text + "'");
      r.schema_changes.push_back(SchemaEvent{get<TableRef>(e, "table"), *kind,
                                             get<std::string>(e, "description"),
                                             from_ms(get<std::int64_t>(e, "at_ms"))});
    }
    const auto versions = get<std::string>(j, "row_versions");
    if (versions == "packed_legacy") {
      r.row_versions = RowVersions::PackedLegacy;
    } else if (versions != "commit_lsn") {
      throw InvalidField("record.row_versions", "unknown scheme '" + versions + "'");
    }
  } else if (r.confirmed) {
    // CDC wrote rows under the packed scheme: new versions must stay above them.
    r.row_versions = RowVersions::PackedLegacy;
  }
  return r;
}

}  // namespace

std::string encode_record(const PipeRecord& record, std::uint64_t generation) {
  const json body = record_body(record);
  const std::string text = body.dump();
  json file{{"format_version", PipeRecord::kFormatVersion},
            {"generation", generation},
            {"checksum", fnv1a64(text)},
            {"record", body}};
  return file.dump(1) + "\n";
}

PipeRecord decode_record(std::string_view text, std::uint64_t* generation) {
  json file;
  try {
    file = json::parse(text);
  } catch (const json::parse_error& e) {
    throw InvalidField("(file)", std::string("not valid JSON (torn or damaged): ") + e.what());
  }
  if (!file.is_object()) throw InvalidField("(file)", "expected an object");
  const json& v = need(file, "format_version");
  if (!v.is_number_integer()) throw InvalidField("format_version", "expected a whole number");
  const int version = v.get<int>();
  if (version > PipeRecord::kFormatVersion) {
    throw InvalidField("format_version",
                       "format version " + std::to_string(version) +
                           " was written by a newer clickpipe; this build reads up to " +
                           std::to_string(PipeRecord::kFormatVersion));
  }
  if (version < 1)
    throw InvalidField("format_version", "unknown format version " + std::to_string(version));
  const json& body = need(file, "record");
  const auto sum = get<std::string>(file, "checksum");
  if (fnv1a64(body.dump()) != sum) {
    throw InvalidField("checksum", "checksum mismatch: the record was altered or damaged");
  }
  if (generation) *generation = get<std::uint64_t>(file, "generation");
  return record_from(body, version);
}

}  // namespace clickpipe
