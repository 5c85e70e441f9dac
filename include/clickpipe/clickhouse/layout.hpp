// The ClickHouse table for a PostgreSQL table: column types, conversions and the DDL, decided by
// the server's version (docs/type-mapping.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "clickpipe/clickhouse/features.hpp"
#include "clickpipe/clickhouse/quote.hpp"
#include "clickpipe/error.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe::clickhouse {

// How a PostgreSQL text value becomes a ClickHouse TabSeparated value. The source text is what a
// session with the pinned settings prints (postgres::pinned_options: ISO dates, UTC, hex bytea);
// conversions still read any offset and either bytea output rather than trust a server default.
enum class Conversion : std::uint8_t {
  Verbatim,   // integers, strings, uuid, json, unconstrained numeric
  Float,      // NaN/Infinity spelled ClickHouse's way
  Decimal,    // numeric(p, s); NaN and infinities, which Decimal cannot hold, become NULL (or 0)
  Boolean,    // t/f -> 1/0
  Bytea,      // \x hex (or escape format) -> the bytes
  Timestamp,  // "2024-01-02 03:04:05.123+05:30" -> "2024-01-01 21:34:05.123000" (UTC)
  Date,       // "2024-01-02"
  Array,      // {a,"b c",NULL} -> ['a','b c',NULL]
};

struct MappedColumn {
  std::string name;  // the source column's name (quoted where used)
  std::string type;  // the ClickHouse type, e.g. Nullable(Decimal(12, 3))
  Conversion conversion = Conversion::Verbatim;
  Conversion element = Conversion::Verbatim;  // for arrays: of each element
  bool quoted_elements = false;               // for arrays: elements are strings
  bool nullable = false;
  // Part of the primary key: converted without loss or refused, never clamped or replaced (two
  // source keys must not become one).
  bool key = false;
  // Date32/DateTime64: values outside January 1 of the first year to December 31 of the last
  // (and infinities, BC) are clamped to the ends. False for String columns (older servers, key
  // columns), which keep the source's text.
  bool bounded = false;
  int years[2] = {0, 0};
};

// The columns clickpipe adds after the source's, in this order: a row's version, its delete mark
// and when it was written. With the engine they also mark a table as clickpipe's (tables.hpp).
struct BookkeepingColumn {
  std::string_view name;
  std::string_view type;
};
inline constexpr BookkeepingColumn kBookkeepingColumns[] = {
    {"_version", "UInt64"}, {"_is_deleted", "UInt8"}, {"_synced_at", "DateTime"}};

struct TableLayout {
  std::string name;  // the ClickHouse table name, unquoted
  std::vector<MappedColumn> columns;
  std::vector<std::string> order_by;  // primary key columns
  ServerVersion server;               // the types and the engine follow its Features
};

// The ClickHouse type of one column on a server of `version` (see docs/type-mapping.md).
MappedColumn map_column(const Column& column, ServerVersion version);

// The layout of the destination table `name` for `table`. Key columns of date and time types are
// String (the exact UTC text: clamping could merge two keys). Throws InvalidField for a table
// without a primary key, invalid UTF-8 names, or names that collide (with each other or with
// _version, _is_deleted, _synced_at).
TableLayout layout_for(const TableDefinition& table, const std::string& name,
                       ServerVersion version);

// CREATE TABLE with ReplacingMergeTree(_version[, _is_deleted]) ordered by the key. Not IF NOT
// EXISTS: a table already there is create_table()'s to judge, never adopted unseen.
std::string create_table_sql(const TableLayout& layout, const std::string& database);

}  // namespace clickpipe::clickhouse
