// CDC work: the stream loop (pull, apply, save, confirm), schema changes recorded with the batch
// that carried them, and health checks that move the pipe between Running and Degraded.
#include <spdlog/logger.h>

#include <algorithm>
#include <chrono>
#include <exception>

#include "pipe_impl.hpp"

namespace clickpipe {

Pipe::Impl::Outcome Pipe::Impl::stream(std::stop_token stop) {
  std::vector<TableRef> forget;
  {
    std::lock_guard lk(mu);
    forget = d.cancelled_added;
  }
  if (!forget.empty()) {
    with_retry({Operation::RemoveCancelledTables, {}}, &Settings::setup_retry, stop,
               [&](ExecContext& ctx) { ex.table_setup->remove_tables(forget, ctx); });
    save_with_retry(Operation::SaveTableSet, stop,
                    [](Durable& dur) { dur.cancelled_added.clear(); });
  }

  std::uint32_t errors = 0;
  for (;;) {
    if (stop.stop_requested()) return Outcome::cancelled();
    // Schema changes of a transaction still being applied in pieces: saved with its end.
    std::vector<SchemaChange> deferred;
    std::vector<TableDefinition> defs;
    std::optional<Lsn> confirmed;
    {
      std::lock_guard lk(mu);
      for (const auto& t : d.tables) {
        auto it = d.definitions.find(t);
        if (it != d.definitions.end() && !d.stopped.count(t)) defs.push_back(it->second);
      }
      confirmed = d.cdc.confirmed;
    }
    std::string error;
    bool fatal = false;
    bool opened = false;
    std::exception_ptr store_refused;  // rethrown once the stream is closed
    ExecContext ctx = context(stop);
    try {
      const Lsn from = ex.cdc->start(confirmed, defs, ctx);
      opened = true;
      if (!confirmed) {
        // A CDC-only pipe's first position: saved before anything is streamed from it.
        save_with_retry(Operation::SaveCdcPosition, stop, [&](Durable& dur) {
          if (!dur.cdc.confirmed) dur.cdc.confirmed = from;
        });
        confirmed = from;
      }
      for (;;) {
        ExecContext bctx = context(stop);
        const Lsn before = *confirmed;
        CdcBatch batch = ex.cdc->pull(bctx);
        const TimePoint pulled = clock->now();
        if (stop.stop_requested()) break;  // dropped unconfirmed: replayed after resume
        if (!batch.changes.empty() || !batch.schema_changes.empty()) {
          check_writer();
          ex.cdc->apply(batch, bctx);
        }
        // Applied: now saved, and only then confirmed to the source.
        if (batch.end > *confirmed || !batch.changes.empty() || !batch.schema_changes.empty()) {
          const Lsn end = std::max(batch.end, *confirmed);
          const TimePoint now = clock->now();
          save_with_retry(Operation::SaveCdcPosition, stop, [&](Durable& dur) {
            dur.cdc.confirmed = end;
            if (!batch.changes.empty()) {
              ++dur.cdc.batches;
              dur.cdc.changes += batch.changes.size();
            }
            if (!batch.partial) {
              for (const SchemaChange& sc : deferred) record_schema_change(dur, sc, now);
              for (const SchemaChange& sc : batch.schema_changes)
                record_schema_change(dur, sc, now);
            }
          });
          if (batch.partial) {
            deferred.insert(deferred.end(), batch.schema_changes.begin(),
                            batch.schema_changes.end());
          } else {
            for (const SchemaChange& sc : deferred) log_schema_change(sc);
            for (const SchemaChange& sc : batch.schema_changes) log_schema_change(sc);
            deferred.clear();
          }
          if (end > *confirmed) ex.cdc->confirm(end, bctx);
          confirmed = end;
        }
        errors = 0;
        record_batch(batch, before, *confirmed, pulled);
        check_health(0);
      }
    } catch (const Cancelled&) {
      if (!stop.stop_requested()) error = "cancelled without a stop request";
    } catch (const runtime_detail::StoreCannotSave&) {
      store_refused = std::current_exception();
    } catch (const FatalError& e) {
      error = e.what();
      fatal = true;
    } catch (const TransientError& e) {
      error = e.what();
    } catch (const std::exception& e) {
      error = e.what();
      fatal = true;
    }
    if (opened) {
      try {
        ex.cdc->stop(ctx);
      } catch (const std::exception& e) {
        log->warn("cdc: closing the stream failed: {}", e.what());
      }
    }
    if (store_refused) std::rethrow_exception(store_refused);
    if (error.empty()) return Outcome::cancelled();
    if (fatal) return Outcome::fatal(error);
    ++errors;
    check_health(errors);
    backoff({Operation::Cdc, {}}, policy(&Settings::cdc_retry), errors, error, stop);
  }
}

void Pipe::Impl::log_schema_change(const SchemaChange& sc) {
  if (sc.kind == SchemaChange::Kind::TableStopped) {
    log->error("schema change: {}", sc.description);
  } else {
    log->info("schema change: {}", sc.description);
  }
}

// Saved with the position of the batch that carried it: the definition from then on, or the
// table stopped.
void Pipe::Impl::record_schema_change(Durable& dur, const SchemaChange& sc, TimePoint now) {
  auto def = dur.definitions.find(sc.table);
  if (def == dur.definitions.end()) return;  // left the pipe meanwhile
  switch (sc.kind) {
    case SchemaChange::Kind::ColumnsAdded:
    case SchemaChange::Kind::ColumnsDropped:
    case SchemaChange::Kind::Identified:
      def->second.columns = sc.definition.columns;
      if (sc.definition.oid != 0) def->second.oid = sc.definition.oid;
      break;
    case SchemaChange::Kind::PartitionsChanged: def->second.leaves = sc.definition.leaves; break;
    case SchemaChange::Kind::TableStopped:
      dur.stopped[sc.table] = StoppedTable{sc.table, sc.description, now};
      break;
  }
  dur.schema_changes.push_back(SchemaEvent{sc.table, sc.kind, sc.description, now});
  while (dur.schema_changes.size() > PipeStatus::kSchemaLimit) dur.schema_changes.pop_front();
}

// The live part of CDC progress (what is saved went with the checkpoint), and the batch's summary
// for the listeners.
void Pipe::Impl::record_batch(const CdcBatch& batch, Lsn before, Lsn confirmed, TimePoint pulled) {
  {
    std::lock_guard lk(mu);
    const TimePoint now = clock->now();
    if (!batch.changes.empty()) d.cdc.last_batch_at = now;
    if (batch.source_head > d.cdc.source_head) d.cdc.source_head = batch.source_head;
    d.cdc.lag_bytes = d.cdc.source_head > confirmed ? d.cdc.source_head.value - confirmed.value : 0;
    if (batch.committed_at && (!last_commit_at || *batch.committed_at > *last_commit_at))
      last_commit_at = batch.committed_at;
    if (d.cdc.lag_bytes == 0) last_caught_up_at = now;
    if (retrying && retrying->operation == OperationId{Operation::Cdc, {}}) retrying.reset();
    if (!batch.changes.empty()) {
      // Kept in the pipe's table order, so status and metrics list tables as the config does.
      for (const Change& c : batch.changes) {
        auto it = std::find_if(d.cdc.tables.begin(), d.cdc.tables.end(),
                               [&](const TableChanges& t) { return t.table == c.table; });
        if (it == d.cdc.tables.end()) {
          d.cdc.tables.push_back({c.table, 0});
          it = std::prev(d.cdc.tables.end());
        }
        ++it->changes;
      }
      std::stable_sort(d.cdc.tables.begin(), d.cdc.tables.end(),
                       [&](const TableChanges& a, const TableChanges& b) {
                         const auto pos = [&](const TableRef& t) {
                           return std::find(d.tables.begin(), d.tables.end(), t) - d.tables.begin();
                         };
                         return pos(a.table) < pos(b.table);
                       });
      BatchSummary sum;
      sum.changes = batch.changes.size();
      sum.wal_bytes = confirmed > before ? confirmed.value - before.value : 0;
      sum.duration = std::chrono::duration_cast<std::chrono::milliseconds>(now - pulled);
      sum.end = confirmed;
      sum.lag_bytes = d.cdc.lag_bytes;
      sum.lag_seconds = lag_seconds_locked(now);
      sum.at = now;
      d.cdc.last_batch = sum;
      Notification n;
      n.kind = Notification::Kind::Batch;
      n.batch = sum;
      outbox.push_back(std::move(n));
    }
  }
  deliver();
}

std::optional<double> Pipe::Impl::lag_seconds_locked(TimePoint now) const {
  const auto since = [&](TimePoint t) {
    return std::max(0.0, std::chrono::duration<double>(now - t).count());
  };
  // While CDC (or saving its checkpoint) fails and retries, or the pipe has failed, nothing lands
  // and the figures of the last batch would stand still: the data is as old as the newest commit
  // applied or the last time the pipe caught up.
  if (retrying || d.life.state() == State::Failed) {
    std::optional<TimePoint> fresh = last_commit_at;
    if (last_caught_up_at && (!fresh || *last_caught_up_at > *fresh)) fresh = last_caught_up_at;
    if (fresh) return since(*fresh);
  }
  if (d.cdc.lag_bytes == 0 && (last_commit_at || last_caught_up_at)) return 0.0;
  if (!last_commit_at) return std::nullopt;
  return since(*last_commit_at);
}

// Asks the health policy, if the host gave one, and moves between Running and Degraded.
void Pipe::Impl::check_health(std::uint32_t consecutive_errors) {
  if (!health) return;
  HealthSignals signals;
  {
    std::lock_guard lk(mu);
    signals.consecutive_cdc_errors = consecutive_errors;
    signals.lag_bytes = d.cdc.lag_bytes;
    if (d.cdc.last_batch_at) {
      signals.since_last_batch = std::chrono::duration_cast<std::chrono::milliseconds>(
          clock->now() - *d.cdc.last_batch_at);
    }
  }
  const std::optional<std::string> reason = health->unhealthy(signals);
  {
    std::lock_guard lk(mu);
    const State s = d.life.state();
    try {
      if (reason && (s == State::Running || (s == State::Degraded && *reason != degraded_reason))) {
        transition_locked(Trigger::Unhealthy);
        degraded_reason = *reason;
        log->warn("degraded: {}", *reason);
      } else if (!reason && s == State::Degraded) {
        transition_locked(Trigger::Healthy);
      }
    } catch (const StoreError& e) {
      log->warn("health change not saved: {}", e.what());
    }
  }
  deliver();
}

}  // namespace clickpipe
