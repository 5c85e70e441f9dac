// The lifecycle spec (shared/design/lifecycle.md) written out by hand, independently of the
// transition table, so the exhaustive tests compare two separate readings of the spec.
#pragma once

#include <vector>

#include "../print.hpp"
#include "clickpipe/clickpipe.hpp"

namespace clickpipe::test {

struct Expected {
  bool ok = false;
  State to = State::Unknown;
  bool internal = false;
  RejectReason reason = RejectReason::NotAllowed;
};

inline Expected go(State to) { return {true, to, false, {}}; }
inline Expected stay() { return {true, State::Unknown, true, {}}; }
inline Expected no(RejectReason r) { return {false, State::Unknown, false, r}; }

inline Expected expect(State s, Trigger t, const LifecycleContext& c) {
  using S = State;
  if (s == S::Unknown) return no(RejectReason::UnknownState);
  if (s == S::Terminated) return no(RejectReason::FinalState);
  const bool live = s != S::Terminating;
  const Expected refuse =
      no(is_command(t) ? RejectReason::NotAllowed : RejectReason::UnexpectedEvent);

  switch (t) {
    case Trigger::Pause: return s == S::Running || s == S::Degraded ? go(S::Pausing) : refuse;
    case Trigger::Resume: return s == S::Paused ? go(S::Running) : refuse;
    case Trigger::Retry:
      if (s != S::Failed) return refuse;
      switch (c.failed_in) {
        case S::Provisioning:
        case S::Setup:
        case S::Snapshot:
        case S::Running:
        case S::Modifying:
        case S::Resync:
        case S::Terminating: return go(c.failed_in);
        case S::Pausing: return go(S::Paused);
        case S::Degraded: return go(S::Running);
        default: return no(RejectReason::GuardFailed);
      }
    case Trigger::Resync:
      if (!live) return refuse;
      if (s == S::Provisioning || s == S::Setup) return go(s);  // nothing loaded yet: restart
      return go(S::Snapshot);
    case Trigger::AddTables:
      if (s == S::Running) return go(S::Pausing);
      if (s == S::Paused) return go(S::Setup);
      return refuse;
    case Trigger::CancelTableAddition:
      if (s != S::Snapshot) return refuse;
      return c.adding_tables ? go(S::Running) : no(RejectReason::GuardFailed);
    case Trigger::RemoveTables:
      if (s == S::Running) return go(S::Pausing);
      if (s == S::Paused) return go(S::Modifying);
      return refuse;
    case Trigger::UpdateSettings: return live ? stay() : refuse;
    case Trigger::Delete: return s == S::Terminating ? stay() : go(S::Terminating);
    case Trigger::Provisioned: return s == S::Provisioning ? go(S::Setup) : refuse;
    case Trigger::SetupDone:
      if (s != S::Setup) return refuse;
      if (c.resyncing) return go(S::Snapshot);
      return c.mode == Mode::CdcOnly ? go(S::Running) : go(S::Snapshot);
    case Trigger::SnapshotDone:
      if (s != S::Snapshot) return refuse;
      if (c.resyncing) return go(S::Resync);
      return c.mode == Mode::SnapshotOnly ? go(S::Completed) : go(S::Running);
    case Trigger::CdcStopped:
      if (s != S::Pausing) return refuse;
      switch (c.pause_for) {
        case PauseFor::AddTables: return go(S::Setup);
        case PauseFor::RemoveTables: return go(S::Modifying);
        case PauseFor::Pause: return go(S::Paused);
      }
      return refuse;
    case Trigger::TablesRemoved:
      if (s != S::Modifying) return refuse;
      return c.back_to_paused ? go(S::Paused) : go(S::Running);
    case Trigger::SwapDone:
      if (s != S::Resync) return refuse;
      return c.mode == Mode::SnapshotOnly ? go(S::Completed) : go(S::Running);
    case Trigger::Terminated: return s == S::Terminating ? go(S::Terminated) : refuse;
    case Trigger::FatalError: return has_work(s) ? go(S::Failed) : refuse;
    case Trigger::Unhealthy:
      if (s == S::Running) return go(S::Degraded);
      return s == S::Degraded ? stay() : refuse;
    case Trigger::Healthy: return s == S::Degraded ? go(S::Running) : refuse;
  }
  return refuse;
}

// Every context that can matter to a guard: 3 modes x 14 failed_in x 3 pause reasons x 8 flags.
inline std::vector<LifecycleContext> all_contexts() {
  std::vector<LifecycleContext> out;
  for (Mode m : kAllModes)
    for (State f : kAllStates)
      for (PauseFor p : {PauseFor::Pause, PauseFor::AddTables, PauseFor::RemoveTables})
        for (int flags = 0; flags < 8; ++flags)
          out.push_back(LifecycleContext{.mode = m,
                                         .failed_in = f,
                                         .pause_for = p,
                                         .resyncing = (flags & 1) != 0,
                                         .adding_tables = (flags & 2) != 0,
                                         .back_to_paused = (flags & 4) != 0});
  return out;
}

// The spec's command table: where each command is legal at all.
inline bool command_legal_somewhere_in(Trigger command, State s) {
  using S = State;
  if (s == S::Unknown || s == S::Terminated) return false;
  switch (command) {
    case Trigger::Pause: return s == S::Running || s == S::Degraded;
    case Trigger::Resume: return s == S::Paused;
    case Trigger::Retry: return s == S::Failed;
    case Trigger::Resync: return s != S::Terminating;
    case Trigger::AddTables: return s == S::Running || s == S::Paused;
    case Trigger::CancelTableAddition: return s == S::Snapshot;
    case Trigger::RemoveTables: return s == S::Running || s == S::Paused;
    case Trigger::UpdateSettings: return s != S::Terminating;
    case Trigger::Delete: return true;
    default: return false;
  }
}

}  // namespace clickpipe::test
