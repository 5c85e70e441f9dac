// The rows a change becomes: deletions keyed by the old row, and rows completed with the values
// the stream did not send (columns added or dropped, unchanged TOAST read back by key).
#include <algorithm>
#include <map>

#include "cdc_streamer.hpp"
#include "clickpipe/postgres/catalog.hpp"
#include "clickpipe/postgres/rows.hpp"
#include "internal.hpp"

namespace clickpipe::pg_to_clickhouse::detail {
namespace {

// A value that satisfies a non-nullable column in a row that only marks a key as deleted.
Datum placeholder(const Column& c) {
  if (c.nullable || c.array_dimensions > 0)
    return c.array_dimensions > 0 ? Datum::of("{}") : Datum::null();
  static const std::map<std::string, std::string> values = {
      {"int2", "0"},
      {"int4", "0"},
      {"int8", "0"},
      {"float4", "0"},
      {"float8", "0"},
      {"numeric", "0"},
      {"bool", "f"},
      {"date", "1970-01-01"},
      {"timestamp", "1970-01-01 00:00:00"},
      {"timestamptz", "1970-01-01 00:00:00+00"},
      {"uuid", "00000000-0000-0000-0000-000000000000"}};
  auto it = values.find(c.type);
  return Datum::of(it == values.end() ? std::string() : it->second);
}

}  // namespace

std::string CdcStreamer::current_name(const TableDefinition& def) {
  if (def.oid == 0) return postgres::qualified(*sql_, def.table);
  auto it = names_.find(def.oid);
  if (it != names_.end()) return it->second;
  std::optional<std::string> name = postgres::relation_name(*sql_, def.oid);
  if (!name) return "";
  return names_[def.oid] = std::move(*name);
}

Values CdcStreamer::deletion(const Held& h, const Values& key_row, const Values& fallback) {
  const TableDefinition& def = h.def;
  Values out(def.columns.size());
  for (std::size_t i = 0; i < def.columns.size(); ++i) {
    const bool key = std::find(h.key_at.begin(), h.key_at.end(), i) != h.key_at.end();
    if (key && i < key_row.size()) {
      out[i] = key_row[i];
    } else if (i < fallback.size() && fallback[i].kind == Datum::Kind::Text) {
      out[i] = fallback[i];
    } else {
      out[i] = placeholder(def.columns[i]);
    }
  }
  return out;
}

Values CdcStreamer::filled(const Held& h, const Values& v) {
  const TableDefinition& def = h.def;
  Values out = v;
  out.resize(def.columns.size());
  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (def.columns[i].dropped && !(out[i].kind == Datum::Kind::Text)) {
      out[i] = placeholder(def.columns[i]);  // gone at the source: nothing to read back
    } else if (out[i].kind == Datum::Kind::UnchangedToast) {
      missing.push_back(i);
    }
  }
  if (missing.empty()) return out;
  path_counters().toast_refilled.fetch_add(missing.size());
  std::vector<std::string> columns, key_columns;
  std::vector<std::optional<std::string>> key;
  for (std::size_t i : missing) columns.push_back(def.columns[i].name);
  for (std::size_t i : h.key_at) {
    key_columns.push_back(def.columns[i].name);
    key.push_back(out[i].is_null() ? std::nullopt : std::optional<std::string>(out[i].text));
  }
  // By OID, so a table renamed since is still found; one dropped since is not (nor a dropped
  // column): the stream says so next, and the table stops or the column gets NULL from then on.
  const std::string from = current_name(def);
  // Outer nullopt: the table or a column is gone; inner nullopt: the row is.
  using Read = std::optional<std::optional<Values>>;
  auto read = [&](const std::vector<std::string>& names) -> Read {
    if (from.empty()) return std::nullopt;
    try {
      return Read(std::in_place, postgres::read_row_by_key(*sql_, from, names, key_columns, key));
    } catch (const postgres::PgFatalError& e) {
      if (e.sqlstate() != "42703" && e.sqlstate() != "42P01") throw;
      if (e.sqlstate() == "42P01") names_.erase(def.oid);
      return std::nullopt;
    }
  };
  const Read found = read(columns);
  if (!found && !from.empty() && missing.size() > 1) {
    // One of them was dropped: read the others one by one, so only that one gets NULL.
    for (std::size_t i : missing) {
      const Read one = read({def.columns[i].name});
      out[i] = one && *one ? (**one)[0] : placeholder(def.columns[i]);
    }
    return out;
  }
  for (std::size_t k = 0; k < missing.size(); ++k) {
    const std::size_t i = missing[k];
    out[i] = found && *found ? (**found)[k] : placeholder(def.columns[i]);
  }
  return out;
}

}  // namespace clickpipe::pg_to_clickhouse::detail
