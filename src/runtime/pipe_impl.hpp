// Pipe::Impl: what a pipe holds, shared by the runtime's files. Each job has its own file, named
// next to its declarations below; pipe.cpp holds only the public API. Internal: not installed.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "clickpipe/runtime/pipe.hpp"
#include "operation.hpp"

namespace clickpipe {
namespace runtime_detail {

// What a worker does in each state. Transitions between states with the same work (Running and
// Degraded) do not interrupt it; any other transition, and a re-entry, restarts it.
enum class Work : std::uint8_t {
  None,
  Provision,
  Setup,
  Snapshot,
  Cdc,
  StopCdc,
  RemoveTables,
  Swap,
  Teardown
};

Work work_for(State s);  // worker.cpp

struct Notification {
  enum class Kind : std::uint8_t { Transition, Rejected, Retry, Batch } kind = Kind::Transition;
  TransitionEvent event;
  Rejection rejection;
  RetryStatus retry;
  BatchSummary batch;
};

// Per table: the partition plan of the current load and which partitions are done.
struct TableLoad {
  bool planned = false;
  std::vector<Partition> partitions;
  std::vector<bool> done;
  std::uint64_t rows_done = 0;
  std::map<std::uint32_t, std::uint64_t> rows_in_flight;
};

// How a piece of work ended: with an event to apply, or cancelled (nothing to apply).
struct Outcome {
  std::optional<Trigger> event;
  std::string error;

  static Outcome done(Trigger t) { return {t, {}}; }
  static Outcome fatal(std::string message) { return {Trigger::FatalError, std::move(message)}; }
  static Outcome cancelled() { return {}; }
};

// What a pipe saves, as the runtime holds it; PipeRecord is its stored form.
struct Durable {
  Lifecycle life;
  Intent intent = Intent::Running;
  bool drop_destination = false;
  TimePoint since;
  Settings settings;
  std::vector<TableRef> tables;
  std::map<TableRef, TableDefinition> definitions;
  std::vector<TableRef> pending_added;    // tables being added: Setup/Snapshot cover only these
  std::vector<TableRef> pending_removed;  // tables Modifying takes out
  std::vector<TableRef> cancelled_added;  // added tables to take out again before CDC resumes
  std::map<TableRef, TableLoad> load;
  std::optional<SlotInfo> slot;
  CdcProgress cdc;  // confirmed, batches and changes are saved; the rest is live
  std::optional<ErrorInfo> last_error;
  std::deque<HistoryEntry> history;
  std::uint64_t transitions = 0;
  std::map<TableRef, StoppedTable> stopped;  // tables whose changes are no longer applied
  RowVersions row_versions = RowVersions::CommitLsn;
  std::deque<SchemaEvent> schema_changes;
};

// durable.cpp
PipeRecord to_record(const std::string& id, const Durable& d);
Durable from_record(const PipeRecord& r);

// Saving to a store that may heal never gives up on its own: it keeps the pipe where it is.
inline RetryPolicy store_retry(const Settings& s) {
  RetryPolicy p = s.setup_retry;
  p.max_attempts = 0;
  return p;
}

// The store refused a save in a way waiting cannot heal (a StoreError that is not transient()).
// Thrown out of the work to stop the worker: the state stays what was last saved.
class StoreCannotSave : public Error {
 public:
  explicit StoreCannotSave(const std::string& message) : Error(message) {}
};

// The operation being retried now, as status shows it.
struct ActiveRetry {
  OperationId operation;
  RetryStatus status;
};

}  // namespace runtime_detail

struct Pipe::Impl : ProgressSink {
  using Durable = runtime_detail::Durable;
  using Notification = runtime_detail::Notification;
  using Operation = runtime_detail::Operation;
  using OperationId = runtime_detail::OperationId;
  using Outcome = runtime_detail::Outcome;
  using TableLoad = runtime_detail::TableLoad;
  using Work = runtime_detail::Work;

  Impl(const std::string& pipe_id, Durable durable, Executors executors, PipeOptions options);

  // ---- immutable after construction ----
  const std::string id;
  const Executors ex;
  const std::shared_ptr<spdlog::logger> log;
  const std::shared_ptr<Clock> clock;
  const std::shared_ptr<HealthPolicy> health;
  const std::shared_ptr<StateStore> store;
  const std::shared_ptr<ConcurrencyLimit> partition_limit;

  // ---- guarded by mu ----
  mutable std::mutex mu;
  mutable std::condition_variable changed;
  std::mt19937_64 rng;
  Durable d;
  std::optional<runtime_detail::ActiveRetry> retrying;
  std::string degraded_reason;
  // When the newest applied transaction committed at the source (CdcBatch::committed_at): what
  // the lag in seconds is measured from. Live only.
  std::optional<TimePoint> last_commit_at;
  std::optional<TimePoint> last_caught_up_at;  // a batch after which nothing waited
  // Set when the store refused a save for good: the worker stops until a save goes through again
  // (a command, once the store heals) or start() is called.
  bool store_failed = false;

  std::uint64_t epoch = 0;  // bumped whenever the current work must stop
  std::stop_source work_stop;
  bool started = false;
  bool shutting_down = false;
  bool runner_active = false;
  std::jthread runner;

  std::deque<Notification> outbox;
  bool delivering = false;
  std::vector<std::function<void()>> queued_commands;
  std::vector<std::shared_ptr<TransitionListener>> listeners;

  // ---- transitions.cpp: the only place the state changes, and saving ----
  ApplyResult transition_locked(Trigger trigger, const std::string& error = {},
                                const std::function<void(Durable&)>& edit = {});
  void save_locked();
  // StateStore::check_writer before a destination write; a refusal stops the work as a refused
  // save does (throws StoreCannotSave).
  void check_writer();
  void save_with_retry(Operation what, std::stop_token stop,
                       const std::function<void(Durable&)>& edit);
  void after_transition_locked(const Transition& t, const std::string& error, TimePoint now);
  std::string record_store_failure_locked(Operation what, std::uint32_t attempt,
                                          const StoreError& e);

  // ---- outbox.cpp: notifications, delivered outside the lock ----
  void deliver();
  bool delivering_on_this_thread() const;

  // ---- commands.cpp ----
  static CommandResult rejected(const Rejection& r);
  static CommandResult invalid(std::string message);
  CommandResult command(Trigger trigger, std::function<CommandResult()> body);
  CommandResult simple(Trigger trigger, std::optional<Intent> intent = std::nullopt);
  CommandResult apply_command_locked(Trigger trigger,
                                     const std::function<void(Durable&)>& edit = {});
  std::optional<std::string> check_new_tables_locked(const std::vector<TableRef>& add) const;

  // ---- retry.cpp: progress from executors, their context, backoff ----
  void rows_copied(const TableRef& table, std::uint32_t partition, std::uint64_t rows) override;
  void note(std::string_view text) override;
  ExecContext context(std::stop_token stop);
  double random_unit();
  void backoff(const OperationId& operation, RetryPolicy policy, std::uint32_t attempt,
               const std::string& error, std::stop_token stop);
  RetryPolicy policy(RetryPolicy Settings::*which);
  void clear_retry(const OperationId& operation);
  template <class F>
  auto with_retry(const OperationId& operation, RetryPolicy Settings::*which, std::stop_token stop,
                  F&& f);

  // ---- worker.cpp: the worker loop and the work of the short states ----
  void ensure_runner_locked();
  void run();
  Outcome perform(Work work, std::stop_token stop);
  Outcome provision(std::stop_token stop);
  void set_up_tables(const std::vector<TableRef>& refs, std::stop_token stop, bool create = true);
  Outcome setup(std::stop_token stop);
  std::vector<TableDefinition> definitions_of(const std::vector<TableRef>& refs);
  Outcome remove_tables(std::stop_token stop);
  Outcome swap(std::stop_token stop);
  Outcome teardown(std::stop_token stop);

  // ---- snapshot_work.cpp ----
  Outcome snapshot(std::stop_token stop);
  void plan(const TableDefinition& def, std::stop_token stop);
  void copy_partitions(const std::vector<TableDefinition>& defs, TableTarget target,
                       std::stop_token stop);
  void partition_done(const TableRef& table, std::uint32_t index, std::uint64_t rows,
                      std::stop_token stop);

  // ---- cdc_work.cpp ----
  Outcome stream(std::stop_token stop);
  void log_schema_change(const SchemaChange& sc);
  static void record_schema_change(Durable& dur, const SchemaChange& sc, TimePoint now);
  void record_batch(const CdcBatch& batch, Lsn before, Lsn confirmed, TimePoint pull_started);
  std::optional<double> lag_seconds_locked(TimePoint now) const;
  void check_health(std::uint32_t consecutive_errors);

  // ---- pipe_status.cpp ----
  PipeStatus status_locked() const;
};

// Calls f(ctx) until it succeeds, retrying transient errors under the policy `which`. Before
// every attempt the store is asked whether this process may still write for the pipe: a worker
// whose lease ran out during a backoff stops instead of trying again.
template <class F>
auto Pipe::Impl::with_retry(const OperationId& operation, RetryPolicy Settings::*which,
                            std::stop_token stop, F&& f) {
  for (std::uint32_t attempt = 1;; ++attempt) {
    check_writer();  // outside the try: its StoreCannotSave must not become a FatalError
    ExecContext ctx = context(stop);
    std::string error;
    try {
      if constexpr (std::is_void_v<decltype(f(ctx))>) {
        f(ctx);
        clear_retry(operation);
        return;
      } else {
        auto result = f(ctx);
        clear_retry(operation);
        return result;
      }
    } catch (const Cancelled&) {
      if (stop.stop_requested()) throw;
      error = "cancelled without a stop request";
    } catch (const FatalError&) {
      throw;
    } catch (const TransientError& e) {
      error = e.what();
    } catch (const std::exception& e) {
      throw FatalError(e.what());
    }
    backoff(operation, policy(which), attempt, error, stop);
  }
}

}  // namespace clickpipe
