#include "clickpipe/clickhouse/insert.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <unordered_map>
#include <utility>

#include "writes.hpp"

namespace clickpipe::clickhouse {

namespace detail {

ExternalTable keys_table(std::size_t key_columns, std::string tsv) {
  ExternalTable t{"clickpipe_keys", "", std::move(tsv)};
  for (std::size_t k = 0; k < key_columns; ++k) {
    t.structure.append(1, 'k').append(std::to_string(k)).append(" String, ");
  }
  t.structure += "expected UInt64";
  return t;
}

std::vector<std::size_t> key_columns(const TableLayout& l) {
  std::vector<std::size_t> key_at;
  for (const auto& k : l.order_by) {
    for (std::size_t i = 0; i < l.columns.size(); ++i) {
      if (l.columns[i].name == k) key_at.push_back(i);
    }
  }
  if (key_at.size() != l.order_by.size()) {
    throw InvalidField("layout", "a key column of " + l.name + " is not among its columns");
  }
  return key_at;
}

std::string insert_prefix(const std::string& database, const TableLayout& l) {
  std::string sql = "INSERT INTO " + quote(database) + "." + quote(l.name) + " (";
  for (const auto& c : l.columns) sql += quote(c.name) + ", ";
  return sql + "`_version`, `_is_deleted`, `_synced_at`)";
}

std::uint32_t now_epoch_seconds() {
  return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace detail

namespace {

using detail::encode_value;
using detail::insert_prefix;
using detail::key_columns;
using detail::keys_table;
using detail::now_epoch_seconds;

// Runs a count-back query. The rows it checks were inserted already: a query the server refuses
// is a bug here, not in the data, and says so with the query; anything transient goes up as it is
// (the batch is written again on retry, which the versions make safe).
std::uint64_t count(Client& client, const TableLayout& l, const std::string& sql,
                    const ExternalTable& keys) {
  std::string answer;
  try {
    answer = client.query(sql, keys);
  } catch (const ClickHouseFatalError& e) {
    throw ClickHouseFatalError("counting back the rows just written to " + l.name +
                                   " failed on ClickHouse " + l.server.to_string() +
                                   " (a bug in clickpipe; the rows stay unconfirmed and are "
                                   "written again on retry). Query: " +
                                   sql + ". Error: " + e.what(),
                               e.code());
  }
  char* end = nullptr;
  const std::uint64_t n = std::strtoull(answer.c_str(), &end, 10);
  if (end == answer.c_str()) {
    throw ClickHouseFatalError("counting back rows of " + l.name + ": unexpected answer '" +
                                   answer.substr(0, 100) + "' to: " + sql,
                               0);
  }
  return n;
}

// The key columns cast from the uploaded text to their types on the server, so a key compares
// the way the insert stored it (and types like Decimal(12, 3) need not be spelled in the
// structure).
std::string key_casts(const TableLayout& l, const std::vector<std::size_t>& key_at, bool aliased) {
  std::string casts;
  for (std::size_t k = 0; k < key_at.size(); ++k) {
    casts +=
        (k ? ", CAST(k" : "CAST(k") + std::to_string(k) + " AS " + l.columns[key_at[k]].type + ")";
    if (aliased) casts += " AS `_clickpipe_k" + std::to_string(k) + "`";
  }
  return casts;
}

// How many keys of `keys` (TabSeparated: the key columns as text, then a version) the table
// holds at that version or a newer one. The newest version held per key, not the FINAL view:
// FINAL hides deleted keys on servers with ReplacingMergeTree(_version, _is_deleted). No JOIN:
// the table's rows and the keys meet in one UNION ALL grouped by key, which every server from
// 18.16 on accepts, every subquery named (newer analyzers require it).
std::uint64_t count_landed(Client& client, const TableLayout& l,
                           const std::vector<std::size_t>& key_at, const ExternalTable& keys) {
  std::string cols, held, group;
  for (std::size_t k = 0; k < key_at.size(); ++k) {
    const std::string alias = "`_clickpipe_k" + std::to_string(k) + "`";
    cols += (k ? ", " : "") + quote(l.columns[key_at[k]].name);
    held += quote(l.columns[key_at[k]].name) + " AS " + alias + ", ";
    group += (k ? ", " : "") + alias;
  }
  const std::string sql =
      "SELECT countIf(`_clickpipe_p` = 1 AND `_clickpipe_h` >= `_clickpipe_e`) FROM (SELECT " +
      group +
      ", max(`_clickpipe_p0`) AS `_clickpipe_p`, max(`_clickpipe_h0`) AS `_clickpipe_h`, "
      "max(`_clickpipe_e0`) AS `_clickpipe_e` FROM (SELECT " +
      held +
      "toUInt8(1) AS `_clickpipe_p0`, `_version` AS `_clickpipe_h0`, toUInt64(0) AS "
      "`_clickpipe_e0` FROM " +
      quote(client.settings().database) + "." + quote(l.name) + " WHERE (" + cols +
      ") IN (SELECT " + key_casts(l, key_at, false) + " FROM clickpipe_keys) UNION ALL SELECT " +
      key_casts(l, key_at, true) +
      ", toUInt8(0), toUInt64(0), expected FROM clickpipe_keys) AS `_clickpipe_rows` GROUP BY " +
      group + ") AS `_clickpipe_keys`";
  return count(client, l, sql, keys);
}

}  // namespace

namespace detail {

std::uint64_t count_present(Client& client, const TableLayout& l,
                            const std::vector<std::size_t>& key_at, const ExternalTable& keys) {
  std::string cols;
  for (std::size_t k = 0; k < key_at.size(); ++k) {
    cols += (k ? ", " : "") + quote(l.columns[key_at[k]].name);
  }
  const std::string sql = "SELECT uniqExact(" + cols + ") FROM " +
                          quote(client.settings().database) + "." + quote(l.name) + " WHERE (" +
                          cols + ") IN (SELECT " + key_casts(l, key_at, false) +
                          " FROM clickpipe_keys)";
  return count(client, l, sql, keys);
}

}  // namespace detail

std::uint64_t insert(Client& client, const TableLayout& l, const std::vector<Row>& rows) {
  if (rows.empty()) return 0;
  client.insert(insert_prefix(client.settings().database, l),
                encode_rows(l, rows, now_epoch_seconds()));
  return rows.size();
}

Reconciliation reconcile(Client& client, const TableLayout& l, const std::vector<Row>& rows) {
  const std::vector<std::size_t> key_at = key_columns(l);
  // Each key's newest version among the rows: what the FINAL view must show for it at least.
  std::unordered_map<std::string, std::uint64_t> newest;
  std::string key;
  for (const Row& r : rows) {
    key.clear();
    for (std::size_t i : key_at) {
      if (i >= r.values.size()) throw InvalidField("row", "too few values for " + l.name);
      encode_value(key, l.columns[i], r.values[i]);
      key += '\t';
    }
    auto [it, added] = newest.try_emplace(key, r.version);
    if (!added) it->second = std::max(it->second, r.version);
  }
  Reconciliation out;
  out.keys = newest.size();
  if (newest.empty()) return out;
  std::string tsv;
  for (const auto& [k, v] : newest) {
    tsv += k;
    tsv += std::to_string(v);
    tsv += '\n';
  }
  out.landed = count_landed(client, l, key_at, keys_table(key_at.size(), std::move(tsv)));
  return out;
}

std::uint64_t insert_reconciled(Client& client, const TableLayout& l,
                                const std::vector<Row>& rows) {
  insert(client, l, rows);
  const Reconciliation r = reconcile(client, l, rows);
  if (!r.complete()) throw RowsMissing(l.name, r);
  return rows.size();
}

RowsMissing::RowsMissing(const std::string& table, Reconciliation r)
    : TransientError("ClickHouse accepted an insert into " + table + " but its FINAL view holds " +
                     std::to_string(r.landed) + " of the " + std::to_string(r.keys) +
                     " keys written at their versions: rows were dropped; the batch is sent "
                     "again"),
      reconciliation_(r) {}

}  // namespace clickpipe::clickhouse
