#include "clickpipe/postgres/catalog.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>

namespace clickpipe::postgres {

PreflightError::PreflightError(std::vector<std::string> problems)
    : FatalError(
          fmt::format("PostgreSQL is not ready for this pipe: {}", fmt::join(problems, "; "))),
      problems_(std::move(problems)) {}

std::string qualified(const Connection& conn, const TableRef& t) {
  return conn.identifier(t.schema) + "." + conn.identifier(t.name);
}

std::uint32_t relation_oid(Connection& conn, const TableRef& table) {
  Result r = conn.exec("SELECT coalesce(to_regclass($1)::oid, 0)", {qualified(conn, table)});
  std::uint32_t oid = 0;
  const auto text = r.value(0, 0);
  std::from_chars(text.data(), text.data() + text.size(), oid);
  return oid;
}

std::optional<std::string> relation_name(Connection& conn, std::uint32_t oid) {
  Result r = conn.exec(
      "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON "
      "n.oid = c.relnamespace WHERE c.oid = $1::oid",
      {std::to_string(oid)});
  if (r.rows() != 1) return std::nullopt;
  return std::string(r.value(0, 0));
}

void preflight(Connection& conn, std::span<const TableRef> tables) {
  std::vector<std::string> problems;
  if (conn.server_version() < 130000) {
    // pg_partition_tree, publish_via_partition_root and attgenerated.
    problems.push_back("PostgreSQL " + std::to_string(conn.server_version() / 10000) +
                       " is too old: the pipe needs PostgreSQL 13 or later");
    throw PreflightError(std::move(problems));
  }
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
    // The table and, for a partitioned one, each leaf partition (its changes are published
    // with the leaf's own replica identity).
    Result r = conn.exec(
        "SELECT c.relkind, c.relreplident, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = "
        "c.oid AND i.indisprimary), format('%I.%I', n.nspname, c.relname), c.oid = "
        "to_regclass($1), "
        "EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND "
        "a.attnum = ANY (i.indkey) WHERE i.indrelid = c.oid AND i.indisprimary AND "
        "a.attgenerated <> '') "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = "
        "to_regclass($1) OR c.oid IN (SELECT relid FROM pg_partition_tree(to_regclass($1)) WHERE "
        "isleaf) ORDER BY 5 DESC, 4",
        {qualified(conn, t)});
    if (r.rows() == 0) {
      problems.push_back("table " + t.qualified() + " does not exist");
      continue;
    }
    const std::string kind(r.value(0, 0));
    if (kind != "r" && kind != "p") {
      problems.push_back(t.qualified() + " is not a table");
      continue;
    }
    if (r.value(0, 2) != "t") {
      // ClickHouse orders and deduplicates rows by the key, and updates and deletes find their
      // row by it: without one, neither works.
      problems.push_back("table " + t.qualified() +
                         " has no primary key, which the pipe needs to order, update and delete "
                         "rows in ClickHouse (add one: ALTER TABLE ... ADD PRIMARY KEY (...))");
      continue;
    }
    if (r.value(0, 5) == "t") {
      problems.push_back("table " + t.qualified() +
                         " has a generated column in its primary key; PostgreSQL does not publish "
                         "generated columns, so its changes could not be keyed");
      continue;
    }
    for (int i = 0; i < r.rows(); ++i) {
      const std::string what =
          i == 0 ? "table " + t.qualified()
                 : "partition " + std::string(r.value(i, 3)) + " of " + t.qualified();
      const std::string_view identity = r.value(i, 1);
      if (identity == "n") {
        problems.push_back(what +
                           " has REPLICA IDENTITY NOTHING: its UPDATEs and DELETEs fail once it "
                           "is published (ALTER TABLE ... REPLICA IDENTITY DEFAULT)");
      } else if (identity == "i") {
        problems.push_back(
            what +
            " has REPLICA IDENTITY USING INDEX: deletes would carry that index's "
            "columns, not the primary key (ALTER TABLE ... REPLICA IDENTITY DEFAULT)");
      }
    }
  }
  if (!problems.empty()) throw PreflightError(std::move(problems));
}

std::vector<CatalogColumn> catalog_columns(Connection& conn, std::uint32_t relation_oid) {
  Result r = conn.exec(
      "SELECT a.attnum, a.attname, coalesce(t.typname, ''), a.atttypid, a.atttypmod, "
      "CASE WHEN t.typcategory = 'A' THEN greatest(a.attndims, 1) ELSE 0 END, a.attisdropped, "
      "a.attgenerated <> '', EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND "
      "i.indisprimary AND a.attnum = ANY (i.indkey)) FROM pg_attribute a LEFT JOIN pg_type t ON "
      "t.oid = a.atttypid WHERE a.attrelid = $1::oid AND a.attnum > 0 ORDER BY a.attnum",
      {std::to_string(relation_oid)});
  std::vector<CatalogColumn> out;
  for (int i = 0; i < r.rows(); ++i) {
    CatalogColumn c;
    auto num = [&](int col, auto& v) {
      auto s = r.value(i, col);
      std::from_chars(s.data(), s.data() + s.size(), v);
    };
    num(0, c.attnum);
    c.name = std::string(r.value(i, 1));
    c.type = std::string(r.value(i, 2));
    num(3, c.type_oid);
    num(4, c.type_modifier);
    num(5, c.array_dimensions);
    c.dropped = r.value(i, 6) == "t";
    c.generated = r.value(i, 7) == "t";
    c.key = r.value(i, 8) == "t";
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<TableRef> leaf_partitions(Connection& conn, const TableRef& table) {
  Result r = conn.exec(
      "SELECT n.nspname, c.relname FROM pg_partition_tree(to_regclass($1)) p JOIN pg_class c ON "
      "c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.isleaf AND p.relid "
      "<> to_regclass($1) ORDER BY 1, 2",
      {qualified(conn, table)});
  std::vector<TableRef> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back(TableRef{std::string(r.value(i, 0)), std::string(r.value(i, 1))});
  }
  return out;
}

std::optional<std::vector<TableRef>> leaf_partitions(Connection& conn, std::uint32_t oid) {
  // One query: no row when the relation is gone, one row of NULLs when it has no leaves.
  Result r = conn.exec(
      "SELECT n.nspname, c.relname FROM pg_class r LEFT JOIN LATERAL (SELECT relid FROM "
      "pg_partition_tree(r.oid) WHERE isleaf AND relid <> r.oid) p ON true LEFT JOIN pg_class c "
      "ON c.oid = p.relid LEFT JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.oid = "
      "$1::oid ORDER BY 1, 2",
      {std::to_string(oid)});
  if (r.rows() == 0) return std::nullopt;
  std::vector<TableRef> out;
  for (int i = 0; i < r.rows(); ++i) {
    if (r.is_null(i, 0)) continue;
    out.push_back(TableRef{std::string(r.value(i, 0)), std::string(r.value(i, 1))});
  }
  return out;
}

std::vector<TableDefinition> read_definitions(Connection& conn, std::span<const TableRef> tables) {
  std::vector<TableDefinition> out;
  for (const TableRef& t : tables) {
    const std::string name = qualified(conn, t);
    Result cols = conn.exec(
        "SELECT a.attname, t.typname, a.atttypid, a.atttypmod, NOT a.attnotnull, "
        "CASE WHEN t.typcategory = 'A' THEN greatest(a.attndims, 1) ELSE 0 END, a.attnum, "
        "a.attrelid "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped "
        "AND a.attgenerated = '' ORDER BY a.attnum",
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
      num(6, c.attnum);
      if (i == 0) num(7, def.oid);
      def.columns.push_back(std::move(c));
    }
    Result pk = conn.exec(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND "
        "a.attnum = ANY (i.indkey) WHERE i.indrelid = to_regclass($1) AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)",
        {name});
    for (int i = 0; i < pk.rows(); ++i) def.primary_key.emplace_back(pk.value(i, 0));
    def.leaves = leaf_partitions(conn, t);
    out.push_back(std::move(def));
  }
  return out;
}

}  // namespace clickpipe::postgres
