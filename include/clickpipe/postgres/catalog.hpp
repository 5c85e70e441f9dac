// What PostgreSQL must offer a pipe, and the definitions of its tables.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "clickpipe/postgres/connection.hpp"
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

// Checks wal_level = logical, the user's REPLICATION attribute (or superuser), and that each
// table exists and has a primary key or REPLICA IDENTITY FULL. Throws PreflightError.
void preflight(Connection& conn, std::span<const TableRef> tables);

// Columns in order with type name, OID, typmod, nullability and array dimensions, and the primary
// key columns in key order (empty for a REPLICA IDENTITY FULL table without one).
std::vector<TableDefinition> read_definitions(Connection& conn, std::span<const TableRef> tables);

// "schema"."name", quoted for this connection.
std::string qualified(const Connection& conn, const TableRef& table);

}  // namespace clickpipe::postgres
