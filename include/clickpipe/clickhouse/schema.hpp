// ClickHouse tables for PostgreSQL tables: names, types, DDL, versioned writes, FINAL reads and the
// resync swap. Values travel in TabSeparated bodies, never spliced into SQL text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clickpipe/change.hpp"
#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe::clickhouse {

// `name` in backquotes, with backquotes and backslashes escaped. Throws InvalidField for empty
// names and invalid UTF-8.
std::string quote(std::string_view name);
bool valid_utf8(std::string_view text) noexcept;

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

// CREATE TABLE IF NOT EXISTS with ReplacingMergeTree(_version[, _is_deleted]) ordered by the key.
std::string create_table_sql(const TableLayout& layout, const std::string& database);

// One non-NULL source text value as the column's TabSeparated text (what an insert sends).
std::string convert_value(const MappedColumn& column, std::string_view source_text);

// One row to write: values in source text form, its version, and whether it deletes the key.
struct Row {
  Values values;
  std::uint64_t version = 0;
  bool deleted = false;
};

// The TabSeparated body for `rows` (with _version, _is_deleted, _synced_at).
std::string encode_rows(const TableLayout& layout, const std::vector<Row>& rows,
                        std::uint32_t synced_at_epoch_seconds);
// Inserts in one request; returns the number of rows sent. Re-sending the same rows after an
// unknown outcome leaves the FINAL view as it is (same versions).
std::uint64_t insert(Client& client, const TableLayout& layout, const std::vector<Row>& rows);

// What ClickHouse holds for the keys of some rows just written: `keys` distinct keys were
// written; `landed` of them are held at the newest version written for them or a newer one
// (deleted keys included: their deletion is a row too). A destination that answered an insert
// with success but kept fewer rows shows up as landed < keys. (ClickHouse 18.16 reports no
// written-row count for an HTTP insert, so the rows are counted back; the keys travel as external
// data, never spliced into SQL.) A count-back query the server refuses is a bug in clickpipe:
// ClickHouseFatalError naming the query; a transient failure is rethrown as it is. Either way the
// rows stay unconfirmed and are written again when the pipe retries.
struct Reconciliation {
  std::uint64_t keys = 0;
  std::uint64_t landed = 0;
  bool complete() const noexcept { return landed == keys; }
};
Reconciliation reconcile(Client& client, const TableLayout& layout, const std::vector<Row>& rows);

// Rows in PostgreSQL's COPY text format turned into this layout's TabSeparated rows, all at one
// version and not deleted (the initial load). Values that need no conversion pass through byte
// for byte: COPY's text escaping is TabSeparated's. The others are decoded and converted as
// encode_rows() does. Keeps the keys of the rows added since the last reconcile(); the rows of
// one COPY have distinct keys. Not thread-safe.
class CopyTextEncoder {
 public:
  // Without `keep_keys`, reconcile() is not available and no keys are kept.
  CopyTextEncoder(TableLayout layout, std::uint64_t version, bool keep_keys = true);
  // Appends `line`'s row to `out`. Throws InvalidField when the field count is wrong.
  void add(std::string_view line, std::string& out);
  // Counts back the rows added since the last call (as reconcile() does) and forgets them.
  Reconciliation reconcile(Client& client);
  // "INSERT INTO db.table (columns..., _version, _is_deleted, _synced_at)", for
  // Client::insert_streamed.
  std::string insert_sql(const std::string& database) const;

 private:
  TableLayout layout_;
  std::vector<std::size_t> key_at_;  // the key columns, in key order
  std::vector<bool> key_;            // per column: part of the key
  std::string tail_;                 // "\t<version>\t0\t<synced_at>\n"
  std::string version_;
  std::string keys_;  // TabSeparated: key columns, then the version
  std::uint64_t key_rows_ = 0;
  bool keep_keys_;
  std::string field_;
};

// The rows of an insert that ClickHouse accepted are not all there. Transient: sending the batch
// again is safe (same versions), and a destination that keeps dropping rows keeps the pipe from
// confirming anything past them.
class RowsMissing : public TransientError {
 public:
  RowsMissing(const std::string& table, Reconciliation r);
  const Reconciliation& reconciliation() const noexcept { return reconciliation_; }

 private:
  Reconciliation reconciliation_;
};

// insert() then reconcile(); throws RowsMissing when rows are missing.
std::uint64_t insert_reconciled(Client& client, const TableLayout& layout,
                                const std::vector<Row>& rows);

// A TabSeparated answer as rows of fields, unescaped; nullopt for \N.
std::vector<std::vector<std::optional<std::string>>> parse_tab_separated(std::string_view body);

// The table as ClickHouse's FINAL view shows it, without deleted rows, ordered by the key: each
// row's columns as ClickHouse prints them (TabSeparated, unescaped; nullopt for NULL).
std::vector<std::vector<std::optional<std::string>>> read_final(Client& client,
                                                                const TableLayout& layout);

bool table_exists(Client& client, const std::string& name);

// Marks every row of the table deleted at `version` (a TRUNCATE at the source): later rows of a
// higher or, inserted after, equal version show again.
void delete_all(Client& client, const TableLayout& layout, std::uint64_t version);
// ALTER TABLE ... ADD COLUMN for each of the layout's columns the table lacks (appended: columns
// added at the source); returns their names. Safe to run again.
std::vector<std::string> add_missing_columns(Client& client, const TableLayout& layout);
// Creates `<name>_resync` empty (replacing what an interrupted resync left).
void create_resync_table(Client& client, const TableLayout& layout);
// Swaps `<name>_resync` in for `<name>` in one RENAME, then drops the old copy. Safe to run again
// after a crash at any step.
void swap_resync(Client& client, const std::string& name);

}  // namespace clickpipe::clickhouse
