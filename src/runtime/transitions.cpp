// Transitions and durable saving: the only place the state changes, and every save of what a pipe
// holds. Nothing is seen (by listeners, status or the source) before it is saved.
#include <spdlog/logger.h>

#include <algorithm>

#include "pipe_impl.hpp"

namespace clickpipe {

using runtime_detail::work_for;

// Takes the transition, applies `edit` (a command's own bookkeeping) and saves the result
// before anything else can see it. When the save fails, everything is put back as it was and
// the StoreError is thrown: nothing happened.
ApplyResult Pipe::Impl::transition_locked(Trigger trigger, const std::string& raw_error,
                                          const std::function<void(Durable&)>& edit) {
  const State from = d.life.state();
  const ApplyResult result = d.life.check(trigger);
  if (!result) return result;
  // What is saved and told to listeners is capped: an executor's error can be any length.
  const std::string error = capped_error(raw_error);
  const Transition& t = result.transition();
  const Durable before = d;
  const TimePoint now = clock->now();
  d.life.apply(trigger);
  if (t.kind == TransitionKind::External) d.since = now;
  after_transition_locked(t, error, now);
  if (edit) edit(d);
  d.history.push_back(HistoryEntry{t.from, t.trigger, t.to, now});
  while (d.history.size() > PipeStatus::kHistoryLimit) d.history.pop_front();
  ++d.transitions;
  try {
    save_locked();
  } catch (const StoreError&) {
    d = before;
    throw;
  }
  if (store_failed) {
    // A transition went through: the store works again, so its error is over and work may go on.
    store_failed = false;
    retrying.reset();
  }

  // Saved: from here on it may be seen and acted upon.
  if (t.kind == TransitionKind::External && (work_for(from) != work_for(t.to) || from == t.to)) {
    ++epoch;
    work_stop.request_stop();
  }
  if (t.to != State::Degraded) degraded_reason.clear();
  Notification n;
  n.event = TransitionEvent{id, t, now, error};
  outbox.push_back(std::move(n));
  changed.notify_all();
  ensure_runner_locked();
  return result;
}

void Pipe::Impl::save_locked() {
  if (store) store->save(runtime_detail::to_record(id, d));
}

void Pipe::Impl::check_writer() {
  if (!store) return;
  try {
    store->check_writer(id);
  } catch (const StoreError& e) {
    std::unique_lock lk(mu);
    const std::string message = record_store_failure_locked(Operation::CheckWriter, 1, e);
    lk.unlock();
    deliver();
    throw runtime_detail::StoreCannotSave(message);
  }
}

// Changes what is saved outside a transition (definitions, plans, done partitions, CDC
// positions): applies `edit`, saves, and on a transient store error puts it back, waits and tries
// again until it is saved or `stop` is requested (then throws Cancelled). Any other store error
// puts it back and throws StoreCannotSave.
void Pipe::Impl::save_with_retry(Operation what, std::stop_token stop,
                                 const std::function<void(Durable&)>& edit) {
  const OperationId op{what, {}};
  for (std::uint32_t attempt = 1;; ++attempt) {
    std::string error;
    RetryPolicy policy;
    {
      std::unique_lock lk(mu);
      const Durable before = d;
      edit(d);
      try {
        save_locked();
        // Another partition's refused save stays the pipe's error until a restart or a command.
        if (!store_failed && retrying && retrying->operation == op) retrying.reset();
        return;
      } catch (const StoreError& e) {
        d = before;
        if (!e.transient()) {
          const std::string message = record_store_failure_locked(what, attempt, e);
          lk.unlock();
          deliver();
          throw runtime_detail::StoreCannotSave(message);
        }
        error = e.what();
        policy = runtime_detail::store_retry(d.settings);
      }
    }
    backoff(op, policy, attempt, error, stop);
  }
}

// A store error that waiting cannot heal: shown as the pipe's error and its retry (one that will
// not come), told to listeners through on_retry, and the worker told to stop. The state stays
// what was last saved: the store holds the truth, and a pipe restarted on a healed store resumes
// from it. Returns the message.
std::string Pipe::Impl::record_store_failure_locked(Operation what, std::uint32_t attempt,
                                                    const StoreError& e) {
  const std::string message = capped_error("the store cannot save: " + std::string(e.what()));
  if (store_failed) return message;  // another partition's save told them already
  store_failed = true;
  const TimePoint now = clock->now();
  RetryStatus rs{std::string(runtime_detail::to_string(what)), attempt, attempt, message,
                 std::nullopt};
  retrying = runtime_detail::ActiveRetry{OperationId{what, {}}, rs};
  d.last_error = ErrorInfo{message, d.life.state(), now, false};
  Notification n;
  n.kind = Notification::Kind::Retry;
  n.retry = rs;
  outbox.push_back(std::move(n));
  changed.notify_all();
  log->error("{} (code {}); the pipe's work stops until the store saves again", message,
             to_string(e.code()));
  return message;
}

// Keeps the runtime's own bookkeeping in step with the model's context.
void Pipe::Impl::after_transition_locked(const Transition& t, const std::string& error,
                                         TimePoint now) {
  const LifecycleContext& c = d.life.context();
  if (t.trigger == Trigger::FatalError) {
    d.last_error = ErrorInfo{error, t.from, now, true};
    retrying.reset();
  }
  if (t.trigger == Trigger::Resync) {
    // A new load starts from nothing, with definitions read again: the source's tables may
    // have changed since Setup (that is how a stopped table is fixed).
    d.load.clear();
    for (const auto& table : d.tables) d.definitions.erase(table);
    d.stopped.clear();
    d.row_versions = RowVersions::CommitLsn;  // every table is rebuilt under it
  }
  if (t.trigger == Trigger::TablesRemoved) {
    for (const auto& r : d.pending_removed) {
      d.definitions.erase(r);
      d.load.erase(r);
      d.stopped.erase(r);
    }
    d.pending_removed.clear();
  }

  // An addition ends when its tables are loaded (or set up, CDC-only), or folds into a resync
  // that loads every table; any other end (cancel, a failure while pausing for it) abandons it,
  // and its tables leave the pipe again.
  const bool adding =
      c.adding_tables || (d.life.state() == State::Pausing && c.pause_for == PauseFor::AddTables);
  if (d.pending_added.empty() || adding) return;
  const bool loaded = t.trigger == Trigger::SnapshotDone || t.trigger == Trigger::SetupDone;
  if (!loaded && t.trigger != Trigger::Resync) {
    for (const auto& r : d.pending_added) {
      std::erase(d.tables, r);
      d.definitions.erase(r);
      d.load.erase(r);
      d.cancelled_added.push_back(r);
    }
    log->info("table addition abandoned: {} table(s) leave the pipe", d.pending_added.size());
  }
  d.pending_added.clear();
}

}  // namespace clickpipe
