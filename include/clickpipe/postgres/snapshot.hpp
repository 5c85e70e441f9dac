// The initial load from PostgreSQL: ctid block-range partitions read with COPY under a snapshot.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clickpipe/change.hpp"
#include "clickpipe/postgres/connection.hpp"
#include "clickpipe/slot.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe::postgres {

// Splits a table into block ranges of about `rows_per_partition` rows, from the planner's
// estimate (pg_class.reltuples/relpages), at most `max_partitions` (partitions grow instead).
// Bounds are block numbers ("" = open); the last partition is open-ended, so rows in blocks added
// since planning are read too. A table that cannot be split by ctid (partitioned, never analyzed,
// empty) is one partition with no bounds.
std::vector<Partition> plan_partitions(Connection& conn, const TableDefinition& table,
                                       std::uint64_t rows_per_partition,
                                       std::uint64_t max_partitions);

// Begins a REPEATABLE READ READ ONLY transaction on `conn` and exports its snapshot: the name
// other connections read under (CopyOut) while `conn` stays open and idle in that transaction.
std::string export_snapshot(Connection& conn);

// Thrown when the exported snapshot is gone (its exporting connection closed, e.g. after a
// restart): the caller reads from a fresh snapshot instead, which is correct because CDC replays
// everything after the slot's consistent point.
class SnapshotGone : public TransientError {
 public:
  using TransientError::TransientError;
};

// One partition's rows as COPY text lines, pulled one at a time: begins a REPEATABLE READ
// transaction (under `snapshot` when given; throws SnapshotGone when it is gone) and starts
// COPY ... TO STDOUT. Lines keep PostgreSQL's escaping, which is ClickHouse's TabSeparated
// escaping too, so most values can pass through untouched. Destroying it before the end cancels
// the COPY. Not thread-safe.
class CopyOut {
 public:
  CopyOut(Connection& conn, const TableDefinition& table, const Partition& partition,
          const std::string& snapshot);
  ~CopyOut();
  CopyOut(const CopyOut&) = delete;
  CopyOut& operator=(const CopyOut&) = delete;
  // The next line without its newline, valid until the next call; nullopt after the last one
  // (the transaction is committed then). Throws a classified PostgreSQL error.
  std::optional<std::string_view> next();
  std::uint64_t rows() const noexcept { return rows_; }

 private:
  void release();
  Connection& conn_;
  std::string what_;
  char* buf_ = nullptr;
  std::uint64_t rows_ = 0;
  bool done_ = false;
};

using RowBatchSink = std::function<void(std::vector<Values>&& rows)>;

// Reads one partition with COPY ... TO STDOUT (text) inside a REPEATABLE READ transaction, under
// `snapshot` when given, handing rows to `sink` in batches of `batch_rows`. Returns rows read.
std::uint64_t copy_partition(Connection& conn, const TableDefinition& table,
                             const Partition& partition, const std::string& snapshot,
                             const RowBatchSink& sink, std::size_t batch_rows = 10000,
                             const std::function<bool()>& stopped = {});

// Decodes one line of COPY text format (no trailing newline) into values: \N is NULL, backslash
// escapes are undone. Throws FatalError on malformed input.
Values decode_copy_line(std::string_view line, std::size_t expected_columns);

}  // namespace clickpipe::postgres
