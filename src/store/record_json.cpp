// The record file format: {"format_version", "generation", "checksum", "record"}.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <limits>

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
  json out{
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
  if (r.drop_destination) out["drop_destination"] = true;
  return out;
}

const json& need(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) throw InvalidField(std::string("record.") + name, "missing");
  return *it;
}

// What an InvalidField says, without the field its message starts with.
std::string problem_of(const InvalidField& e) {
  const std::string what = e.what();
  const std::string prefix = e.field() + ": ";
  return what.compare(0, prefix.size(), prefix) == 0 ? what.substr(prefix.size()) : what;
}

template <class T>
T get(const json& j, const char* name) {
  try {
    return need(j, name).get<T>();
  } catch (const InvalidField& e) {
    // The conversions name fields from their own root ("settings.x", "table.name").
    const std::string& f = e.field();
    const bool rooted = f == name || f.rfind(std::string(name) + ".", 0) == 0;
    throw InvalidField("record." + (rooted ? f : std::string(name) + "." + f), problem_of(e));
  } catch (const json::exception& e) {
    throw InvalidField(std::string("record.") + name, e.what());
  }
}

// The settings of a record, with limits newer than the record applied instead of refused: a pipe
// saved with a 48 h backoff must still load (config files get the limits as errors).
Settings saved_settings(const json& j) {
  auto it = j.find("settings");
  if (it == j.end() || !it->is_object()) return get<Settings>(j, "settings");
  json s = *it;
  const auto clamp = [](json& obj, const char* key, std::uint64_t max) {
    auto v = obj.find(key);
    if (v != obj.end() && v->is_number_unsigned() && v->get<std::uint64_t>() > max) *v = max;
  };
  const auto day = static_cast<std::uint64_t>(kMaxSettingDuration.count());
  clamp(s, "sync_interval_ms", day);
  clamp(s, "max_partitions_per_table", std::uint64_t{1} << 20);
  for (const char* policy :
       {"provisioning_retry", "setup_retry", "snapshot_partition_retry", "cdc_retry"}) {
    auto p = s.find(policy);
    if (p == s.end() || !p->is_object()) continue;
    clamp(*p, "initial_backoff_ms", day);
    clamp(*p, "max_backoff_ms", day);
  }
  return get<Settings>(json{{"settings", s}}, "settings");
}

std::optional<SchemaChange::Kind> parse_schema_change_kind(std::string_view s) {
  for (auto k : {SchemaChange::Kind::ColumnsAdded, SchemaChange::Kind::ColumnsDropped,
                 SchemaChange::Kind::PartitionsChanged, SchemaChange::Kind::TableStopped,
                 SchemaChange::Kind::Identified}) {
    if (to_string(k) == s) return k;
  }
  return std::nullopt;
}

// ---- Range checks ----
//
// A record is trusted only as far as these go: the checksum catches damage, not someone who
// writes a record on purpose. Partition bounds are pasted into SQL by the PostgreSQL copier, so
// they are held to what it plans (block numbers); everything else is held to what the runtime
// ever writes, with room to spare, so that no loaded value can make it allocate, loop or
// overflow without end.

constexpr std::size_t kMaxTables = 100'000;      // per list of tables and of table loads
constexpr std::size_t kMaxEntries = 10'000;      // history, schema changes, stopped tables, columns
constexpr std::size_t kMaxPartitions = 1 << 20;  // per table
constexpr std::size_t kMaxBoundDigits = 10;      // a ctid block number is a uint32
constexpr std::uint64_t kMaxRows = 1ull << 48;   // 2^32 blocks x 2^16 tuples
// PostgreSQL keeps declared dimensions (pg_attribute.attndims, a smallint) beyond the 6 a value
// may have: `int[][][][][][][]` is a legal column.
constexpr int kMaxArrayDimensions = 32767;
// Messages are for reading: longer ones (written before the runtime capped them) are cut.
constexpr std::size_t kMaxText = 4096;
// Beyond it a TimePoint (nanoseconds since 1970 in an int64) would overflow.
constexpr std::int64_t kMaxMs =
    std::chrono::duration_cast<std::chrono::milliseconds>(TimePoint::max().time_since_epoch())
        .count();

std::string item(const std::string& field, std::size_t i) {
  return field + "[" + std::to_string(i) + "]";
}

// The array `name` of `j`, refused beyond `max` entries before anything is built from it.
const json& list(const json& j, const char* name, const std::string& field, std::size_t max) {
  auto it = j.find(name);
  if (it == j.end()) throw InvalidField(field, "missing");
  if (!it->is_array()) throw InvalidField(field, "expected an array");
  if (it->size() > max) {
    throw InvalidField(field, std::to_string(it->size()) + " entries, more than the " +
                                  std::to_string(max) + " allowed");
  }
  return *it;
}

// A whole number in [0, max]: nlohmann would wrap -1 or cut 1.5 silently.
std::uint64_t whole(const json& j, const char* name, const std::string& field, std::uint64_t max) {
  auto it = j.find(name);
  if (it == j.end()) throw InvalidField(field, "missing");
  if (!it->is_number_unsigned()) throw InvalidField(field, "expected a whole number >= 0");
  const auto v = it->get<std::uint64_t>();
  if (v > max) throw InvalidField(field, "more than " + std::to_string(max));
  return v;
}

TimePoint time_at(const json& j, const char* name, const std::string& field) {
  auto it = j.find(name);
  if (it == j.end()) throw InvalidField(field, "missing");
  if (!it->is_number_integer()) throw InvalidField(field, "expected a whole number");
  const bool in_range =
      it->is_number_unsigned()
          ? it->get<std::uint64_t>() <= static_cast<std::uint64_t>(kMaxMs)
          : it->get<std::int64_t>() >= -kMaxMs && it->get<std::int64_t>() <= kMaxMs;
  if (!in_range) throw InvalidField(field, "out of range for a time");
  return from_ms(it->get<std::int64_t>());
}

std::string capped(const std::string& text) { return capped_error(text, kMaxText); }

void check_name(const std::string& s, const std::string& field) {
  if (s.empty()) throw InvalidField(field, "empty");
  if (s.find('\0') != std::string::npos) throw InvalidField(field, "holds a NUL byte");
}

void check_table(const TableRef& t, const std::string& field) {
  check_name(t.schema, field + ".schema");
  check_name(t.name, field + ".name");
}

std::vector<TableRef> tables_at(const json& j, const char* name) {
  const std::string field = std::string("record.") + name;
  list(j, name, field, kMaxTables);
  auto tables = get<std::vector<TableRef>>(j, name);
  for (std::size_t i = 0; i < tables.size(); ++i) check_table(tables[i], item(field, i));
  return tables;
}

void check_definition(const TableDefinition& d, const std::string& field) {
  check_table(d.table, field + ".table");
  if (d.columns.size() > kMaxEntries) throw InvalidField(field + ".columns", "too many columns");
  for (std::size_t i = 0; i < d.columns.size(); ++i) {
    const Column& c = d.columns[i];
    const std::string f = item(field + ".columns", i);
    check_name(c.name, f + ".name");
    check_name(c.type, f + ".type");
    if (c.array_dimensions < 0 || c.array_dimensions > kMaxArrayDimensions) {
      throw InvalidField(f + ".array_dimensions",
                         "must be in [0, " + std::to_string(kMaxArrayDimensions) + "]");
    }
  }
  if (d.primary_key.size() > d.columns.size())
    throw InvalidField(field + ".primary_key", "more key columns than columns");
  for (std::size_t i = 0; i < d.primary_key.size(); ++i)
    check_name(d.primary_key[i], item(field + ".primary_key", i));
  if (d.leaves.size() > kMaxTables) throw InvalidField(field + ".leaves", "too many leaves");
  for (std::size_t i = 0; i < d.leaves.size(); ++i)
    check_table(d.leaves[i], item(field + ".leaves", i));
}

// Empty (unbounded) or a block number: 1 to 10 decimal digits, nothing else.
void check_bound(const std::string& bound, const std::string& field) {
  if (bound.size() > kMaxBoundDigits)
    throw InvalidField(field, "longer than " + std::to_string(kMaxBoundDigits) + " digits");
  for (char c : bound) {
    if (c < '0' || c > '9') throw InvalidField(field, "not a block number (decimal digits only)");
  }
}

// One table's load: the plan numbered 0, 1, 2, ... in order, as the runtime planned it, and
// `done` ascending, naming each planned partition at most once.
TableLoadRecord load_from(const json& l, const std::string& field) {
  if (!l.is_object()) throw InvalidField(field, "expected an object");
  TableLoadRecord t;
  t.table = get<TableRef>(l, "table");
  check_table(t.table, field + ".table");
  const json& parts = list(l, "partitions", field + ".partitions", kMaxPartitions);
  t.partitions = get<std::vector<Partition>>(l, "partitions");
  for (std::size_t i = 0; i < t.partitions.size(); ++i) {
    const Partition& p = t.partitions[i];
    const std::string f = item(field + ".partitions", i);
    // Read again from the JSON where present: the conversion keeps only the low 32 bits.
    const std::uint64_t index = parts[i].contains("index")
                                    ? whole(parts[i], "index", f + ".index", kMaxPartitions)
                                    : p.index;
    if (index != i)
      throw InvalidField(f + ".index", "partitions must be numbered 0, 1, 2, ... in order");
    check_bound(p.begin, f + ".begin");
    check_bound(p.end, f + ".end");
    if (p.estimated_rows > kMaxRows)
      throw InvalidField(f + ".estimated_rows", "more than " + std::to_string(kMaxRows));
    if (!p.leaf.schema.empty() || !p.leaf.name.empty()) check_table(p.leaf, f + ".leaf");
  }
  const json& done = list(l, "done", field + ".done", kMaxPartitions);
  for (std::size_t i = 0; i < done.size(); ++i) {
    const std::string f = item(field + ".done", i);
    if (!done[i].is_number_unsigned()) throw InvalidField(f, "expected a whole number >= 0");
    const auto d = done[i].get<std::uint64_t>();
    if (d >= t.partitions.size()) {
      throw InvalidField(f, "partition " + std::to_string(d) + " is not in the plan of " +
                                std::to_string(t.partitions.size()));
    }
    if (!t.done.empty() && d <= t.done.back())
      throw InvalidField(f, "done partitions must be ascending, each once");
    t.done.push_back(static_cast<std::uint32_t>(d));
  }
  t.rows_done = whole(l, "rows_done", field + ".rows_done", kMaxRows);
  return t;
}

PipeRecord record_from(const json& j, int version) {
  if (!j.is_object()) throw InvalidField("record", "expected an object");
  PipeRecord r;
  r.id = get<std::string>(j, "id");
  check_name(r.id, "record.id");
  r.lifecycle = get<Lifecycle>(j, "lifecycle");
  if (version >= 2) {
    const auto text = get<std::string>(j, "intent");
    auto intent = parse_intent(text);
    if (!intent) throw InvalidField("record.intent", "unknown intent '" + text + "'");
    r.intent = *intent;
    r.cancelled_added = tables_at(j, "cancelled_added");
  } else {
    // Version 1 kept no intent: a paused pipe was meant to be paused, anything else to run.
    r.intent = r.lifecycle.state() == State::Paused ? Intent::Paused : Intent::Running;
  }
  r.since = time_at(j, "since_ms", "record.since_ms");
  r.settings = saved_settings(j);
  try {
    r.settings.validate();
  } catch (const InvalidField& e) {
    throw InvalidField("record." + e.field(), problem_of(e));
  }
  r.tables = tables_at(j, "tables");
  list(j, "definitions", "record.definitions", kMaxTables);
  r.definitions = get<std::vector<TableDefinition>>(j, "definitions");
  for (std::size_t i = 0; i < r.definitions.size(); ++i)
    check_definition(r.definitions[i], item("record.definitions", i));
  r.pending_added = tables_at(j, "pending_added");
  r.pending_removed = tables_at(j, "pending_removed");
  if (const json& s = need(j, "slot"); !s.is_null()) {
    r.slot = get<SlotInfo>(j, "slot");
    check_name(r.slot->name, "record.slot.name");
  }
  const json& load = list(j, "load", "record.load", kMaxTables);
  for (std::size_t i = 0; i < load.size(); ++i)
    r.load.push_back(load_from(load[i], item("record.load", i)));
  if (const json& c = need(j, "confirmed"); !c.is_null()) r.confirmed = get<Lsn>(j, "confirmed");
  const auto any = std::numeric_limits<std::uint64_t>::max();
  r.cdc_batches = whole(j, "cdc_batches", "record.cdc_batches", any);
  r.cdc_changes = whole(j, "cdc_changes", "record.cdc_changes", any);
  if (const json& e = need(j, "last_error"); !e.is_null()) {
    if (!e.is_object()) throw InvalidField("record.last_error", "expected an object");
    r.last_error = ErrorInfo{capped(get<std::string>(e, "message")), get<State>(e, "state"),
                             time_at(e, "at_ms", "record.last_error.at_ms"), get<bool>(e, "fatal")};
  }
  const json& history = list(j, "history", "record.history", kMaxEntries);
  for (std::size_t i = 0; i < history.size(); ++i) {
    const json& h = history[i];
    r.history.push_back(HistoryEntry{get<State>(h, "from"), get<Trigger>(h, "trigger"),
                                     get<State>(h, "to"),
                                     time_at(h, "at_ms", item("record.history", i) + ".at_ms")});
  }
  r.transitions = whole(j, "transitions", "record.transitions", any);
  if (version >= 3) {
    const json& stopped = list(j, "stopped_tables", "record.stopped_tables", kMaxEntries);
    for (std::size_t i = 0; i < stopped.size(); ++i) {
      const json& st = stopped[i];
      const std::string f = item("record.stopped_tables", i);
      r.stopped_tables.push_back(StoppedTable{get<TableRef>(st, "table"),
                                              capped(get<std::string>(st, "reason")),
                                              time_at(st, "at_ms", f + ".at_ms")});
      check_table(r.stopped_tables.back().table, f + ".table");
    }
    const json& schema = list(j, "schema_changes", "record.schema_changes", kMaxEntries);
    for (std::size_t i = 0; i < schema.size(); ++i) {
      const json& e = schema[i];
      const std::string f = item("record.schema_changes", i);
      const auto text = get<std::string>(e, "kind");
      auto kind = parse_schema_change_kind(text);
      if (!kind) throw InvalidField("record.schema_changes.kind", "unknown kind '" + text + "'");
      r.schema_changes.push_back(SchemaEvent{get<TableRef>(e, "table"), *kind,
                                             capped(get<std::string>(e, "description")),
                                             time_at(e, "at_ms", f + ".at_ms")});
      check_table(r.schema_changes.back().table, f + ".table");
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
  if (j.contains("drop_destination")) r.drop_destination = get<bool>(j, "drop_destination");
  return r;
}

}  // namespace

std::string encode_record(const PipeRecord& record, std::uint64_t generation) {
  // The one thing a record's author (a copier's plan) could get wrong that decoding refuses:
  // refused here, at the first save, rather than as a broken record after a restart.
  for (std::size_t i = 0; i < record.load.size(); ++i) {
    const auto& parts = record.load[i].partitions;
    for (std::size_t k = 0; k < parts.size(); ++k) {
      const std::string f = item(item("record.load", i) + ".partitions", k);
      check_bound(parts[k].begin, f + ".begin");
      check_bound(parts[k].end, f + ".end");
    }
  }
  const json body = record_body(record);
  const std::string text = body.dump(-1, ' ', false, json::error_handler_t::replace);
  json file{{"format_version", PipeRecord::kFormatVersion},
            {"generation", generation},
            {"checksum", fnv1a64(text)},
            {"record", body}};
  return file.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
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
  if (fnv1a64(body.dump(-1, ' ', false, json::error_handler_t::replace)) != sum) {
    throw InvalidField("checksum", "checksum mismatch: the record was altered or damaged");
  }
  if (generation) *generation = get<std::uint64_t>(file, "generation");
  return record_from(body, version);
}

}  // namespace clickpipe
