// Follows the pipe's table definitions through the change stream. Each Relation message is compared
// with the definition the pipe holds, by relation OID, column attnum, name and type, never by
// position: an added column is appended, a dropped one kept (it gets NULL from then on), and
// anything else (a rename, a new type, a new key, a table renamed or created again) stops that
// table instead of mapping values to the wrong columns.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "clickpipe/change.hpp"
#include "clickpipe/postgres/pgoutput.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe::postgres {

// A column as the catalog has it now (pg_attribute), dropped ones included.
struct CatalogColumn {
  std::int32_t attnum = 0;
  std::string name;
  std::string type;  // typname; empty for a dropped column
  std::uint32_t type_oid = 0;
  std::int32_t type_modifier = -1;
  int array_dimensions = 0;
  bool dropped = false;
  bool generated = false;
  bool key = false;  // part of the primary key
};
// The catalog's columns of a relation, asked only when a Relation message differs from what is
// held (so rarely). May throw (a lost connection is a TransientError).
using CatalogLookup = std::function<std::vector<CatalogColumn>(std::uint32_t relation_oid)>;

// Not thread-safe: driven by the thread that decodes the stream.
class SchemaTracker {
 public:
  SchemaTracker(std::span<const TableDefinition> tables, CatalogLookup lookup);

  // What a Relation message changes; empty when nothing did or the relation is not the pipe's.
  std::vector<SchemaChange> on_relation(const pgoutput::Relation& rel);

  // A row of relation `id` (in the order of its last Relation message) in the order of the pipe's
  // definition, with NULL in dropped columns; nullopt when the relation is not the pipe's, or its
  // table stopped.
  struct Row {
    const TableRef* table = nullptr;
    Values values;
  };
  std::optional<Row> map(std::uint32_t id, Values row) const;
  // The pipe's table for relation `id`, or nullptr (not the pipe's, or stopped).
  const TableRef* table(std::uint32_t id) const;

  std::vector<TableDefinition> definitions() const;

 private:
  struct Held {
    TableDefinition def;
    std::vector<std::size_t> index;  // relation column -> definition column
    bool described = false;
    bool stopped = false;
  };
  Held* find(std::uint32_t id);
  const Held* find(std::uint32_t id) const;
  std::vector<SchemaChange> compare(Held& h, const pgoutput::Relation& rel);

  std::vector<Held> held_;
  std::map<std::uint32_t, std::size_t> by_oid_;  // into held_: looked up for every row
  CatalogLookup lookup_;
};

}  // namespace clickpipe::postgres
