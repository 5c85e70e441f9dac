// What PostgreSQL must offer a pipe, and the definitions of its tables.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "clickpipe/postgres/connection.hpp"
#include "clickpipe/postgres/schema_tracker.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe::postgres {

// Every problem found, at once, so a user fixes them in one go.
class PreflightError : public FatalError {
 public:
  explicit PreflightError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const noexcept { return problems_; }

 private:
  std::vector<std::string> problems_;
};

// Checks PostgreSQL 13 or later, wal_level = logical, the user's REPLICATION attribute (or
// superuser), and that each
// table exists, is a table (plain or partitioned), has a primary key (no generated column in it),
// and publishes its changes with REPLICA IDENTITY DEFAULT or FULL (it and every leaf partition;
// USING INDEX and NOTHING are refused). Throws PreflightError listing every problem.
void preflight(Connection& conn, std::span<const TableRef> tables);

// Columns in order with type name, OID, typmod, nullability, array dimensions and attnum, the
// primary key columns in key order, the table's OID and, for a partitioned table, its leaf
// partitions. Generated columns are left out: PostgreSQL before 18 does not publish them, so
// leaving them out of the snapshot too keeps both paths alike.
std::vector<TableDefinition> read_definitions(Connection& conn, std::span<const TableRef> tables);

// A relation's columns as the catalog has them now, dropped ones included (for SchemaTracker).
std::vector<CatalogColumn> catalog_columns(Connection& conn, std::uint32_t relation_oid);

// A partitioned table's leaf partitions, sorted; empty for a plain table.
std::vector<TableRef> leaf_partitions(Connection& conn, const TableRef& table);
// The same by relation OID; nullopt when no relation has it any more.
std::optional<std::vector<TableRef>> leaf_partitions(Connection& conn, std::uint32_t oid);

// "schema"."name", quoted for this connection.
std::string qualified(const Connection& conn, const TableRef& table);

// The OID of the relation `table` names now; 0 when no relation has that name.
std::uint32_t relation_oid(Connection& conn, const TableRef& table);
// The relation with `oid` under its current name, quoted where needed ("schema".name); nullopt
// when no relation has that OID any more.
std::optional<std::string> relation_name(Connection& conn, std::uint32_t oid);

}  // namespace clickpipe::postgres
