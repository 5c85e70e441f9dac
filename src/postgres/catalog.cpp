#include "clickpipe/postgres/catalog.hpp"

#include <charconv>

namespace clickpipe::postgres {

namespace {
std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : "; ") + s;
  return out;
}
}  // namespace

PreflightError::PreflightError(std::vector<std::string> problems)
    : FatalError("PostgreSQL is not ready for this pipe: " + join(problems)),
      problems_(std::move(problems)) {}

std::string qualified(const Connection& conn, const TableRef& t) {
  return conn.identifier(t.schema) + "." + conn.identifier(t.name);
}

void preflight(Connection& conn, std::span<const TableRef> tables) {
  std::vector<std::string> problems;
  Result wal = conn.exec("SHOW wal_level");
  if (wal.value(0, 0) != "logical") {
    problems.push_back("wal_level is '" + std::string(wal.value(0, 0)) +
                       "'; set wal_level = logical and restart the server");
  }
  Result role =
      conn.exec("SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user");
  if (role.rows() != 1 || role.value(0, 0) != "t") {
    problems.push_back("the user lacks the REPLICATION attribute (ALTER ROLE ... REPLICATION)");
  }
  for (const TableRef& t : tables) {
    Result r = conn.exec(
        "SELECT c.relreplident, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND "
        "i.indisprimary), c.relkind FROM pg_class c WHERE c.oid = to_regclass($1)",
        {qualified(conn, t)});
    if (r.rows() == 0) {
      problems.push_back("table " + t.qualified() + " does not exist");
    } else if (r.value(0, 1) != "t" && r.value(0, 0) != "f") {
      problems.push_back("table " + t.qualified() +
                         " has no primary key (add one, or ALTER TABLE ... REPLICA IDENTITY FULL)");
    } else if (r.value(0, 2) != "r" && r.value(0, 2) != "p") {
      problems.push_back(t.qualified() + " is not a table");
    }
  }
  if (!problems.empty()) throw PreflightError(std::move(problems));
}

std::vector<TableDefinition> read_definitions(Connection& conn, std::span<const TableRef> tables) {
  std::vector<TableDefinition> out;
  for (const TableRef& t : tables) {
    const std::string name = qualified(conn, t);
    Result cols = conn.exec(
        "SELECT a.attname, t.typname, a.atttypid, a.atttypmod, NOT a.attnotnull, "
        "CASE WHEN t.typcategory = 'A' THEN greatest(a.attndims, 1) ELSE 0 END "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        {name});
    if (cols.rows() == 0) throw PgFatalError("table " + t.qualified() + " does not exist", "42P01");
    TableDefinition def;
    def.table = t;
    for (int i = 0; i < cols.rows(); ++i) {
      Column c;
      c.name = std::string(cols.value(i, 0));
      c.type = std::string(cols.value(i, 1));
      auto num = [&](int col, auto& v) {
        auto s = cols.value(i, col);
        std::from_chars(s.data(), s.data() + s.size(), v);
      };
      num(2, c.type_oid);
      num(3, c.type_modifier);
      c.nullable = cols.value(i, 4) == "t";
      num(5, c.array_dimensions);
      def.columns.push_back(std::move(c));
    }
    Result pk = conn.exec(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND "
        "a.attnum = ANY (i.indkey) WHERE i.indrelid = to_regclass($1) AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)",
        {name});
    for (int i = 0; i < pk.rows(); ++i) def.primary_key.emplace_back(pk.value(i, 0));
    out.push_back(std::move(def));
  }
  return out;
}

}  // namespace clickpipe::postgres
