// Change-data capture: stream from the slot, apply at the destination, confirm.
#pragma once

#include <optional>
#include <span>

#include "clickpipe/change.hpp"
#include "clickpipe/executors/exec_context.hpp"
#include "clickpipe/lsn.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe {

// Contract for implementers:
// - Called on the pipe's worker thread, one call at a time, in the order
//   start, (pull, [apply], [confirm])*, stop. After an error the runtime calls stop and later
//   start again from the last confirmed position.
// - pull returns a batch of at most ctx.settings.pull_batch_size changes (whole transactions;
//   one larger transaction may exceed it), after at most ctx.settings.sync_interval, and returns
//   early (possibly empty) once ctx.stop is requested.
// - apply writes the batch at the destination and returns once it is committed there (called for
//   a batch with changes or schema changes): first the schema changes, then the changes. Applying
//   the same batch twice must give the same result (versions make it idempotent).
// - Schema changes a batch reports are saved with its position: the runtime hands the updated
//   definitions to the next start, and leaves a TableStopped table out of it.
// - confirm tells the source the position is safe: the runtime calls it only after apply
//   returned and the checkpoint was saved. Never confirm anything on your own.
// - Errors: TransientError is retried without end by default (restarting from the confirmed
//   position), FatalError fails the pipe.
class CdcStreamer {
 public:
  virtual ~CdcStreamer() = default;

  // Opens the stream after `confirmed`. With no position yet (a CDC-only pipe entering Running for
  // the first time) creates the slot and returns its position; otherwise returns `confirmed`.
  // Must fail with FatalError when the slot is missing or ahead of `confirmed` (data would be
  // lost).
  virtual Lsn start(std::optional<Lsn> confirmed, std::span<const TableDefinition> tables,
                    ExecContext& ctx) = 0;
  virtual CdcBatch pull(ExecContext& ctx) = 0;
  virtual void apply(const CdcBatch& batch, ExecContext& ctx) = 0;
  virtual void confirm(Lsn position, ExecContext& ctx) = 0;
  virtual void stop(ExecContext& ctx) { (void)ctx; }
};

}  // namespace clickpipe
