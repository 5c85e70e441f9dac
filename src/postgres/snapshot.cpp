#include "clickpipe/postgres/snapshot.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "clickpipe/error.hpp"
#include "clickpipe/postgres/catalog.hpp"

namespace clickpipe::postgres {

namespace {

// Splits one relation with storage into ctid block ranges (appended to `out`).
void plan_relation(Connection& conn, const TableRef& rel, const TableRef& leaf,
                   std::uint64_t rows_per_partition, std::uint64_t max_partitions,
                   std::vector<Partition>& out) {
  Result r = conn.exec(
      "SELECT c.relkind, c.relpages, c.reltuples FROM pg_class c WHERE c.oid = to_regclass($1)",
      {qualified(conn, rel)});
  if (r.rows() == 0) throw PgFatalError("table " + rel.qualified() + " does not exist", "42P01");
  const std::string kind(r.value(0, 0));
  std::int64_t pages = 0;
  double tuples = -1;
  {
    auto p = r.value(0, 1);
    std::from_chars(p.data(), p.data() + p.size(), pages);
    tuples = std::stod(std::string(r.value(0, 2)));
  }
  auto add = [&](std::string begin, std::string end, std::uint64_t rows) {
    Partition p;
    p.index = static_cast<std::uint32_t>(out.size());
    p.begin = std::move(begin);
    p.end = std::move(end);
    p.estimated_rows = rows;
    p.leaf = leaf;
    out.push_back(std::move(p));
  };
  if (kind != "r" || pages <= 0 || tuples <= 0) {
    add("", "", tuples > 0 ? static_cast<std::uint64_t>(tuples) : 0);
    return;
  }
  rows_per_partition = std::max<std::uint64_t>(1, rows_per_partition);
  std::uint64_t parts = static_cast<std::uint64_t>(std::ceil(tuples / double(rows_per_partition)));
  parts = std::clamp<std::uint64_t>(parts, 1, std::max<std::uint64_t>(1, max_partitions));
  parts = std::min<std::uint64_t>(parts, static_cast<std::uint64_t>(pages));
  const std::uint64_t blocks = (static_cast<std::uint64_t>(pages) + parts - 1) / parts;
  const std::size_t first = out.size();
  for (std::uint64_t i = 0; i < parts; ++i) {
    const std::uint64_t b0 = i * blocks;
    if (b0 >= static_cast<std::uint64_t>(pages) && i > 0) break;
    add(i == 0 ? "" : std::to_string(b0), std::to_string(b0 + blocks),
        static_cast<std::uint64_t>(tuples / double(parts)));
  }
  if (out.size() > first) out.back().end.clear();
}

// A partition bound: empty (open) or a block number, 1 to 10 decimal digits (a uint32). The
// message does not repeat it: it is not what the pipe wrote.
void check_block_number(const std::string& bound, const char* field, const std::string& table,
                        std::uint32_t index) {
  if (bound.empty()) return;
  const bool digits = bound.size() <= 10 && std::all_of(bound.begin(), bound.end(), [](char c) {
                        return c >= '0' && c <= '9';
                      });
  if (!digits) {
    throw InvalidField(field, "partition " + std::to_string(index) + " of " + table +
                                  " has a bound that is not a block number (1 to 10 digits); "
                                  "resync the table to plan it again");
  }
}

}  // namespace

std::vector<Partition> plan_partitions(Connection& conn, const TableDefinition& table,
                                       std::uint64_t rows_per_partition,
                                       std::uint64_t max_partitions) {
  std::vector<Partition> out;
  // A partitioned table has no storage of its own: each leaf is planned (and copied) alone,
  // sharing the partition budget. The leaves are read now, not from the definition, so that a
  // partition attached since Setup is copied too.
  const std::vector<TableRef> leaves = leaf_partitions(conn, table.table);
  if (leaves.empty()) {
    plan_relation(conn, table.table, TableRef{"", ""}, rows_per_partition, max_partitions, out);
    return out;
  }
  const std::uint64_t per_leaf = std::max<std::uint64_t>(1, max_partitions / leaves.size());
  for (const TableRef& leaf : leaves) {
    plan_relation(conn, leaf, leaf, rows_per_partition, per_leaf, out);
  }
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

std::string export_snapshot(Connection& conn) {
  conn.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  return std::string(conn.exec("SELECT pg_export_snapshot()").value(0, 0));
}

CopyOut::CopyOut(Connection& conn, const TableDefinition& table, const Partition& partition,
                 const std::string& snapshot)
    : conn_(conn), what_(table.table.qualified()) {
  // The bounds are pasted into the ctid predicate below. They come from the plan in the store,
  // which validates them too; a bound that is not a block number is refused here all the same,
  // before anything runs, rather than trusted as SQL.
  check_block_number(partition.begin, "partition.begin", what_, partition.index);
  check_block_number(partition.end, "partition.end", what_, partition.index);
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
  const TableRef& from = partition.leaf.name.empty() ? table.table : partition.leaf;
  conn.exec("COPY (SELECT " + cols + " FROM " + qualified(conn, from) +
            (where.empty() ? "" : " WHERE " + where) + ") TO STDOUT");
}

CopyOut::~CopyOut() {
  release();
  if (!done_) {
    // Abandoned half-way: cancel the COPY and leave the connection usable.
    PQrequestCancel(conn_.raw());
    char* buf = nullptr;
    while (PQgetCopyData(conn_.raw(), &buf, 0) >= 0) PQfreemem(buf);
    while (PGresult* r = PQgetResult(conn_.raw())) PQclear(r);
    try {
      conn_.exec("ROLLBACK");
    } catch (const Error&) {  // the connection is closed by its owner anyway
    }
  }
}

void CopyOut::release() {
  if (buf_) PQfreemem(buf_);
  buf_ = nullptr;
}

std::optional<std::string_view> CopyOut::next() {
  release();
  if (done_) return std::nullopt;
  const int n = PQgetCopyData(conn_.raw(), &buf_, 0);
  if (n >= 0) {
    ++rows_;
    std::string_view line(buf_, static_cast<std::size_t>(n));
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    return line;
  }
  done_ = true;
  if (n == -2) throw_pg_error("COPY of " + what_ + " failed: " + conn_.error_message(), "");
  Result end(PQgetResult(conn_.raw()));
  if (PQresultStatus(end.raw()) != PGRES_COMMAND_OK) {
    const char* state = PQresultErrorField(end.raw(), PG_DIAG_SQLSTATE);
    const std::string sqlstate = state ? state : "";
    while (PGresult* more = PQgetResult(conn_.raw())) PQclear(more);
    conn_.exec("ROLLBACK");
    throw_pg_error("COPY of " + what_ + " failed: " + conn_.error_message(), sqlstate);
  }
  while (PGresult* more = PQgetResult(conn_.raw())) PQclear(more);
  conn_.exec("COMMIT");
  return std::nullopt;
}

std::uint64_t copy_partition(Connection& conn, const TableDefinition& table,
                             const Partition& partition, const std::string& snapshot,
                             const RowBatchSink& sink, std::size_t batch_rows,
                             const std::function<bool()>& stopped) {
  CopyOut copy(conn, table, partition, snapshot);
  std::vector<Values> batch;
  batch.reserve(batch_rows);
  while (auto line = copy.next()) {
    batch.push_back(decode_copy_line(*line, table.columns.size()));
    if (batch.size() >= batch_rows) {
      sink(std::move(batch));
      batch.clear();
      if (stopped && stopped()) throw Cancelled();  // the rest of the COPY is abandoned
    }
  }
  if (!batch.empty()) sink(std::move(batch));
  return copy.rows();
}

}  // namespace clickpipe::postgres
