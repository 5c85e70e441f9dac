#include "clickpipe/clickhouse/schema.hpp"

#include <algorithm>
#include <set>
#include <unordered_map>

#include "values.hpp"

namespace clickpipe::clickhouse {

bool valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    if (c < 0x80) {
      n = 0;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
    } else if ((c >> 4) == 0xe) {
      n = 2;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
    } else {
      return false;
    }
    if (n > 0 && i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += n + 1;
  }
  return true;
}

std::string quote(std::string_view name) {
  if (name.empty()) throw InvalidField("name", "an identifier must not be empty");
  if (!valid_utf8(name)) throw InvalidField("name", "identifier is not valid UTF-8");
  std::string out = "`";
  for (char c : name) {
    if (c == '`' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "`";
}

namespace {

std::string base_type(const Column& c, const Features& f, Conversion& conv) {
  const std::string t = c.type.size() > 1 && c.type[0] == '_' ? c.type.substr(1) : c.type;
  conv = Conversion::Verbatim;
  if (t == "int2") return "Int16";
  if (t == "int4") return "Int32";
  if (t == "int8") return "Int64";
  if (t == "float4") {
    conv = Conversion::Float;
    return "Float32";
  }
  if (t == "float8") {
    conv = Conversion::Float;
    return "Float64";
  }
  if (t == "numeric") {
    // typmod = ((precision << 16) | scale) + 4; without one the number is unconstrained and kept
    // exact as text: no Decimal holds every numeric.
    if (c.type_modifier >= 4) {
      const int p = ((c.type_modifier - 4) >> 16) & 0xffff;
      const int s = (c.type_modifier - 4) & 0xffff;  // PostgreSQL 15's negative scales: > p
      if (p >= 1 && p <= 38 && s <= p) {
        conv = Conversion::Decimal;
        return "Decimal(" + std::to_string(p) + ", " + std::to_string(s) + ")";
      }
    }
    return "String";
  }
  if (t == "bool") {
    conv = Conversion::Boolean;
    return "UInt8";
  }
  if (t == "uuid") return "UUID";
  if (t == "bytea") {
    conv = Conversion::Bytea;
    return "String";
  }
  if (t == "date") {
    conv = Conversion::Date;
    return f.date32 ? "Date32" : "String";
  }
  if (t == "timestamp" || t == "timestamptz") {
    // Both in UTC: the text PostgreSQL gives (pinned to UTC) lands unchanged, whatever the
    // ClickHouse server's own time zone.
    conv = Conversion::Timestamp;
    return f.datetime64 ? "DateTime64(6, 'UTC')" : "String";
  }
  // text, varchar, bpchar, json, jsonb, interval, time, and anything else: the source's text.
  return "String";
}

}  // namespace

MappedColumn map_column(const Column& c, ServerVersion v) {
  MappedColumn m;
  m.name = c.name;
  Conversion conv;
  const Features f = Features::of(v);
  const std::string base = base_type(c, f, conv);
  m.bounded = base.rfind("Date", 0) == 0;
  const int* years = base == "Date32" ? f.date32_years : f.datetime64_years;
  m.years[0] = years[0];
  m.years[1] = years[1];
  if (c.array_dimensions > 0) {
    m.conversion = Conversion::Array;
    m.element = conv;
    m.quoted_elements = base == "String" || base == "UUID" || base.rfind("Date", 0) == 0;
    std::string t = "Nullable(" + base + ")";
    for (int d = 0; d < std::max(1, c.array_dimensions); ++d) t = "Array(" + t + ")";
    m.type = t;  // arrays cannot be Nullable: a NULL array lands as []
  } else {
    m.conversion = conv;
    m.nullable = c.nullable;
    m.type = c.nullable ? "Nullable(" + base + ")" : base;
  }
  return m;
}

TableLayout layout_for(const TableDefinition& table, const std::string& name, ServerVersion v) {
  if (table.primary_key.empty()) {
    throw InvalidField("table", table.table.qualified() + " has no primary key to order by");
  }
  quote(name);
  TableLayout out;
  out.name = name;
  std::set<std::string> seen{"_version", "_is_deleted", "_synced_at"};
  for (const Column& c : table.columns) {
    quote(c.name);
    if (!seen.insert(c.name).second) {
      throw InvalidField("columns", "column name '" + c.name + "' of " + table.table.qualified() +
                                        " collides with another column or a column clickpipe adds");
    }
    MappedColumn m = map_column(c, v);
    m.key = std::find(table.primary_key.begin(), table.primary_key.end(), c.name) !=
            table.primary_key.end();
    if (m.key && m.bounded) {
      m.type = "String";
      m.bounded = false;
    }
    out.columns.push_back(std::move(m));
  }
  out.order_by = table.primary_key;
  out.server = v;
  return out;
}

std::string create_table_sql(const TableLayout& l, const std::string& database) {
  std::string sql = "CREATE TABLE IF NOT EXISTS " + quote(database) + "." + quote(l.name) + " (";
  for (const auto& c : l.columns) sql += quote(c.name) + " " + c.type + ", ";
  sql += "`_version` UInt64, `_is_deleted` UInt8, `_synced_at` DateTime) ENGINE = ";
  sql += Features::of(l.server).replacing_is_deleted
             ? "ReplacingMergeTree(`_version`, `_is_deleted`) ORDER BY ("
             : "ReplacingMergeTree(`_version`) ORDER BY (";
  for (std::size_t i = 0; i < l.order_by.size(); ++i) sql += (i ? ", " : "") + quote(l.order_by[i]);
  return sql + ")";
}

namespace {

// One value as the column's TabSeparated text.
void encode_value(std::string& out, const MappedColumn& m, const Datum& d) {
  if (d.kind == Datum::Kind::UnchangedToast) {
    throw InvalidField("row", "an unchanged TOAST value must be filled before writing");
  }
  if (d.is_null()) {
    out += m.conversion == Conversion::Array ? "[]" : "\\N";
  } else {
    detail::append_converted(out, m, d.text);
  }
}

// The keys a count back uploads, as the table `clickpipe_keys`: `tsv` holds per row the key
// columns as text (k0, k1, ...) and then the version expected at least.
ExternalTable keys_table(std::size_t key_columns, std::string tsv) {
  ExternalTable t{"clickpipe_keys", "", std::move(tsv)};
  for (std::size_t k = 0; k < key_columns; ++k) {
    t.structure.append(1, 'k').append(std::to_string(k)).append(" String, ");
  }
  t.structure += "expected UInt64";
  return t;
}

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

// How many distinct keys of `keys` the table holds at all. Enough for initial-load rows: they all
// carry version 0 and nothing newer is written while they load, and cheaper than count_landed's
// grouping.
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

// Undoes COPY text escaping in one field (not \N, handled by the caller).
void unescape_copy(std::string_view v, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '\\' || i + 1 == v.size()) {
      out += v[i];
      continue;
    }
    switch (const char e = v[++i]) {
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      default: out += e;
    }
  }
}

}  // namespace

std::string convert_value(const MappedColumn& column, std::string_view source_text) {
  std::string out;
  detail::append_converted(out, column, source_text);
  return out;
}

std::string encode_rows(const TableLayout& l, const std::vector<Row>& rows,
                        std::uint32_t synced_at) {
  std::string out;
  const std::string tail = std::to_string(synced_at);
  for (const Row& r : rows) {
    if (r.values.size() != l.columns.size()) {
      throw InvalidField("row", std::to_string(r.values.size()) + " values for " +
                                    std::to_string(l.columns.size()) + " columns of " + l.name);
    }
    for (std::size_t i = 0; i < l.columns.size(); ++i) {
      encode_value(out, l.columns[i], r.values[i]);
      out += '\t';
    }
    out += std::to_string(r.version);
    out += r.deleted ? "\t1\t" : "\t0\t";
    out += tail;
    out += '\n';
  }
  return out;
}

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

CopyTextEncoder::CopyTextEncoder(TableLayout layout, std::uint64_t version, bool keep_keys)
    : layout_(std::move(layout)), version_(std::to_string(version)), keep_keys_(keep_keys) {
  key_at_ = key_columns(layout_);
  key_.assign(layout_.columns.size(), false);
  if (keep_keys_) {
    for (std::size_t i : key_at_) key_[i] = true;
  }
  tail_ = "\t" + version_ + "\t0\t" + std::to_string(now_epoch_seconds()) + "\n";
}

std::string CopyTextEncoder::insert_sql(const std::string& database) const {
  return insert_prefix(database, layout_);
}

void CopyTextEncoder::add(std::string_view line, std::string& out) {
  const std::size_t start = out.size(), key_start = keys_.size();
  const std::size_t columns = layout_.columns.size();
  std::size_t column = 0, from = 0;
  bool more = true;
  while (more && column < columns) {
    const std::size_t tab = line.find('\t', from);
    more = tab != std::string_view::npos;
    const std::string_view v = line.substr(from, more ? tab - from : std::string_view::npos);
    const MappedColumn& m = layout_.columns[column];
    const std::size_t value_at = out.size();
    if (v == "\\N") {
      encode_value(out, m, Datum::null());  // \N, or [] for an array
    } else if (!detail::append_plain(out, m, v)) {
      unescape_copy(v, field_);
      encode_value(out, m, Datum::of(field_));
    }
    if (key_[column]) {
      keys_.append(out, value_at, out.size() - value_at);
      keys_ += '\t';
    }
    if (more) {
      out += '\t';
      from = tab + 1;
    }
    ++column;
  }
  if (more || column != columns) {  // a field too many, or too few
    out.resize(start);
    keys_.resize(key_start);
    throw InvalidField("row", "a COPY line of " + layout_.name + " does not have " +
                                  std::to_string(columns) + " fields");
  }
  out += tail_;
  if (keep_keys_) {
    keys_ += version_;
    keys_ += '\n';
    ++key_rows_;
  }
}

Reconciliation CopyTextEncoder::reconcile(Client& client) {
  if (!keep_keys_) throw InvalidField("reconcile", "the encoder keeps no keys");
  Reconciliation out;
  out.keys = key_rows_;
  if (key_rows_ > 0) {
    out.landed =
        count_present(client, layout_, key_at_, keys_table(key_at_.size(), std::move(keys_)));
  }
  keys_.clear();
  key_rows_ = 0;
  return out;
}

std::vector<std::vector<std::optional<std::string>>> parse_tab_separated(std::string_view body) {
  std::vector<std::vector<std::optional<std::string>>> out;
  std::vector<std::optional<std::string>> row;
  std::string field;
  bool null = false;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '\t' || c == '\n') {
      row.push_back(null ? std::nullopt : std::optional<std::string>(field));
      field.clear();
      null = false;
      if (c == '\n') out.push_back(std::exchange(row, {}));
    } else if (c == '\\' && i + 1 < body.size()) {
      switch (const char e = body[++i]) {
        case 'N': null = true; break;
        case 't': field += '\t'; break;
        case 'n': field += '\n'; break;
        case 'r': field += '\r'; break;
        case '0': field += '\0'; break;
        case 'b': field += '\b'; break;
        case 'f': field += '\f'; break;
        default: field += e;
      }
    } else {
      field += c;
    }
  }
  return out;
}

std::vector<std::vector<std::optional<std::string>>> read_final(Client& client,
                                                                const TableLayout& l) {
  std::string sql = "SELECT ";
  for (std::size_t i = 0; i < l.columns.size(); ++i)
    sql += (i ? ", " : "") + quote(l.columns[i].name);
  sql += " FROM " + quote(client.settings().database) + "." + quote(l.name) +
         " FINAL WHERE `_is_deleted` = 0 ORDER BY ";
  for (std::size_t i = 0; i < l.order_by.size(); ++i) sql += (i ? ", " : "") + quote(l.order_by[i]);
  sql += " FORMAT TabSeparated";
  return parse_tab_separated(client.query(sql));
}

void delete_all(Client& client, const TableLayout& layout, std::uint64_t version) {
  std::string cols;
  for (const auto& m : layout.columns) cols += quote(m.name) + ", ";
  const std::string t = quote(client.settings().database) + "." + quote(layout.name);
  // Both servers read FINAL here: on 23.2+ it already hides deleted rows, before it the WHERE does.
  client.query("INSERT INTO " + t + " (" + cols +
               "`_version`, `_is_deleted`, `_synced_at`) SELECT " + cols + std::to_string(version) +
               ", 1, now() FROM " + t + " FINAL WHERE `_is_deleted` = 0");
}

std::vector<std::string> add_missing_columns(Client& client, const TableLayout& layout) {
  const std::string db = client.settings().database;
  std::set<std::string> have;
  for (const auto& row : parse_tab_separated(
           client.query("DESCRIBE TABLE " + quote(db) + "." + quote(layout.name)))) {
    if (!row.empty() && row[0]) have.insert(*row[0]);
  }
  std::vector<std::string> added;
  for (const auto& m : layout.columns) {
    if (have.count(m.name)) continue;
    client.query("ALTER TABLE " + quote(db) + "." + quote(layout.name) + " ADD COLUMN " +
                 quote(m.name) + " " + m.type);
    added.push_back(m.name);
  }
  return added;
}

bool table_exists(Client& client, const std::string& name) {
  return client.query("EXISTS TABLE " + quote(client.settings().database) + "." + quote(name)) ==
         "1\n";
}

void create_resync_table(Client& client, const TableLayout& layout) {
  TableLayout copy = layout;
  copy.name = layout.name + "_resync";
  client.query("DROP TABLE IF EXISTS " + quote(client.settings().database) + "." +
               quote(copy.name));
  client.query(create_table_sql(copy, client.settings().database));
}

void swap_resync(Client& client, const std::string& name) {
  const std::string db = quote(client.settings().database) + ".";
  const std::string main = db + quote(name), resync = db + quote(name + "_resync"),
                    old = db + quote(name + "_old");
  if (table_exists(client, name + "_resync")) {
    client.query("DROP TABLE IF EXISTS " + old);  // a swap interrupted before its drop
    if (table_exists(client, name)) {
      client.query("RENAME TABLE " + main + " TO " + old + ", " + resync + " TO " + main);
    } else {
      client.query("RENAME TABLE " + resync + " TO " + main);
    }
  }
  client.query("DROP TABLE IF EXISTS " + old);
}

}  // namespace clickpipe::clickhouse
