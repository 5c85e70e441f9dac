// Source tables: how a pipe names them and what Setup records about them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace clickpipe {

// A source table, "schema.name". Names are kept exactly as written (no case folding); any
// quoting happens where SQL is generated.
struct TableRef {
  std::string schema = "public";
  std::string name;

  std::string qualified() const { return schema + "." + name; }
  friend auto operator<=>(const TableRef&, const TableRef&) = default;
};

struct Column {
  std::string name;
  std::string type;                 // the source's type name, e.g. "numeric", "text", "_int4"
  std::uint32_t type_oid = 0;       // PostgreSQL type OID; 0 where the source has none
  std::int32_t type_modifier = -1;  // typmod: numeric precision/scale, varchar length; -1 none
  bool nullable = true;
  int array_dimensions = 0;
  std::int32_t attnum = 0;  // the source's column number (pg_attribute.attnum); 0 where unknown
  // Dropped at the source while the pipe ran: the destination keeps the column, and new rows get
  // NULL (or the type's default) in it.
  bool dropped = false;

  friend bool operator==(const Column&, const Column&) = default;
};

struct TableDefinition {
  TableRef table;
  std::vector<Column> columns;           // in the source's order
  std::vector<std::string> primary_key;  // column names, in key order
  // The source's identity for the table (PostgreSQL: its pg_class OID), which survives a rename;
  // 0 where unknown (records written before it was kept).
  std::uint32_t oid = 0;
  // A partitioned table's leaf partitions, each copied on its own; empty for a plain table.
  std::vector<TableRef> leaves = {};

  friend bool operator==(const TableDefinition&, const TableDefinition&) = default;
};

}  // namespace clickpipe
