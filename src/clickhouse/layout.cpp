#include "clickpipe/clickhouse/layout.hpp"

#include <algorithm>
#include <set>

#include "clickpipe/error.hpp"

namespace clickpipe::clickhouse {

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
  std::set<std::string> seen;
  for (const auto& b : kBookkeepingColumns) seen.emplace(b.name);
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
  std::string sql = "CREATE TABLE " + quote(database) + "." + quote(l.name) + " (";
  for (const auto& c : l.columns) sql += quote(c.name) + " " + c.type + ", ";
  for (const auto& b : kBookkeepingColumns) {
    sql.append(quote(b.name)).append(" ").append(b.type).append(", ");
  }
  sql.resize(sql.size() - 2);
  sql += ") ENGINE = ";
  sql += Features::of(l.server).replacing_is_deleted
             ? "ReplacingMergeTree(`_version`, `_is_deleted`) ORDER BY ("
             : "ReplacingMergeTree(`_version`) ORDER BY (";
  for (std::size_t i = 0; i < l.order_by.size(); ++i) sql += (i ? ", " : "") + quote(l.order_by[i]);
  return sql + ")";
}

}  // namespace clickpipe::clickhouse
