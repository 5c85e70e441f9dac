// Table definitions and destination tables: Setup, Modifying, Resync and Terminating.
#pragma once

#include <span>
#include <vector>

#include "clickpipe/executors/exec_context.hpp"
#include "clickpipe/slot.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe {

// Contract for implementers:
// - Called on a pipe's worker thread, one call at a time per pipe; check_tables excepted, which
//   runs on the caller's thread, possibly alongside another call.
// - Every call is idempotent (it finds what an earlier run did and goes on): after a crash it
//   runs again from the start.
// - Destination tables: only those the executor made itself are adopted, renamed or dropped.
// - Errors: TransientError is retried (default 20 attempts), FatalError fails the pipe.
// - Cancellation: return or throw Cancelled soon after ctx.stop is requested.
class TableSetup {
 public:
  virtual ~TableSetup() = default;

  // Whether `tables` can live side by side at the destination (e.g. no two land in the same
  // table). Throws InvalidField naming `tables[i]` (and, in the message, what it clashes with)
  // when they cannot. The runtime asks before anything runs: with the pipe's tables when it is
  // created, and on add_tables with the tables it holds followed by the additions (a refusal
  // makes that command Invalid, nothing changed). It runs under the pipe's lock: no I/O, no
  // blocking. The default accepts everything.
  virtual void check_tables(std::span<const TableRef> tables) const { (void)tables; }

  // Reads the source definitions of `tables` (columns in order, types, primary key) and checks
  // them (the table exists, has a primary key, ...). Result in the same order as `tables`.
  virtual std::vector<TableDefinition> read_definitions(std::span<const TableRef> tables,
                                                        ExecContext& ctx) = 0;

  // Makes `tables` part of the pipe at both ends: destination tables created (the `_resync`
  // copies for TableTarget::Resync, empty), source side prepared (e.g. publication membership).
  // A destination table already there is kept only if the executor made it and it holds what
  // `tables` need; else FatalError, and that table is left as it is.
  virtual void create_tables(std::span<const TableDefinition> tables, TableTarget target,
                             ExecContext& ctx) = 0;

  // Atomically swaps each table with its `_resync` copy, then drops the old data.
  virtual void swap_resync_tables(std::span<const TableDefinition> tables, ExecContext& ctx) = 0;

  // Takes `tables` out of the pipe (source side); destination tables are kept.
  virtual void remove_tables(std::span<const TableRef> tables, ExecContext& ctx) = 0;

  // The pipe is deleted: drop the slot and what the source side holds for it.
  virtual void teardown(ExecContext& ctx) = 0;

  // Whether drop_destination_tables does anything: a delete that asks for the destination tables
  // to go is refused (Invalid) up front when it does not. Default: false.
  virtual bool can_drop_destination() const { return false; }
  // The pipe is deleted with its destination (DeleteOptions::drop_destination), after teardown:
  // drop the destination tables of `tables` and their `_resync` copies, each only if the executor
  // made it. Tables already gone are fine. Default: nothing.
  virtual void drop_destination_tables(std::span<const TableRef> tables, ExecContext& ctx) {
    (void)tables, (void)ctx;
  }
};

}  // namespace clickpipe
