// Table definitions and destination tables: Setup, Modifying, Resync and Terminating.
#pragma once

#include <span>
#include <vector>

#include "clickpipe/executors/exec_context.hpp"
#include "clickpipe/slot.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe {

// Contract for implementers:
// - Called on a pipe's worker thread, one call at a time per pipe.
// - Every call is idempotent (IF NOT EXISTS, IF EXISTS): after a crash it runs again from the
//   start.
// - Errors: TransientError is retried (default 20 attempts), FatalError fails the pipe.
// - Cancellation: return or throw Cancelled soon after ctx.stop is requested.
class TableSetup {
 public:
  virtual ~TableSetup() = default;

  // Reads the source definitions of `tables` (columns in order, types, primary key) and checks
  // them (the table exists, has a primary key, ...). Result in the same order as `tables`.
  virtual std::vector<TableDefinition> read_definitions(std::span<const TableRef> tables,
                                                        ExecContext& ctx) = 0;

  // Makes `tables` part of the pipe at both ends: destination tables created (the `_resync`
  // copies for TableTarget::Resync, empty), source side prepared (e.g. publication membership).
  virtual void create_tables(std::span<const TableDefinition> tables, TableTarget target,
                             ExecContext& ctx) = 0;

  // Atomically swaps each table with its `_resync` copy, then drops the old data.
  virtual void swap_resync_tables(std::span<const TableDefinition> tables, ExecContext& ctx) = 0;

  // Takes `tables` out of the pipe (source side); destination tables are kept.
  virtual void remove_tables(std::span<const TableRef> tables, ExecContext& ctx) = 0;

  // The pipe is deleted: drop the slot and what the source side holds for it.
  virtual void teardown(ExecContext& ctx) = 0;
};

}  // namespace clickpipe
