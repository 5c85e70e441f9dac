// The initial load: a consistent view, partitions, and copies of them in parallel.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "clickpipe/executors/exec_context.hpp"
#include "clickpipe/slot.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe {

// Contract for implementers:
// - begin, plan_partitions and end are called on the pipe's worker thread, one at a time.
//   copy_partition is called concurrently from up to tables_in_parallel x partitions_in_parallel
//   threads, for partitions of one or several tables: it must be thread-safe.
// - A partition counts as done when copy_partition returns: return only once the destination
//   has committed its rows. Copying a partition again (after a crash) must leave the same
//   destination contents (rows carry version 0, so duplicates collapse).
// - Errors: TransientError retries that partition (default 5 attempts), FatalError fails the
//   pipe. Cancellation: return or throw Cancelled soon after ctx.stop is requested.
class SnapshotCopier {
 public:
  virtual ~SnapshotCopier() = default;

  // Called as Snapshot begins. Opens a consistent view of `tables` for the copies that follow.
  // With `keep_slot` (pipes that go on to CDC), makes sure the replication slot exists and returns
  // it: a slot created now has its consistent point at the view; if it already existed (a restart,
  // a resync, added tables), the view is fresh, which is still correct because CDC replays every
  // change after the slot's position.
  virtual std::optional<SlotInfo> begin(std::span<const TableDefinition> tables, bool keep_slot,
                                        ExecContext& ctx) = 0;

  // Splits a table into partitions of about ctx.settings.rows_per_partition rows, at most
  // ctx.settings.max_partitions_per_table. Indexes are 0..n-1.
  virtual std::vector<Partition> plan_partitions(const TableDefinition& table,
                                                 ExecContext& ctx) = 0;

  // Copies one partition into `target`; returns the number of rows the destination committed.
  virtual std::uint64_t copy_partition(const TableDefinition& table, const Partition& partition,
                                       TableTarget target, ExecContext& ctx) = 0;

  // Releases the view when Snapshot ends (done, failed or stopped).
  virtual void end(ExecContext& ctx) { (void)ctx; }
};

}  // namespace clickpipe
