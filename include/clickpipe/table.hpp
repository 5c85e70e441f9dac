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

  friend bool operator==(const Column&, const Column&) = default;
};

struct TableDefinition {
  TableRef table;
  std::vector<Column> columns;           // in the source's order
  std::vector<std::string> primary_key;  // column names, in key order

  friend bool operator==(const TableDefinition&, const TableDefinition&) = default;
};

}  // namespace clickpipe
