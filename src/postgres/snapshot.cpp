#include "clickpipe/postgres/snapshot.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "clickpipe/executors/context.hpp"
#include "clickpipe/postgres/catalog.hpp"

namespace clickpipe::postgres {

std::vector<Partition> plan_partitions(Connection& conn, const TableDefinition& table,
                                       std::uint64_t rows_per_partition,
                                       std::uint64_t max_partitions) {
  Result r = conn.exec(
      "SELECT c.relkind, c.relpages, c.reltuples FROM pg_class c WHERE c.oid = to_regclass($1)",
      {qualified(conn, table.table)});
  if (r.rows() == 0)
    throw PgFatalError("table " + table.table.qualified() + " does not exist", "42P01");
  const std::string kind(r.value(0, 0));
  std::int64_t pages = 0;
  double tuples = -1;
  {
    auto p = r.value(0, 1);
    std::from_chars(p.data(), p.data() + p.size(), pages);
    tuples = std::stod(std::string(r.value(0, 2)));
  }
  if (kind != "r" || pages <= 0 || tuples <= 0) {
    return {Partition{0, "", "", tuples > 0 ? static_cast<std::uint64_t>(tuples) : 0}};
  }
  rows_per_partition = std::max<std::uint64_t>(1, rows_per_partition);
  std::uint64_t parts = static_cast<std::uint64_t>(std::ceil(tuples / double(rows_per_partition)));
  parts = std::clamp<std::uint64_t>(parts, 1, std::max<std::uint64_t>(1, max_partitions));
  parts = std::min<std::uint64_t>(parts, static_cast<std::uint64_t>(pages));
  const std::uint64_t blocks = (static_cast<std::uint64_t>(pages) + parts - 1) / parts;
  std::vector<Partition> out;
  for (std::uint64_t i = 0; i < parts; ++i) {
    const std::uint64_t b0 = i * blocks;
    if (b0 >= static_cast<std::uint64_t>(pages) && i > 0) break;
    Partition p;
    p.index = static_cast<std::uint32_t>(out.size());
    p.begin = i == 0 ? "" : std::to_string(b0);
    p.end = std::to_string(b0 + blocks);
    p.estimated_rows = static_cast<std::uint64_t>(tuples / double(parts));
    out.push_back(std::move(p));
  }
  out.back().end.clear();
  return out;
}

Values decode_copy_line(std::string_view line, std::size_t expected_columns) {
  Values out;
  out.reserve(expected_columns);
  std::string field;
  bool null = false;
  auto finish = [&] {
    out.push_back(null ? Datum::null() : Datum::of(std::move(field)));
    field.clear();
    null = false;
  };
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '\t') {
      finish();
      continue;
    }
    if (c != '\\') {
      field += c;
      continue;
    }
    if (++i >= line.size()) throw FatalError("COPY data: a backslash ends the line");
    const char e = line[i];
    switch (e) {
      case 'N':
        if (!field.empty()) throw FatalError("COPY data: \\N inside a value");
        null = true;
        break;
      case 'b': field += '\b'; break;
      case 'f': field += '\f'; break;
      case 'n': field += '\n'; break;
      case 'r': field += '\r'; break;
      case 't': field += '\t'; break;
      case 'v': field += '\v'; break;
      case 'x': {
        int v = 0, n = 0;
        while (n < 2 && i + 1 < line.size() &&
               std::isxdigit(static_cast<unsigned char>(line[i + 1]))) {
          const char h = line[++i];
          v = v * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                                                                    : (std::tolower(h) - 'a' + 10));
          ++n;
        }
        if (n == 0) {
          field += 'x';
        } else {
          field += static_cast<char>(v);
        }
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          int v = e - '0', n = 1;
          while (n < 3 && i + 1 < line.size() && line[i + 1] >= '0' && line[i + 1] <= '7') {
            v = v * 8 + (line[++i] - '0');
            ++n;
          }
          field += static_cast<char>(v);
        } else {
          field += e;  // \\ and any other escaped character stand for themselves
        }
    }
  }
  finish();
  if (out.size() != expected_columns) {
    throw FatalError("COPY data: expected " + std::to_string(expected_columns) + " columns, got " +
                     std::to_string(out.size()));
  }
  return out;
}

std::uint64_t copy_partition(Connection& conn, const TableDefinition& table,
                             const Partition& partition, const std::string& snapshot,
                             const RowBatchSink& sink, std::size_t batch_rows,
                             const std::function<bool()>& stopped) {
  conn.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  if (!snapshot.empty()) {
    try {
      conn.exec("SET TRANSACTION SNAPSHOT " + conn.literal(snapshot));
    } catch (const PgFatalError& e) {
      conn.exec("ROLLBACK");
      if (e.sqlstate() == "22023") throw SnapshotGone(e.what());  // invalid snapshot identifier
      throw;
    }
  }
  std::string cols;
  for (const auto& c : table.columns) cols += (cols.empty() ? "" : ", ") + conn.identifier(c.name);
  std::string where;
  if (!partition.begin.empty()) where += "ctid >= '(" + partition.begin + ",0)'::tid";
  if (!partition.end.empty()) {
    where += (where.empty() ? "" : " AND ") + ("ctid < '(" + partition.end + ",0)'::tid");
  }
  const std::string sql = "COPY (SELECT " + cols + " FROM " + qualified(conn, table.table) +
                          (where.empty() ? "" : " WHERE " + where) + ") TO STDOUT";
  conn.exec(sql);
  std::uint64_t rows = 0;
  std::vector<Values> batch;
  batch.reserve(batch_rows);
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(conn.raw(), &buf, 0);
    if (n == -1) break;
    if (n == -2) throw_pg_error("COPY failed: " + conn.error_message(), "");
    std::string_view line(buf, static_cast<std::size_t>(n));
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    try {
      batch.push_back(decode_copy_line(line, table.columns.size()));
    } catch (...) {
      PQfreemem(buf);
      throw;
    }
    PQfreemem(buf);
    ++rows;
    if (batch.size() >= batch_rows) {
      sink(std::move(batch));
      batch.clear();
      if (stopped && stopped()) {
        PQrequestCancel(conn.raw());  // the rest of the COPY is abandoned
      }
    }
  }
  Result end(PQgetResult(conn.raw()));
  if (PQresultStatus(end.raw()) != PGRES_COMMAND_OK) {
    const char* state = PQresultErrorField(end.raw(), PG_DIAG_SQLSTATE);
    while (PGresult* more = PQgetResult(conn.raw())) PQclear(more);
    conn.exec("ROLLBACK");
    if (stopped && stopped()) throw Cancelled();
    throw_pg_error("COPY of " + table.table.qualified() + " failed: " + conn.error_message(),
                   state ? state : "");
  }
  while (PGresult* more = PQgetResult(conn.raw())) PQclear(more);
  if (!batch.empty()) sink(std::move(batch));
  conn.exec("COMMIT");
  return rows;
}

}  // namespace clickpipe::postgres
