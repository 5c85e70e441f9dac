#include "clickpipe/runtime/pipe.hpp"

#include <fmt/format.h>
#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <type_traits>
#include <utility>

#include "clickpipe/format.hpp"

namespace clickpipe {

void PipeConfig::validate() const {
  if (id.empty()) throw InvalidField("id", "must not be empty");
  for (unsigned char c : id) {
    if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
      throw InvalidField("id", "must not contain control characters or slashes");
  }
  if (tables.empty()) throw InvalidField("tables", "a pipe needs at least one table");
  std::set<TableRef> seen;
  for (std::size_t i = 0; i < tables.size(); ++i) {
    const std::string field = fmt::format("tables[{}]", i);
    if (tables[i].name.empty()) throw InvalidField(field + ".name", "must not be empty");
    if (tables[i].schema.empty()) throw InvalidField(field + ".schema", "must not be empty");
    if (!seen.insert(tables[i]).second)
      throw InvalidField(field, "duplicate table " + tables[i].qualified());
  }
  settings.validate();
}

namespace {

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

Work work_for(State s) {
  switch (s) {
    case State::Provisioning: return Work::Provision;
    case State::Setup: return Work::Setup;
    case State::Snapshot: return Work::Snapshot;
    case State::Running:
    case State::Degraded: return Work::Cdc;
    case State::Pausing: return Work::StopCdc;
    case State::Modifying: return Work::RemoveTables;
    case State::Resync: return Work::Swap;
    case State::Terminating: return Work::Teardown;
    default: return Work::None;
  }
}

// Set while a thread delivers a pipe's notifications, so commands from listeners are queued.
thread_local const void* tls_delivering = nullptr;

struct Notification {
  enum class Kind : std::uint8_t { Transition, Rejected, Retry } kind = Kind::Transition;
  TransitionEvent event;
  Rejection rejection;
  RetryStatus retry;
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

std::shared_ptr<spdlog::logger> default_logger(const std::string& id) {
  return spdlog::default_logger()->clone("clickpipe:" + id);
}

// What a pipe saves, as the runtime holds it; PipeRecord is its stored form.
struct Durable {
  Lifecycle life;
  Intent intent = Intent::Running;
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

PipeRecord to_record(const std::string& id, const Durable& d) {
  PipeRecord r;
  r.id = id;
  r.lifecycle = d.life;
  r.intent = d.intent;
  r.since = d.since;
  r.settings = d.settings;
  r.tables = d.tables;
  for (const auto& [t, def] : d.definitions) r.definitions.push_back(def);
  r.pending_added = d.pending_added;
  r.pending_removed = d.pending_removed;
  r.cancelled_added = d.cancelled_added;
  r.slot = d.slot;
  for (const auto& [t, tl] : d.load) {
    TableLoadRecord lr{t, tl.partitions, {}, tl.rows_done};
    for (std::size_t i = 0; i < tl.done.size(); ++i) {
      if (tl.done[i]) lr.done.push_back(static_cast<std::uint32_t>(i));
    }
    r.load.push_back(std::move(lr));
  }
  r.confirmed = d.cdc.confirmed;
  r.cdc_batches = d.cdc.batches;
  r.cdc_changes = d.cdc.changes;
  r.last_error = d.last_error;
  r.history.assign(d.history.begin(), d.history.end());
  r.transitions = d.transitions;
  for (const auto& [t, st] : d.stopped) r.stopped_tables.push_back(st);
  r.schema_changes.assign(d.schema_changes.begin(), d.schema_changes.end());
  r.row_versions = d.row_versions;
  return r;
}

Durable from_record(const PipeRecord& r) {
  Durable d;
  d.life = r.lifecycle;
  d.intent = r.intent;
  d.since = r.since;
  d.settings = r.settings;
  d.tables = r.tables;
  for (const auto& def : r.definitions) d.definitions[def.table] = def;
  d.pending_added = r.pending_added;
  d.pending_removed = r.pending_removed;
  d.cancelled_added = r.cancelled_added;
  d.slot = r.slot;
  for (const auto& lr : r.load) {
    TableLoad& tl = d.load[lr.table];
    tl.planned = true;
    tl.partitions = lr.partitions;
    tl.done.assign(lr.partitions.size(), false);
    for (auto i : lr.done) tl.done.at(i) = true;
    tl.rows_done = lr.rows_done;
  }
  d.cdc.confirmed = r.confirmed;
  d.cdc.batches = r.cdc_batches;
  d.cdc.changes = r.cdc_changes;
  d.last_error = r.last_error;
  d.history.assign(r.history.begin(), r.history.end());
  d.transitions = r.transitions;
  for (const auto& st : r.stopped_tables) d.stopped[st.table] = st;
  d.schema_changes.assign(r.schema_changes.begin(), r.schema_changes.end());
  d.row_versions = r.row_versions;
  return d;
}

// Saving never gives up on its own: a store that keeps failing keeps the pipe where it is.
RetryPolicy store_retry(const Settings& s) {
  RetryPolicy p = s.setup_retry;
  p.max_attempts = 0;
  return p;
}

}  // namespace

struct Pipe::Impl : ProgressSink {
  Impl(const std::string& pipe_id, Durable durable, Executors executors, PipeOptions options)
      : id(pipe_id),
        ex(std::move(executors)),
        log(options.logger ? options.logger : default_logger(pipe_id)),
        clock(options.clock ? options.clock : system_clock()),
        health(std::move(options.health)),
        store(std::move(options.store)),
        partition_limit(std::move(options.partition_limit)),
        rng(options.seed ? *options.seed : std::random_device{}()),
        d(std::move(durable)) {}

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
  std::optional<RetryStatus> retry_status;
  std::string degraded_reason;

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

  // ---------------------------------------------------------------------------------------------
  // Transitions: the only place the state changes.

  // Takes the transition, applies `edit` (a command's own bookkeeping) and saves the result
  // before anything else can see it. When the save fails, everything is put back as it was and
  // the StoreError is thrown: nothing happened.
  ApplyResult transition_locked(Trigger trigger, const std::string& error = {},
                                const std::function<void(Durable&)>& edit = {}) {
    const State from = d.life.state();
    const ApplyResult result = d.life.check(trigger);
    if (!result) return result;
    const Transition& t = result.transition();
    const Durable before = d;
    const TimePoint now = clock->now();
    d.life.apply(trigger);
    if (t.kind == Kind::External) d.since = now;
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

    // Saved: from here on it may be seen and acted upon.
    if (t.kind == Kind::External && (work_for(from) != work_for(t.to) || from == t.to)) {
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

  void save_locked() {
    if (store) store->save(to_record(id, d));
  }

  // Changes what is saved outside a transition (definitions, plans, done partitions, CDC
  // positions): applies `edit`, saves, and on a store error puts it back, waits and tries again
  // until it is saved or `stop` is requested (then throws Cancelled).
  void save_with_retry(const std::string& what, std::stop_token stop,
                       const std::function<void(Durable&)>& edit) {
    for (std::uint32_t attempt = 1;; ++attempt) {
      std::string error;
      RetryPolicy policy;
      {
        std::lock_guard lk(mu);
        const Durable before = d;
        edit(d);
        try {
          save_locked();
          if (retry_status && retry_status->operation == what) retry_status.reset();
          return;
        } catch (const StoreError& e) {
          d = before;
          error = e.what();
          policy = store_retry(d.settings);
        }
      }
      backoff(what, policy, attempt, error, stop);
    }
  }

  // Keeps the runtime's own bookkeeping in step with the model's context.
  void after_transition_locked(const Transition& t, const std::string& error, TimePoint now) {
    const Context& c = d.life.context();
    if (t.trigger == Trigger::FatalError) {
      d.last_error = ErrorInfo{error, t.from, now, true};
      retry_status.reset();
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

  void ensure_runner_locked() {
    if (!started || shutting_down || runner_active || work_for(d.life.state()) == Work::None)
      return;
    if (runner.joinable()) runner.join();  // the old runner has left its loop; it only returns
    runner_active = true;
    runner = std::jthread([this] { run(); });
  }

  // ---------------------------------------------------------------------------------------------
  // Notifications: delivered outside the lock, in order, one deliverer at a time.

  void deliver() {
    {
      std::lock_guard lk(mu);
      if (delivering) return;
      delivering = true;
    }
    for (;;) {
      Notification n;
      std::vector<std::shared_ptr<TransitionListener>> targets;
      {
        std::lock_guard lk(mu);
        if (outbox.empty()) {
          delivering = false;
          return;
        }
        n = std::move(outbox.front());
        outbox.pop_front();
        targets = listeners;
      }
      tls_delivering = this;
      for (const auto& l : targets) {
        try {
          switch (n.kind) {
            case Notification::Kind::Transition: l->on_transition(n.event); break;
            case Notification::Kind::Rejected: l->on_rejected(id, n.rejection); break;
            case Notification::Kind::Retry: l->on_retry(id, n.retry); break;
          }
        } catch (const std::exception& e) {
          log->error("a listener threw: {}", e.what());
        } catch (...) {
          log->error("a listener threw a non-standard exception");
        }
      }
      tls_delivering = nullptr;
      std::vector<std::function<void()>> commands;
      {
        std::lock_guard lk(mu);
        commands.swap(queued_commands);
      }
      for (auto& cmd : commands) cmd();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Commands.

  static CommandResult rejected(const Rejection& r) {
    return {CommandResult::Status::Rejected, r, message(r)};
  }
  static CommandResult invalid(std::string message) {
    return {CommandResult::Status::Invalid, std::nullopt, std::move(message)};
  }

  // Runs `body` (which checks and applies under the lock) now, or queues it when called from one
  // of this pipe's listeners.
  CommandResult command(Trigger trigger, std::function<CommandResult()> body) {
    if (tls_delivering == this) {
      std::lock_guard lk(mu);
      queued_commands.push_back([this, trigger, body = std::move(body)] {
        CommandResult r = body();
        if (r.status == CommandResult::Status::Rejected && r.rejection) {
          std::lock_guard lk2(mu);
          Notification n;
          n.kind = Notification::Kind::Rejected;
          n.rejection = *r.rejection;
          outbox.push_back(std::move(n));
        } else if (r.status == CommandResult::Status::Invalid) {
          log->warn("queued {} refused: {}", trigger, r.message);
        }
      });
      return {CommandResult::Status::Queued, std::nullopt, {}};
    }
    CommandResult r = body();
    deliver();
    return r;
  }

  CommandResult simple(Trigger trigger, std::optional<Intent> intent = std::nullopt) {
    return command(trigger, [this, trigger, intent] {
      std::lock_guard lk(mu);
      return apply_command_locked(trigger, [intent](Durable& dur) {
        if (intent) dur.intent = *intent;
      });
    });
  }

  // Checks and takes a command's transition; `edit` records what the command changes besides
  // the state, saved together with it.
  CommandResult apply_command_locked(Trigger trigger,
                                     const std::function<void(Durable&)>& edit = {}) {
    try {
      const ApplyResult r = transition_locked(trigger, {}, edit);
      if (!r) {
        log->info("{}", r.rejection());
        return rejected(r.rejection());
      }
      log->info("{}", r.transition());
      return {};
    } catch (const StoreError& e) {
      log->error("{} not carried out: {}", trigger, e.what());
      return {CommandResult::Status::Unavailable, std::nullopt,
              fmt::format("{} not carried out: the pipe's state could not be saved: {}", trigger,
                          e.what())};
    }
  }

  std::optional<std::string> check_new_tables_locked(const std::vector<TableRef>& add) const {
    if (add.empty()) return "no tables given";
    std::set<TableRef> seen(d.tables.begin(), d.tables.end());
    for (std::size_t i = 0; i < add.size(); ++i) {
      if (add[i].name.empty() || add[i].schema.empty())
        return fmt::format("tables[{}]: schema and name must not be empty", i);
      if (!seen.insert(add[i]).second)
        return fmt::format("tables[{}]: {} is already in the pipe", i, add[i].qualified());
    }
    return std::nullopt;
  }

  // ---------------------------------------------------------------------------------------------
  // Progress reported by executors (ProgressSink).

  void rows_copied(const TableRef& table, std::uint32_t partition, std::uint64_t rows) override {
    std::lock_guard lk(mu);
    auto it = d.load.find(table);
    if (it != d.load.end()) it->second.rows_in_flight[partition] += rows;
  }
  void note(std::string_view text) override { log->info("{}", text); }

  ExecContext context(std::stop_token stop) {
    std::lock_guard lk(mu);
    return ExecContext{std::move(stop), *this, *log, d.settings, id, d.row_versions};
  }

  double random_unit() {
    std::lock_guard lk(mu);
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  }

  // Records a transient error and waits out the backoff. Throws FatalError when the budget is
  // spent and Cancelled when stopped while waiting.
  void backoff(const std::string& operation, RetryPolicy policy, std::uint32_t attempt,
               const std::string& error, std::stop_token stop) {
    if (stop.stop_requested()) throw Cancelled();
    if (!policy.unlimited() && attempt >= policy.max_attempts) {
      throw FatalError(fmt::format("{} failed after {} attempts: {}", operation, attempt, error));
    }
    const auto delay = policy.backoff(attempt, random_unit());
    {
      std::lock_guard lk(mu);
      RetryStatus rs{operation, attempt, policy.max_attempts, error, clock->now() + delay};
      retry_status = rs;
      d.last_error = ErrorInfo{error, d.life.state(), clock->now(), false};
      Notification n;
      n.kind = Notification::Kind::Retry;
      n.retry = rs;
      outbox.push_back(std::move(n));
    }
    log->warn("{} attempt {} failed: {}; retrying in {} ms", operation, attempt, error,
              delay.count());
    deliver();
    if (!clock->sleep_for(delay, stop)) throw Cancelled();
  }

  RetryPolicy policy(RetryPolicy Settings::*which) {
    std::lock_guard lk(mu);
    return d.settings.*which;
  }

  // Calls f(ctx) until it succeeds, retrying transient errors under the policy `which`.
  template <class F>
  auto with_retry(const std::string& operation, RetryPolicy Settings::*which, std::stop_token stop,
                  F&& f) {
    for (std::uint32_t attempt = 1;; ++attempt) {
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

  void clear_retry(const std::string& operation) {
    std::lock_guard lk(mu);
    if (retry_status && retry_status->operation == operation) retry_status.reset();
  }

  // ---------------------------------------------------------------------------------------------
  // The worker.

  void run() {
    for (;;) {
      std::unique_lock lk(mu);
      const Work work = work_for(d.life.state());
      if (shutting_down || work == Work::None) {
        runner_active = false;
        return;
      }
      const std::uint64_t my_epoch = epoch;
      work_stop = std::stop_source();
      std::stop_token stop = work_stop.get_token();
      lk.unlock();

      Outcome outcome;
      try {
        outcome = perform(work, stop);
      } catch (const Cancelled&) {
        outcome = Outcome::cancelled();
      } catch (const FatalError& e) {
        outcome = Outcome::fatal(e.what());
      } catch (const TransientError& e) {
        outcome = Outcome::fatal(e.what());  // escaped a retry loop: nothing left to try
      } catch (const std::exception& e) {
        outcome = Outcome::fatal(e.what());
      }

      // The work is done: its event must be saved before it counts. A store that fails keeps
      // the pipe here, retrying, until it saves or a command moves the pipe on.
      for (std::uint32_t attempt = 1; outcome.event; ++attempt) {
        std::string error;
        RetryPolicy policy;
        lk.lock();
        if (my_epoch != epoch || shutting_down) {
          lk.unlock();
          break;
        }
        if (*outcome.event == Trigger::FatalError && attempt == 1) {
          log->error("failed in {}: {}", d.life.state(), outcome.error);
        }
        try {
          const ApplyResult r = transition_locked(*outcome.event, outcome.error);
          if (r) log->info("{}", r.transition());
          if (retry_status && retry_status->operation == "store: save transition") {
            retry_status.reset();
          }
          lk.unlock();
          break;
        } catch (const StoreError& e) {
          error = e.what();
          policy = store_retry(d.settings);
        }
        lk.unlock();
        try {
          backoff("store: save transition", policy, attempt, error, stop);
        } catch (const Cancelled&) {
          break;
        }
      }
      deliver();
    }
  }

  Outcome perform(Work work, std::stop_token stop) {
    switch (work) {
      case Work::Provision: return provision(stop);
      case Work::Setup: return setup(stop);
      case Work::Snapshot: return snapshot(stop);
      case Work::Cdc: return stream(stop);
      case Work::StopCdc: return Outcome::done(Trigger::CdcStopped);  // the CDC worker has ended
      case Work::RemoveTables: return remove_tables(stop);
      case Work::Swap: return swap(stop);
      case Work::Teardown: return teardown(stop);
      case Work::None: break;
    }
    return Outcome::cancelled();
  }

  Outcome provision(std::stop_token stop) {
    PipeInfo info;
    {
      std::lock_guard lk(mu);
      info = PipeInfo{id, d.life.mode(), d.tables};
    }
    with_retry("provisioning", &Settings::provisioning_retry, stop,
               [&](ExecContext& ctx) { ex.provisioner->provision(info, ctx); });
    return Outcome::done(Trigger::Provisioned);
  }

  // Reads and records definitions of `refs` and creates their destination tables.
  void set_up_tables(const std::vector<TableRef>& refs, std::stop_token stop) {
    auto defs =
        with_retry("setup: read table definitions", &Settings::setup_retry, stop,
                   [&](ExecContext& ctx) { return ex.table_setup->read_definitions(refs, ctx); });
    if (defs.size() != refs.size()) {
      throw FatalError(
          fmt::format("setup: asked for {} table definitions, got {}", refs.size(), defs.size()));
    }
    for (std::size_t i = 0; i < refs.size(); ++i) {
      if (defs[i].table != refs[i]) {
        throw FatalError(fmt::format("setup: definition {} is for {}, expected {}", i,
                                     defs[i].table.qualified(), refs[i].qualified()));
      }
    }
    with_retry("setup: create tables", &Settings::setup_retry, stop, [&](ExecContext& ctx) {
      ex.table_setup->create_tables(defs, TableTarget::Main, ctx);
    });
    save_with_retry("store: save table definitions", stop, [&](Durable& dur) {
      for (const auto& def : defs) dur.definitions[def.table] = def;
    });
  }

  Outcome setup(std::stop_token stop) {
    std::vector<TableRef> refs;
    {
      std::lock_guard lk(mu);
      refs = d.life.context().adding_tables ? d.pending_added : d.tables;
    }
    set_up_tables(refs, stop);
    return Outcome::done(Trigger::SetupDone);
  }

  std::vector<TableDefinition> definitions_of(const std::vector<TableRef>& refs) {
    std::lock_guard lk(mu);
    std::vector<TableDefinition> out;
    for (const auto& r : refs) out.push_back(d.definitions.at(r));
    return out;
  }

  Outcome snapshot(std::stop_token stop) {
    std::vector<TableRef> refs;
    std::vector<TableRef> undefined;
    bool resyncing = false;
    bool adding = false;
    Mode mode{};
    {
      std::lock_guard lk(mu);
      resyncing = d.life.context().resyncing;
      adding = d.life.context().adding_tables;
      mode = d.life.mode();
      refs = adding ? d.pending_added : d.tables;
      for (const auto& r : refs) {
        if (!d.definitions.count(r)) undefined.push_back(r);
      }
    }
    // A resync can start before Setup of added tables ran: set those up first.
    if (!undefined.empty()) set_up_tables(undefined, stop);
    const std::vector<TableDefinition> defs = definitions_of(refs);
    const TableTarget target = resyncing ? TableTarget::Resync : TableTarget::Main;
    if (resyncing) {
      // Fresh `_resync` copies only for tables whose load has not begun: after a restart, the
      // copies of tables already planned hold committed partitions.
      std::vector<TableDefinition> fresh;
      {
        std::lock_guard lk(mu);
        for (const auto& def : defs) {
          auto it = d.load.find(def.table);
          if (it == d.load.end() || !it->second.planned) fresh.push_back(def);
        }
      }
      if (!fresh.empty()) {
        with_retry("snapshot: create resync tables", &Settings::setup_retry, stop,
                   [&](ExecContext& ctx) { ex.table_setup->create_tables(fresh, target, ctx); });
      }
    }

    const bool keep_slot = mode != Mode::SnapshotOnly;
    auto opened =
        with_retry("snapshot: begin", &Settings::setup_retry, stop,
                   [&](ExecContext& ctx) { return ex.snapshot->begin(defs, keep_slot, ctx); });
    if (keep_slot && !opened) throw FatalError("snapshot: the copier returned no replication slot");
    if (opened) {
      save_with_retry("store: save slot", stop, [&](Durable& dur) {
        if (!dur.slot) dur.slot = *opened;
        // CDC of a first load starts where the slot began; a resync or an addition keeps its
        // place.
        if (!dur.cdc.confirmed) dur.cdc.confirmed = opened->consistent_point;
      });
    }
    struct EndView {
      Impl& self;
      std::stop_token stop;
      ~EndView() {
        try {
          ExecContext ctx = self.context(stop);
          self.ex.snapshot->end(ctx);
        } catch (const std::exception& e) {
          self.log->warn("snapshot: releasing the view failed: {}", e.what());
        }
      }
    } end_view{*this, stop};

    for (const auto& def : defs) plan(def, stop);
    copy_partitions(defs, target, stop);
    return Outcome::done(Trigger::SnapshotDone);
  }

  void plan(const TableDefinition& def, std::stop_token stop) {
    {
      std::lock_guard lk(mu);
      if (d.load[def.table].planned) return;
    }
    auto parts =
        with_retry("snapshot: plan " + def.table.qualified(), &Settings::snapshot_partition_retry,
                   stop, [&](ExecContext& ctx) { return ex.snapshot->plan_partitions(def, ctx); });
    for (std::size_t i = 0; i < parts.size(); ++i) {
      if (parts[i].index != i) {
        throw FatalError(fmt::format("snapshot: partition {} of {} has index {}", i,
                                     def.table.qualified(), parts[i].index));
      }
    }
    // The plan is saved: partitions marked done later refer to these bounds.
    save_with_retry("store: save partition plan", stop, [&](Durable& dur) {
      TableLoad& tl = dur.load[def.table];
      tl.planned = true;
      tl.done.assign(parts.size(), false);
      tl.partitions = parts;
    });
  }

  // Copies every partition not yet done, honouring partitions-per-table and tables-at-once.
  void copy_partitions(const std::vector<TableDefinition>& defs, TableTarget target,
                       std::stop_token stop) {
    struct TableQueue {
      const TableDefinition* def;
      std::deque<Partition> waiting;
      std::size_t in_flight = 0;
      bool opened = false;
    };
    std::vector<TableQueue> queues;
    std::size_t workers = 1;
    {
      std::lock_guard lk(mu);
      for (const auto& def : defs) {
        TableQueue q{&def, {}, 0, false};
        const TableLoad& tl = d.load[def.table];
        for (std::size_t i = 0; i < tl.partitions.size(); ++i) {
          if (!tl.done[i]) q.waiting.push_back(tl.partitions[i]);
        }
        queues.push_back(std::move(q));
      }
      workers = d.settings.tables_in_parallel * d.settings.partitions_in_parallel;
    }

    std::mutex qmu;
    std::condition_variable_any qcv;
    std::size_t open_tables = 0;
    std::uint64_t finished = 0;  // partitions ended (any way): wakes waiting workers
    std::optional<std::string> failure;
    std::stop_source local;
    std::stop_callback forward(stop, [&] { local.request_stop(); });

    auto worker = [&] {
      std::stop_token ltoken = local.get_token();
      for (;;) {
        TableQueue* q = nullptr;
        Partition part;
        {
          std::unique_lock lk(qmu);
          for (;;) {
            if (ltoken.stop_requested()) return;
            std::size_t per_table = 1;
            std::size_t at_once = 1;
            {
              std::lock_guard slk(mu);  // live settings: applied at the next partition
              per_table = d.settings.partitions_in_parallel;
              at_once = d.settings.tables_in_parallel;
            }
            bool unfinished = false;
            for (auto& cand : queues) {
              if (cand.waiting.empty()) {
                unfinished = unfinished || cand.in_flight > 0;
                continue;
              }
              unfinished = true;
              if (cand.in_flight >= per_table) continue;
              if (!cand.opened && open_tables >= at_once) continue;
              q = &cand;
              break;
            }
            if (q) break;
            if (!unfinished) return;
            const std::uint64_t seen = finished;
            qcv.wait(lk, ltoken, [&] { return finished != seen; });
          }
          if (!q->opened) {
            q->opened = true;
            ++open_tables;
          }
          part = q->waiting.front();
          q->waiting.pop_front();
          ++q->in_flight;
        }
        const bool limited = partition_limit != nullptr;
        if (limited && !partition_limit->acquire(ltoken)) {
          std::lock_guard lk(qmu);
          --q->in_flight;
          ++finished;
          qcv.notify_all();
          return;
        }
        // Holds the service-wide slot while copying; given back however the copy ends.
        struct Held {
          ConcurrencyLimit* limit;
          void give_back() {
            if (limit) limit->release();
            limit = nullptr;
          }
          ~Held() { give_back(); }
        } held{limited ? partition_limit.get() : nullptr};
        try {
          const std::string op =
              fmt::format("snapshot: partition {}#{}", q->def->table.qualified(), part.index);
          const std::uint64_t rows =
              with_retry(op, &Settings::snapshot_partition_retry, ltoken, [&](ExecContext& ctx) {
                return ex.snapshot->copy_partition(*q->def, part, target, ctx);
              });
          held.give_back();
          partition_done(q->def->table, part.index, rows, ltoken);
        } catch (const Cancelled&) {
          // stopped: leave the partition for next time
        } catch (const std::exception& e) {
          std::lock_guard lk(qmu);
          if (!failure) failure = e.what();
          local.request_stop();
        }
        {
          std::lock_guard lk(qmu);
          --q->in_flight;
          ++finished;
          if (q->waiting.empty() && q->in_flight == 0) --open_tables;
        }
        qcv.notify_all();
      }
    };

    {
      std::vector<std::jthread> pool;
      const std::size_t n = std::max<std::size_t>(1, workers);
      for (std::size_t i = 0; i < n; ++i) pool.emplace_back(worker);
    }  // joins
    if (failure) throw FatalError(*failure);
    if (stop.stop_requested()) throw Cancelled();
  }

  // Called once the destination committed the partition; it counts as done once saved.
  void partition_done(const TableRef& table, std::uint32_t index, std::uint64_t rows,
                      std::stop_token stop) {
    save_with_retry("store: save partition", stop, [&](Durable& dur) {
      TableLoad& tl = dur.load[table];
      if (index < tl.done.size() && !tl.done[index]) {
        tl.done[index] = true;
        tl.rows_done += rows;
      }
      tl.rows_in_flight.erase(index);
    });
  }

  Outcome stream(std::stop_token stop) {
    std::vector<TableRef> forget;
    {
      std::lock_guard lk(mu);
      forget = d.cancelled_added;
    }
    if (!forget.empty()) {
      with_retry("cdc: remove cancelled tables", &Settings::setup_retry, stop,
                 [&](ExecContext& ctx) { ex.table_setup->remove_tables(forget, ctx); });
      save_with_retry("store: save table set", stop,
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
      ExecContext ctx = context(stop);
      try {
        const Lsn from = ex.cdc->start(confirmed, defs, ctx);
        opened = true;
        if (!confirmed) {
          // A CDC-only pipe's first position: saved before anything is streamed from it.
          save_with_retry("store: save CDC position", stop, [&](Durable& dur) {
            if (!dur.cdc.confirmed) dur.cdc.confirmed = from;
          });
          confirmed = from;
        }
        for (;;) {
          ExecContext bctx = context(stop);
          CdcBatch batch = ex.cdc->pull(bctx);
          if (stop.stop_requested()) break;  // dropped unconfirmed: replayed after resume
          if (!batch.changes.empty() || !batch.schema_changes.empty()) ex.cdc->apply(batch, bctx);
          // Applied: now saved, and only then confirmed to the source.
          if (batch.end > *confirmed || !batch.changes.empty() || !batch.schema_changes.empty()) {
            const Lsn end = std::max(batch.end, *confirmed);
            const TimePoint now = clock->now();
            save_with_retry("store: save CDC position", stop, [&](Durable& dur) {
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
          record_batch(batch, *confirmed);
          check_health(0);
        }
      } catch (const Cancelled&) {
        if (!stop.stop_requested()) error = "cancelled without a stop request";
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
      if (error.empty()) return Outcome::cancelled();
      if (fatal) return Outcome::fatal(error);
      ++errors;
      check_health(errors);
      backoff("cdc", policy(&Settings::cdc_retry), errors, error, stop);
    }
  }

  void log_schema_change(const SchemaChange& sc) {
    if (sc.kind == SchemaChange::Kind::TableStopped) {
      log->error("schema change: {}", sc.description);
    } else {
      log->info("schema change: {}", sc.description);
    }
  }

  // Saved with the position of the batch that carried it: the definition from then on, or the
  // table stopped.
  static void record_schema_change(Durable& dur, const SchemaChange& sc, TimePoint now) {
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

  // The live part of CDC progress (what is saved went with the checkpoint).
  void record_batch(const CdcBatch& batch, Lsn confirmed) {
    std::lock_guard lk(mu);
    if (!batch.changes.empty()) d.cdc.last_batch_at = clock->now();
    if (batch.source_head > d.cdc.source_head) d.cdc.source_head = batch.source_head;
    d.cdc.lag_bytes = d.cdc.source_head > confirmed ? d.cdc.source_head.value - confirmed.value : 0;
    if (retry_status && retry_status->operation == "cdc") retry_status.reset();
  }

  // Asks the health policy, if the host gave one, and moves between Running and Degraded.
  void check_health(std::uint32_t consecutive_errors) {
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
        if (reason &&
            (s == State::Running || (s == State::Degraded && *reason != degraded_reason))) {
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

  Outcome remove_tables(std::stop_token stop) {
    std::vector<TableRef> refs;
    {
      std::lock_guard lk(mu);
      refs = d.pending_removed;
    }
    with_retry("modifying: remove tables", &Settings::setup_retry, stop,
               [&](ExecContext& ctx) { ex.table_setup->remove_tables(refs, ctx); });
    return Outcome::done(Trigger::TablesRemoved);
  }

  Outcome swap(std::stop_token stop) {
    std::vector<TableRef> refs;
    {
      std::lock_guard lk(mu);
      refs = d.tables;
    }
    const auto defs = definitions_of(refs);
    with_retry("resync: swap tables", &Settings::setup_retry, stop,
               [&](ExecContext& ctx) { ex.table_setup->swap_resync_tables(defs, ctx); });
    return Outcome::done(Trigger::SwapDone);
  }

  Outcome teardown(std::stop_token stop) {
    with_retry("terminating: teardown", &Settings::setup_retry, stop,
               [&](ExecContext& ctx) { ex.table_setup->teardown(ctx); });
    return Outcome::done(Trigger::Terminated);
  }

  // ---------------------------------------------------------------------------------------------

  PipeStatus status_locked() const {
    PipeStatus s;
    s.id = id;
    s.state = d.life.state();
    s.mode = d.life.mode();
    s.since = d.since;
    s.allowed_commands = d.life.allowed_commands();
    s.tables = d.tables;
    for (const auto& t : d.tables) {
      TableProgress p;
      p.table = t;
      auto it = d.load.find(t);
      if (it != d.load.end()) {
        const TableLoad& tl = it->second;
        p.planned = tl.planned;
        p.partitions_total = static_cast<std::uint32_t>(tl.partitions.size());
        p.partitions_done =
            static_cast<std::uint32_t>(std::count(tl.done.begin(), tl.done.end(), true));
        p.rows_copied = tl.rows_done;
        for (const auto& [idx, rows] : tl.rows_in_flight) p.rows_copied += rows;
        for (const auto& part : tl.partitions) p.estimated_rows += part.estimated_rows;
      }
      s.snapshot.push_back(p);
    }
    s.cdc = d.cdc;
    s.slot = d.slot;
    s.retry = retry_status;
    s.last_error = d.last_error;
    s.degraded_reason = degraded_reason;
    s.settings = d.settings;
    s.history.assign(d.history.begin(), d.history.end());
    s.transitions = d.transitions;
    for (const auto& [t, st] : d.stopped) s.stopped_tables.push_back(st);
    s.schema_changes.assign(d.schema_changes.begin(), d.schema_changes.end());
    return s;
  }
};

// -------------------------------------------------------------------------------------------------

namespace {
void check_executors(const Executors& ex) {
  if (!ex.provisioner || !ex.table_setup || !ex.snapshot || !ex.cdc) {
    throw InvalidField("executors", "all four executors are required");
  }
}
}  // namespace

Pipe::Pipe(PipeConfig config, Executors executors, PipeOptions options) {
  config.validate();
  check_executors(executors);
  if (options.store && options.store->holds(config.id)) {
    throw StoreError("the store already holds a pipe '" + config.id + "'", true);
  }
  Durable d;
  d.life = Lifecycle(config.mode);
  d.since = (options.clock ? options.clock : system_clock())->now();
  d.settings = std::move(config.settings);
  d.tables = std::move(config.tables);
  impl_ = std::make_shared<Impl>(config.id, std::move(d), std::move(executors), std::move(options));
  std::lock_guard lk(impl_->mu);
  impl_->save_locked();  // the pipe exists once its record does
}

Pipe::Pipe(const PipeRecord& record, Executors executors, PipeOptions options) {
  PipeConfig{record.id, record.lifecycle.mode(), record.tables, record.settings}.validate();
  check_executors(executors);
  if (record.lifecycle.state() == State::Unknown) {
    throw InvalidField("lifecycle.state",
                       "pipe '" + record.id + "' is in a state this build does not know");
  }
  impl_ = std::make_shared<Impl>(record.id, from_record(record), std::move(executors),
                                 std::move(options));
  Impl& i = *impl_;
  std::lock_guard lk(i.mu);
  // Carry out what the user last asked for if the pipe had not got there when it stopped.
  const State s = i.d.life.state();
  try {
    if (i.d.intent == Intent::Paused && (s == State::Running || s == State::Degraded)) {
      i.transition_locked(Trigger::Pause);
    } else if (i.d.intent == Intent::Deleted && s != State::Terminating && s != State::Terminated) {
      i.transition_locked(Trigger::Delete);
    }
  } catch (const StoreError& e) {
    i.log->error("could not carry out the saved intent: {}", e.what());
  }
}

Pipe::~Pipe() { shutdown(); }

void Pipe::start() {
  std::lock_guard lk(impl_->mu);
  impl_->started = true;
  impl_->shutting_down = false;
  impl_->ensure_runner_locked();
}

void Pipe::shutdown() {
  std::jthread runner;
  {
    std::lock_guard lk(impl_->mu);
    impl_->shutting_down = true;
    impl_->started = false;
    impl_->work_stop.request_stop();
    runner = std::move(impl_->runner);
  }
  if (runner.joinable()) runner.join();
  std::lock_guard lk(impl_->mu);
  impl_->shutting_down = false;
  impl_->runner_active = false;
}

CommandResult Pipe::pause() { return impl_->simple(Trigger::Pause, Intent::Paused); }
CommandResult Pipe::resume() { return impl_->simple(Trigger::Resume, Intent::Running); }
CommandResult Pipe::retry() { return impl_->simple(Trigger::Retry); }
CommandResult Pipe::remove() { return impl_->simple(Trigger::Delete, Intent::Deleted); }

CommandResult Pipe::resync() {
  Impl* i = impl_.get();
  return i->command(Trigger::Resync, [i] {
    std::lock_guard lk(i->mu);
    // Validate before anything is dropped.
    try {
      i->d.settings.validate();
    } catch (const InvalidField& e) {
      return Impl::invalid(e.what());
    }
    return i->apply_command_locked(Trigger::Resync,
                                   [](Durable& dur) { dur.intent = Intent::Running; });
  });
}

CommandResult Pipe::add_tables(std::vector<TableRef> add) {
  Impl* i = impl_.get();
  return i->command(Trigger::AddTables, [i, add = std::move(add)] {
    std::lock_guard lk(i->mu);
    const ApplyResult check = i->d.life.check(Trigger::AddTables);
    if (!check) return Impl::rejected(check.rejection());
    if (auto problem = i->check_new_tables_locked(add)) return Impl::invalid(*problem);
    return i->apply_command_locked(Trigger::AddTables, [&](Durable& dur) {
      dur.tables.insert(dur.tables.end(), add.begin(), add.end());
      dur.pending_added = add;
      dur.intent = Intent::Running;
    });
  });
}

CommandResult Pipe::cancel_table_addition() { return impl_->simple(Trigger::CancelTableAddition); }

CommandResult Pipe::remove_tables(std::vector<TableRef> remove) {
  Impl* i = impl_.get();
  return i->command(Trigger::RemoveTables, [i, remove = std::move(remove)] {
    std::lock_guard lk(i->mu);
    const ApplyResult check = i->d.life.check(Trigger::RemoveTables);
    if (!check) return Impl::rejected(check.rejection());
    if (remove.empty()) return Impl::invalid("no tables given");
    std::set<TableRef> unique;
    for (std::size_t k = 0; k < remove.size(); ++k) {
      if (std::find(i->d.tables.begin(), i->d.tables.end(), remove[k]) == i->d.tables.end())
        return Impl::invalid(
            fmt::format("tables[{}]: {} is not in the pipe", k, remove[k].qualified()));
      unique.insert(remove[k]);
    }
    if (unique.size() >= i->d.tables.size())
      return Impl::invalid("a pipe keeps at least one table: delete the pipe instead");
    return i->apply_command_locked(Trigger::RemoveTables, [&](Durable& dur) {
      for (const auto& t : unique) std::erase(dur.tables, t);
      dur.pending_removed.insert(dur.pending_removed.end(), unique.begin(), unique.end());
    });
  });
}

CommandResult Pipe::update_settings(Settings s) {
  Impl* i = impl_.get();
  return i->command(Trigger::UpdateSettings, [i, s = std::move(s)] {
    std::lock_guard lk(i->mu);
    const ApplyResult check = i->d.life.check(Trigger::UpdateSettings);
    if (!check) return Impl::rejected(check.rejection());
    try {
      s.validate();
    } catch (const InvalidField& e) {
      return Impl::invalid(e.what());
    }
    return i->apply_command_locked(Trigger::UpdateSettings,
                                   [&](Durable& dur) { dur.settings = s; });
  });
}

const std::string& Pipe::id() const noexcept { return impl_->id; }

State Pipe::state() const {
  std::lock_guard lk(impl_->mu);
  return impl_->d.life.state();
}

bool Pipe::wait_for(State state, std::chrono::milliseconds timeout) const {
  std::unique_lock lk(impl_->mu);
  return impl_->changed.wait_for(lk, timeout, [&] { return impl_->d.life.state() == state; });
}

PipeStatus Pipe::status() const {
  std::lock_guard lk(impl_->mu);
  return impl_->status_locked();
}

PipeRecord Pipe::record() const {
  std::lock_guard lk(impl_->mu);
  return to_record(impl_->id, impl_->d);
}

void Pipe::add_listener(std::shared_ptr<TransitionListener> listener) {
  std::lock_guard lk(impl_->mu);
  impl_->listeners.push_back(std::move(listener));
}

}  // namespace clickpipe
