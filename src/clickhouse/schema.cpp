#include "clickpipe/clickhouse/schema.hpp"

#include <algorithm>
#include <set>
#include <unordered_map>

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

std::string base_type(const Column& c, ServerVersion v, Conversion& conv) {
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
      const int s = (c.type_modifier - 4) & 0xffff;
      if (p >= 1 && p <= 38) return "Decimal(" + std::to_string(p) + ", " + std::to_string(s) + ")";
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
    return v.has_date32() ? "Date32" : "String";
  }
  if (t == "timestamp" || t == "timestamptz") {
    conv = Conversion::Timestamp;
    if (v.has_datetime64()) return t == "timestamptz" ? "DateTime64(6, 'UTC')" : "DateTime64(6)";
    return "String";
  }
  // text, varchar, bpchar, json, jsonb, and anything else: the source's text, exactly.
  return "String";
}

}  // namespace

MappedColumn map_column(const Column& c, ServerVersion v) {
  MappedColumn m;
  m.name = c.name;
  Conversion conv;
  const std::string base = base_type(c, v, conv);
  if (c.array_dimensions > 0) {
    m.conversion = Conversion::Array;
    m.element = conv;
    m.quoted_elements = base == "String" || base == "UUID" || base.rfind("Date", 0) == 0;
    std::string t = "Nullable(" + base + ")";
    for (int d = 0; d < std::max(1, c.array_dimensions); ++d) t = "Array(" + t + ")";
    m.type = t;  // arrays cannot be Nullable: a NULL array lands as []
  } else {
    m.conversion = conv;
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
    out.columns.push_back(map_column(c, v));
  }
  out.order_by = table.primary_key;
  return out;
}

std::string create_table_sql(const TableLayout& l, const std::string& database) {
  std::string sql = "CREATE TABLE IF NOT EXISTS " + quote(database) + "." + quote(l.name) + " (";
  for (const auto& c : l.columns) sql += quote(c.name) + " " + c.type + ", ";
  sql +=
      "`_version` UInt64, `_is_deleted` UInt8, `_synced_at` DateTime) ENGINE = "
      "ReplacingMergeTree(`_version`) ORDER BY (";
  for (std::size_t i = 0; i < l.order_by.size(); ++i) sql += (i ? ", " : "") + quote(l.order_by[i]);
  return sql + ")";
}

namespace {

void escape_tsv(std::string& out, std::string_view v) {
  // Runs without anything to escape (nearly everything) are appended whole.
  std::size_t from = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c != '\\' && c != '\t' && c != '\n' && c != '\r' && c != '\0' && c != '\b' && c != '\f') {
      continue;
    }
    out.append(v.data() + from, i - from);
    from = i + 1;
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\0': out += "\\0"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default: break;
    }
  }
  out.append(v.data() + from, v.size() - from);
}

// The conversions that never meet an escaped character (PostgreSQL prints these types plainly),
// written straight from COPY text into `out`. False for the others.
bool append_plain(std::string& out, Conversion conv, std::string_view v) {
  switch (conv) {
    case Conversion::Verbatim:
    case Conversion::Date: out.append(v); return true;
    case Conversion::Boolean: out += (v == "t" || v == "true") ? '1' : '0'; return true;
    case Conversion::Float:
      if (v == "NaN") {
        out += "nan";
      } else if (v == "Infinity") {
        out += "inf";
      } else if (v == "-Infinity") {
        out += "-inf";
      } else {
        out.append(v);
      }
      return true;
    case Conversion::Timestamp: {
      // "YYYY-MM-DD HH:MM:SS[.ffffff][+zz[:mm]]" (sessions in UTC) -> six fraction digits.
      if (v.size() < 19) return false;
      std::string_view rest = v.substr(19);
      out.append(v.data(), 19);
      out += '.';
      std::size_t digits = 0;
      if (!rest.empty() && rest.front() == '.') {
        rest.remove_prefix(1);
        while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
        out.append(rest.data(), std::min<std::size_t>(digits, 6));
      }
      out.append(6 - std::min<std::size_t>(digits, 6), '0');
      return true;
    }
    default: return false;
  }
}

std::string convert(Conversion conv, const std::string& v) {
  switch (conv) {
    case Conversion::Float:
      if (v == "NaN") return "nan";
      if (v == "Infinity") return "inf";
      if (v == "-Infinity") return "-inf";
      return v;
    case Conversion::Boolean: return v == "t" || v == "true" ? "1" : "0";
    case Conversion::Bytea: {
      if (v.size() < 2 || v[0] != '\\' || v[1] != 'x') return v;
      std::string out;
      for (std::size_t i = 2; i + 1 < v.size(); i += 2) {
        out += static_cast<char>(std::stoi(v.substr(i, 2), nullptr, 16));
      }
      return out;
    }
    case Conversion::Timestamp: {
      // PostgreSQL prints "YYYY-MM-DD HH:MM:SS[.ffffff][+zz]" (sessions in UTC): keep six digits.
      std::string s = v;
      const auto tz = s.find_first_of("+-", 19);
      if (tz != std::string::npos) s.resize(tz);
      const auto dot = s.find('.');
      std::string frac = dot == std::string::npos ? "" : s.substr(dot + 1);
      if (dot != std::string::npos) s.resize(dot);
      frac.resize(6, '0');
      return s + "." + frac;
    }
    default: return v;
  }
}

// Parses a PostgreSQL array literal ({1,"a b",NULL,{2,3}}) into a ClickHouse one.
std::string array_literal(std::string_view v, std::size_t& i, const MappedColumn& m) {
  if (i >= v.size() || v[i] != '{') throw InvalidField("array", "not an array literal");
  ++i;
  std::string out = "[";
  bool first = true;
  while (i < v.size() && v[i] != '}') {
    if (!first) {
      if (v[i] != ',') throw InvalidField("array", "malformed array literal");
      ++i;
    }
    first = false;
    if (v[i] == '{') {
      out += (out.size() > 1 ? "," : "") + array_literal(v, i, m);
      continue;
    }
    std::string item;
    bool quoted = false;
    if (v[i] == '"') {
      quoted = true;
      for (++i; i < v.size() && v[i] != '"'; ++i) {
        if (v[i] == '\\' && i + 1 < v.size()) ++i;
        item += v[i];
      }
      ++i;
    } else {
      while (i < v.size() && v[i] != ',' && v[i] != '}') item += v[i++];
    }
    if (out.size() > 1) out += ',';
    if (!quoted && item == "NULL") {
      out += "NULL";
    } else if (m.quoted_elements) {
      // Quoted the way ClickHouse reads strings inside arrays (the array is not TSV-escaped).
      out += '\'';
      for (char c : convert(m.element, item)) {
        switch (c) {
          case '\'': out += "\\'"; break;
          case '\\': out += "\\\\"; break;
          case '\t': out += "\\t"; break;
          case '\n': out += "\\n"; break;
          case '\r': out += "\\r"; break;
          case '\0': out += "\\0"; break;
          default: out += c;
        }
      }
      out += '\'';
    } else {
      out += convert(m.element, item);
    }
  }
  ++i;
  return out + "]";
}

// One value as the column's TabSeparated text.
void encode_value(std::string& out, const MappedColumn& m, const Datum& d) {
  if (d.kind == Datum::Kind::UnchangedToast) {
    throw InvalidField("row", "an unchanged TOAST value must be filled before writing");
  }
  if (m.conversion == Conversion::Array) {
    if (d.is_null()) {
      out += "[]";
    } else {
      std::size_t at = 0;
      out += array_literal(d.text, at, m);
    }
  } else if (d.is_null()) {
    out += "\\N";
  } else {
    escape_tsv(out, convert(m.conversion, d.text));
  }
}

// The keys a count back uploads, as the table `clickpipe_keys`: `tsv` holds per row the key
// columns as text (k0, k1, ...) and then the version expected at least.
ExternalTable keys_table(std::size_t key_columns, std::string tsv) {
  ExternalTable t{"clickpipe_keys", "", std::move(tsv)};
  for (std::size_t k = 0; k < key_columns; ++k)
    t.structure += "k" + std::to_string(k) + " String, ";
  t.structure += "expected UInt64";
  return t;
}

// How many keys of `keys` (TabSeparated: the key columns as text, then a version) the FINAL view
// holds at that version or a newer one.
std::uint64_t count_landed(Client& client, const TableLayout& l,
                           const std::vector<std::size_t>& key_at, const ExternalTable& keys) {
  // Keys travel as text and are cast to the column types on the server, so a key compares the
  // way the insert stored it (and types like Decimal(12, 3) need not be spelled in the structure).
  std::string cols, casts, aliases, alias_list, join_side;
  for (std::size_t k = 0; k < key_at.size(); ++k) {
    const MappedColumn& m = l.columns[key_at[k]];
    const std::string alias = "`_clickpipe_k" + std::to_string(k) + "`";
    const std::string cast = "CAST(k" + std::to_string(k) + " AS " + m.type + ")";
    cols += (k ? ", " : "") + quote(m.name);
    casts += (k ? ", " : "") + cast;
    aliases += quote(m.name) + " AS " + alias + ", ";
    alias_list += (k ? ", " : "") + alias;
    join_side += cast + " AS " + alias + ", ";
  }
  const std::string sql = "SELECT count() FROM (SELECT " + aliases +
                          "`_version` AS `_clickpipe_v` FROM " + quote(client.settings().database) +
                          "." + quote(l.name) + " FINAL WHERE (" + cols + ") IN (SELECT " + casts +
                          " FROM clickpipe_keys)) ANY INNER JOIN (SELECT " + join_side +
                          "expected AS `_clickpipe_expected` FROM clickpipe_keys) USING (" +
                          alias_list + ") WHERE `_clickpipe_v` >= `_clickpipe_expected`";
  return std::strtoull(client.query(sql, keys).c_str(), nullptr, 10);
}

// How many distinct keys of `keys` the table holds at all. Enough for initial-load rows: they all
// carry version 0 and nothing newer is written while they load, and cheaper than count_landed's
// FINAL and join (about 0.6x the time here).
std::uint64_t count_present(Client& client, const TableLayout& l,
                            const std::vector<std::size_t>& key_at, const ExternalTable& keys) {
  std::string cols, casts;
  for (std::size_t k = 0; k < key_at.size(); ++k) {
    cols += (k ? ", " : "") + quote(l.columns[key_at[k]].name);
    casts +=
        (k ? ", " : "") + ("CAST(k" + std::to_string(k) + " AS " + l.columns[key_at[k]].type + ")");
  }
  const std::string sql = "SELECT uniqExact(" + cols + ") FROM " +
                          quote(client.settings().database) + "." + quote(l.name) + " WHERE (" +
                          cols + ") IN (SELECT " + casts + " FROM clickpipe_keys)";
  return std::strtoull(client.query(sql, keys).c_str(), nullptr, 10);
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
  return sql + "`_version`, `_is_deleted`, `_synced_at`) FORMAT TabSeparated";
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
  client.query(insert_prefix(client.settings().database, l),
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
    } else if (!append_plain(out, m.conversion, v)) {
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

std::vector<std::vector<std::optional<std::string>>> read_final(Client& client,
                                                                const TableLayout& l) {
  std::string sql = "SELECT ";
  for (std::size_t i = 0; i < l.columns.size(); ++i)
    sql += (i ? ", " : "") + quote(l.columns[i].name);
  sql += " FROM " + quote(client.settings().database) + "." + quote(l.name) +
         " FINAL WHERE `_is_deleted` = 0 ORDER BY ";
  for (std::size_t i = 0; i < l.order_by.size(); ++i) sql += (i ? ", " : "") + quote(l.order_by[i]);
  sql += " FORMAT TabSeparated";
  const std::string body = client.query(sql);
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
      const char e = body[++i];
      switch (e) {
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
