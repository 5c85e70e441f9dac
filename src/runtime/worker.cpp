// The worker: one thread per pipe while its state has work. It runs the state's work, then saves
// the event the work ended with; the short states' work (provision, setup, remove, swap,
// teardown) is here too, the snapshot and CDC in their own files.
#include <fmt/format.h>
#include <spdlog/logger.h>

#include "clickpipe/format.hpp"
#include "pipe_impl.hpp"

namespace clickpipe {

namespace runtime_detail {

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

}  // namespace runtime_detail

using runtime_detail::work_for;

namespace {

const runtime_detail::OperationId save_transition{runtime_detail::Operation::SaveTransition, {}};

}  // namespace

void Pipe::Impl::ensure_runner_locked() {
  if (!started || shutting_down || runner_active || work_for(d.life.state()) == Work::None) return;
  if (runner.joinable()) runner.join();  // the old runner has left its loop; it only returns
  runner_active = true;
  runner = std::jthread([this] { run(); });
}

void Pipe::Impl::run() {
  for (;;) {
    std::unique_lock lk(mu);
    const Work work = work_for(d.life.state());
    // A store that cannot save stops the work where it is: a restart or a save that goes
    // through again moves it on.
    if (shutting_down || work == Work::None || store_failed) {
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
    } catch (const runtime_detail::StoreCannotSave&) {
      outcome = Outcome::cancelled();  // recorded where the store refused; the loop ends
    } catch (const FatalError& e) {
      outcome = Outcome::fatal(e.what());
    } catch (const TransientError& e) {
      outcome = Outcome::fatal(e.what());  // escaped a retry loop: nothing left to try
    } catch (const std::exception& e) {
      outcome = Outcome::fatal(e.what());
    }

    // The work is done: its event must be saved before it counts. A store that fails for now
    // keeps the pipe here, retrying, until it saves or a command moves the pipe on; one that
    // refuses for good stops the worker.
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
        if (r) log->debug("{}", r.transition());
        if (retrying && retrying->operation == save_transition) retrying.reset();
        lk.unlock();
        break;
      } catch (const StoreError& e) {
        if (!e.transient()) {
          record_store_failure_locked(Operation::SaveTransition, attempt, e);
          lk.unlock();
          break;
        }
        error = e.what();
        policy = runtime_detail::store_retry(d.settings);
      }
      lk.unlock();
      try {
        backoff(save_transition, policy, attempt, error, stop);
      } catch (const Cancelled&) {
        break;
      }
    }
    deliver();
  }
}

Pipe::Impl::Outcome Pipe::Impl::perform(Work work, std::stop_token stop) {
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

Pipe::Impl::Outcome Pipe::Impl::provision(std::stop_token stop) {
  PipeInfo info;
  {
    std::lock_guard lk(mu);
    info = PipeInfo{id, d.life.mode(), d.tables};
  }
  with_retry({Operation::Provision, {}}, &Settings::provisioning_retry, stop,
             [&](ExecContext& ctx) { ex.provisioner->provision(info, ctx); });
  return Outcome::done(Trigger::Provisioned);
}

// Reads and records definitions of `refs` and, unless `create` is false, creates their
// destination tables.
void Pipe::Impl::set_up_tables(const std::vector<TableRef>& refs, std::stop_token stop,
                               bool create) {
  auto defs =
      with_retry({Operation::ReadDefinitions, {}}, &Settings::setup_retry, stop,
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
  if (create) {
    with_retry({Operation::CreateTables, {}}, &Settings::setup_retry, stop, [&](ExecContext& ctx) {
      ex.table_setup->create_tables(defs, TableTarget::Main, ctx);
    });
  }
  save_with_retry(Operation::SaveDefinitions, stop, [&](Durable& dur) {
    for (const auto& def : defs) dur.definitions[def.table] = def;
  });
}

Pipe::Impl::Outcome Pipe::Impl::setup(std::stop_token stop) {
  std::vector<TableRef> refs;
  bool resyncing = false;
  {
    std::lock_guard lk(mu);
    refs = d.life.context().adding_tables ? d.pending_added : d.tables;
    resyncing = d.life.context().resyncing;
  }
  // A resync loads into `_resync` copies made in Snapshot and swaps them in; the tables it replaces
  // may have the old layout, which creating them here would rightly refuse to adopt.
  set_up_tables(refs, stop, !resyncing);
  return Outcome::done(Trigger::SetupDone);
}

std::vector<TableDefinition> Pipe::Impl::definitions_of(const std::vector<TableRef>& refs) {
  std::lock_guard lk(mu);
  std::vector<TableDefinition> out;
  for (const auto& r : refs) out.push_back(d.definitions.at(r));
  return out;
}

Pipe::Impl::Outcome Pipe::Impl::remove_tables(std::stop_token stop) {
  std::vector<TableRef> refs;
  {
    std::lock_guard lk(mu);
    refs = d.pending_removed;
  }
  with_retry({Operation::RemoveTables, {}}, &Settings::setup_retry, stop,
             [&](ExecContext& ctx) { ex.table_setup->remove_tables(refs, ctx); });
  return Outcome::done(Trigger::TablesRemoved);
}

Pipe::Impl::Outcome Pipe::Impl::swap(std::stop_token stop) {
  std::vector<TableRef> refs;
  {
    std::lock_guard lk(mu);
    refs = d.tables;
  }
  const auto defs = definitions_of(refs);
  with_retry({Operation::SwapTables, {}}, &Settings::setup_retry, stop,
             [&](ExecContext& ctx) { ex.table_setup->swap_resync_tables(defs, ctx); });
  return Outcome::done(Trigger::SwapDone);
}

Pipe::Impl::Outcome Pipe::Impl::teardown(std::stop_token stop) {
  with_retry({Operation::Teardown, {}}, &Settings::setup_retry, stop,
             [&](ExecContext& ctx) { ex.table_setup->teardown(ctx); });
  bool drop = false;
  // Every table the pipe may have made, definitions or not (a resync forgets them until it
  // reads them again): its tables, additions pending or cancelled.
  std::vector<TableRef> refs;
  {
    std::lock_guard lk(mu);
    drop = d.drop_destination;
    refs = d.tables;
    refs.insert(refs.end(), d.pending_added.begin(), d.pending_added.end());
    refs.insert(refs.end(), d.cancelled_added.begin(), d.cancelled_added.end());
  }
  if (drop) {
    with_retry({Operation::DropDestination, {}}, &Settings::setup_retry, stop,
               [&](ExecContext& ctx) { ex.table_setup->drop_destination_tables(refs, ctx); });
  }
  return Outcome::done(Trigger::Terminated);
}

}  // namespace clickpipe
