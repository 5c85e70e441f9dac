// THE transition table. Every state change of a pipe is one row below; legality checks,
// allowed commands, the diagrams in docs/ and the tests all derive from or check this table.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "clickpipe/lifecycle/lifecycle_context.hpp"
#include "clickpipe/lifecycle/mode.hpp"
#include "clickpipe/lifecycle/state.hpp"
#include "clickpipe/lifecycle/trigger.hpp"

namespace clickpipe {

enum class GuardKind : std::uint8_t {
  Always,
  ModeIs,        // arg: Mode
  Resyncing,     // context.resyncing
  AddingTables,  // context.adding_tables
  PausingFor,    // arg: PauseFor
  BackToPaused,  // context.back_to_paused
  FailedIn,      // arg: State
};

struct Guard {
  GuardKind kind = GuardKind::Always;
  std::uint8_t arg = 0;

  static constexpr Guard always() noexcept { return {}; }
  static constexpr Guard mode_is(Mode m) noexcept {
    return {GuardKind::ModeIs, static_cast<std::uint8_t>(m)};
  }
  static constexpr Guard resyncing() noexcept { return {GuardKind::Resyncing, 0}; }
  static constexpr Guard adding_tables() noexcept { return {GuardKind::AddingTables, 0}; }
  static constexpr Guard pausing_for(PauseFor p) noexcept {
    return {GuardKind::PausingFor, static_cast<std::uint8_t>(p)};
  }
  static constexpr Guard back_to_paused() noexcept { return {GuardKind::BackToPaused, 0}; }
  static constexpr Guard failed_in(State s) noexcept {
    return {GuardKind::FailedIn, static_cast<std::uint8_t>(s)};
  }

  constexpr bool holds(const LifecycleContext& c) const noexcept {
    switch (kind) {
      case GuardKind::Always: return true;
      case GuardKind::ModeIs: return c.mode == static_cast<Mode>(arg);
      case GuardKind::Resyncing: return c.resyncing;
      case GuardKind::AddingTables: return c.adding_tables;
      case GuardKind::PausingFor: return c.pause_for == static_cast<PauseFor>(arg);
      case GuardKind::BackToPaused: return c.back_to_paused;
      case GuardKind::FailedIn: return c.failed_in == static_cast<State>(arg);
    }
    return false;
  }

  // Whether some context with this mode satisfies the guard.
  constexpr bool possible_in(Mode m) const noexcept {
    return kind != GuardKind::ModeIs || static_cast<Mode>(arg) == m;
  }

  friend constexpr bool operator==(Guard, Guard) noexcept = default;
};

// What a transition does to the context besides changing the state.
enum class Effect : std::uint8_t {
  None,
  RecordFailure,       // failed_in = from (flags kept, so a retry carries on with the same work)
  ClearFailure,        // failed_in = Unknown, pause_for = Pause
  BeginPause,          // pause_for = the command (pause, add_tables or remove_tables)
  BeginTableAddition,  // adding_tables = true
  RememberPaused,      // back_to_paused = true (Modifying entered from Paused)
  ForgetPaused,        // back_to_paused = false
  FinishLoad,          // adding_tables = false
  BeginResync,         // resyncing = true, every other flag and the failure cleared
  FinishResync,        // resyncing = false
};

// External rows leave the state and enter `to` (work restarts even when to == from, a re-entry).
// Internal rows change nothing but the context (update_settings, a repeated delete).
enum class TransitionKind : std::uint8_t { External, Internal };

struct TransitionRow {
  State from;
  Trigger trigger;
  Guard guard;
  State to;
  Effect effect;
  TransitionKind kind;
};

// Rows are matched in order: for one (from, trigger) the first row whose guard holds wins, so
// specific guards come before G::always(). No row leaves Terminated or Unknown.
// clang-format off
inline constexpr auto kTransitions = [] {
  // Short local names keep the rows one line each.
  using Row = TransitionRow;
  using S = State;
  using T = Trigger;
  using E = Effect;
  using G = Guard;
  constexpr TransitionKind X = TransitionKind::External;
  constexpr TransitionKind I = TransitionKind::Internal;
  return std::array{
      //  from           | trigger              | guard                                 | to             | effect               | kind
      Row{S::Provisioning, T::Provisioned,        G::always(),                            S::Setup,        E::None,               X},
      Row{S::Provisioning, T::FatalError,         G::always(),                            S::Failed,       E::RecordFailure,      X},
      Row{S::Provisioning, T::Resync,             G::always(),                            S::Provisioning, E::BeginResync,        X},
      Row{S::Provisioning, T::UpdateSettings,     G::always(),                            S::Provisioning, E::None,               I},
      Row{S::Provisioning, T::Delete,             G::always(),                            S::Terminating,  E::None,               X},

      Row{S::Setup,        T::SetupDone,          G::resyncing(),                         S::Snapshot,     E::None,               X},
      Row{S::Setup,        T::SetupDone,          G::mode_is(Mode::CdcOnly),              S::Running,      E::FinishLoad,         X},
      Row{S::Setup,        T::SetupDone,          G::always(),                            S::Snapshot,     E::None,               X},
      Row{S::Setup,        T::FatalError,         G::always(),                            S::Failed,       E::RecordFailure,      X},
      Row{S::Setup,        T::Resync,             G::always(),                            S::Setup,        E::BeginResync,        X},
      Row{S::Setup,        T::UpdateSettings,     G::always(),                            S::Setup,        E::None,               I},
      Row{S::Setup,        T::Delete,             G::always(),                            S::Terminating,  E::None,               X},

      Row{S::Snapshot,     T::SnapshotDone,       G::resyncing(),                         S::Resync,       E::None,               X},
      Row{S::Snapshot,     T::SnapshotDone,       G::mode_is(Mode::SnapshotOnly),         S::Completed,    E::FinishLoad,         X},
      Row{S::Snapshot,     T::SnapshotDone,       G::always(),                            S::Running,      E::FinishLoad,         X},
      Row{S::Snapshot,     T::CancelTableAddition, G::adding_tables(),                    S::Running,      E::FinishLoad,         X},
      Row{S::Snapshot,     T::FatalError,         G::always(),                            S::Failed,       E::RecordFailure,      X},
      Row{S::Snapshot,     T::Resync,             G::always(),                            S::Snapshot,     E::BeginResync,        X},
      Row{S::Snapshot,     T::UpdateSettings,     G::always(),                            S::Snapshot,     E::None,               I},
      Row{S::Snapshot,     T::Delete,             G::always(),                            S::Terminating,  E::None,               X},

      Row{S::Running,      T::Pause,              G::always(),                            S::Pausing,      E::BeginPause,         X},
      Row{S::Running,      T::AddTables,          G::always(),                            S::Pausing,      E::BeginPause,         X},
      Row{S::Running,      T::RemoveTables,       G::always(),                            S::Pausing,      E::BeginPause,         X},
      Row{S::Running,      T::Unhealthy,          G::always(),                            S::Degraded,     E::None,               X},
      Row{S::Running,      T::FatalError,         G::always(),                            S::Failed,       E::RecordFailure,      X},
      Row{S::Running,      T::Resync,             G::always(),                            S::Snapshot,     E::BeginResync,        X},
      Row{S::Running,      T::UpdateSettings,     G::always(),                            S::Running,      E::None,               I},
      Row{S::Running,      T::Delete,             G::always(),                            S::Terminating,  E::None,               X},

      Row{S::Pausing,      T::CdcStopped,         G::pausing_for(PauseFor::AddTables),    S::Setup,        E::BeginTableAddition, X},
      Row{S::Pausing,      T::CdcStopped,         G::pausing_for(PauseFor::RemoveTables), S::Modifying,    E::ForgetPaused,       X},
      Row{S::Pausing,      T::CdcStopped,         G::always(),                            S::Paused,       E::None,               X},
      Row{S::Pausing,      T::FatalError,         G::always(),                            S::Failed,       E::RecordFailure,      X},
      Row{S::Pausing,      T::Resync,             G::always(),                            S::Snapshot,     E::BeginResync,        X},
      Row{S::Pausing,      T::UpdateSettings,     G::always(),                            S::Pausing,      E::None,               I},
      Row{S::Pausing,      T::Delete,             G::always(),                            S::Terminating,  E::None,               X},

      Row{S::Paused,       T::Resume,             G::always(),                            S::Running,      E::None,               X},
      Row{S::Paused,       T::AddTables,          G::always(),                            S::Setup,        E::BeginTableAddition, X},
      Row{S::Paused,       T::RemoveTables,       G::always(),                            S::Modifying,    E::RememberPaused,     X},
      Row{S::Paused,       T::Resync,             G::always(),                            S::Snapshot,     E::BeginResync,        X},
      Row{S::Paused,       T::UpdateSettings,     G::always(),                            S::Paused,       E::None,               I},
      Row{S::Paused,       T::Delete,             G::always(),                            S::Terminating,  E::None,               X},

      Row{S::Modifying,    T::TablesRemoved,      G::back_to_paused(),                    S::Paused,       E::ForgetPaused,       X},
      Row{S::Modifying,    T::TablesRemoved,      G::always(),                            S::Running,      E::None,               X},
      Row{S::Modifying,    T::FatalError,         G::always(),                            S::Failed,       E::RecordFailure,      X},
      Row{S::Modifying,    T::Resync,             G::always(),                            S::Snapshot,     E::BeginResync,        X},
      Row{S::Modifying,    T::UpdateSettings,     G::always(),                            S::Modifying,    E::None,               I},
      Row{S::Modifying,    T::Delete,             G::always(),                            S::Terminating,  E::None,               X},

      Row{S::Resync,       T::SwapDone,           G::mode_is(Mode::SnapshotOnly),         S::Completed,    E::FinishResync,       X},
      Row{S::Resync,       T::SwapDone,           G::always(),                            S::Running,      E::FinishResync,       X},
      Row{S::Resync,       T::FatalError,         G::always(),                            S::Failed,       E::RecordFailure,      X},
      Row{S::Resync,       T::Resync,             G::always(),                            S::Snapshot,     E::BeginResync,        X},
      Row{S::Resync,       T::UpdateSettings,     G::always(),                            S::Resync,       E::None,               I},
      Row{S::Resync,       T::Delete,             G::always(),                            S::Terminating,  E::None,               X},

      Row{S::Completed,    T::Resync,             G::always(),                            S::Snapshot,     E::BeginResync,        X},
      Row{S::Completed,    T::UpdateSettings,     G::always(),                            S::Completed,    E::None,               I},
      Row{S::Completed,    T::Delete,             G::always(),                            S::Terminating,  E::None,               X},

      Row{S::Failed,       T::Retry,              G::failed_in(S::Provisioning),          S::Provisioning, E::ClearFailure,       X},
      Row{S::Failed,       T::Retry,              G::failed_in(S::Setup),                 S::Setup,        E::ClearFailure,       X},
      Row{S::Failed,       T::Retry,              G::failed_in(S::Snapshot),              S::Snapshot,     E::ClearFailure,       X},
      Row{S::Failed,       T::Retry,              G::failed_in(S::Running),               S::Running,      E::ClearFailure,       X},
      Row{S::Failed,       T::Retry,              G::failed_in(S::Pausing),               S::Paused,       E::ClearFailure,       X},
      Row{S::Failed,       T::Retry,              G::failed_in(S::Modifying),             S::Modifying,    E::ClearFailure,       X},
      Row{S::Failed,       T::Retry,              G::failed_in(S::Resync),                S::Resync,       E::ClearFailure,       X},
      Row{S::Failed,       T::Retry,              G::failed_in(S::Degraded),              S::Running,      E::ClearFailure,       X},
      Row{S::Failed,       T::Retry,              G::failed_in(S::Terminating),           S::Terminating,  E::ClearFailure,       X},
      Row{S::Failed,       T::Resync,             G::always(),                            S::Snapshot,     E::BeginResync,        X},
      Row{S::Failed,       T::UpdateSettings,     G::always(),                            S::Failed,       E::None,               I},
      Row{S::Failed,       T::Delete,             G::always(),                            S::Terminating,  E::None,               X},

      Row{S::Degraded,     T::Healthy,            G::always(),                            S::Running,      E::None,               X},
      Row{S::Degraded,     T::Unhealthy,          G::always(),                            S::Degraded,     E::None,               I},
      Row{S::Degraded,     T::Pause,              G::always(),                            S::Pausing,      E::BeginPause,         X},
      Row{S::Degraded,     T::FatalError,         G::always(),                            S::Failed,       E::RecordFailure,      X},
      Row{S::Degraded,     T::Resync,             G::always(),                            S::Snapshot,     E::BeginResync,        X},
      Row{S::Degraded,     T::UpdateSettings,     G::always(),                            S::Degraded,     E::None,               I},
      Row{S::Degraded,     T::Delete,             G::always(),                            S::Terminating,  E::None,               X},

      Row{S::Terminating,  T::Terminated,         G::always(),                            S::Terminated,   E::None,               X},
      Row{S::Terminating,  T::FatalError,         G::always(),                            S::Failed,       E::RecordFailure,      X},
      Row{S::Terminating,  T::Delete,             G::always(),                            S::Terminating,  E::None,               I},
  };
}();
// clang-format on

constexpr std::span<const TransitionRow> transition_table() noexcept { return kTransitions; }

// Each state's rows stand together in the table (checked below), so a lookup scans only them.
struct RowRange {
  std::size_t begin = 0;
  std::size_t end = 0;
};

inline constexpr auto kRowsByState = [] {
  std::array<RowRange, kStateCount> out{};
  for (std::size_t i = kTransitions.size(); i-- > 0;) {
    RowRange& r = out[index_of(kTransitions[i].from)];
    if (r.end == 0) r.end = i + 1;
    r.begin = i;
  }
  return out;
}();

// The index of the row that `trigger` takes from `from` in context `ctx`, if any.
constexpr std::optional<std::size_t> find_row(State from, Trigger trigger,
                                              const LifecycleContext& ctx) noexcept {
  const RowRange range = kRowsByState[index_of(from)];
  for (std::size_t i = range.begin; i < range.end; ++i) {
    const TransitionRow& r = kTransitions[i];
    if (r.trigger == trigger && r.guard.holds(ctx)) return i;
  }
  return std::nullopt;
}

// Whether any row exists for (from, trigger), whatever its guard.
constexpr bool has_rows(State from, Trigger trigger) noexcept {
  const RowRange range = kRowsByState[index_of(from)];
  for (std::size_t i = range.begin; i < range.end; ++i) {
    if (kTransitions[i].trigger == trigger) return true;
  }
  return false;
}

// Commands legal in `state` for a pipe of `mode` in some context (guards on the context, such as
// "retry goes back to where it failed", are taken as satisfiable). For the exact set of a given
// pipe use Lifecycle::allowed_commands().
constexpr TriggerSet allowed_commands(State state, Mode mode) noexcept {
  TriggerSet out;
  for (const TransitionRow& r : kTransitions) {
    if (r.from == state && is_command(r.trigger) && r.guard.possible_in(mode))
      out.insert(r.trigger);
  }
  return out;
}

// The table checks itself when it is compiled.
namespace table_detail {
constexpr bool no_row_leaves_terminal_or_unknown() {
  for (const TransitionRow& r : kTransitions) {
    if (r.from == State::Terminated || r.from == State::Unknown || r.to == State::Unknown)
      return false;
  }
  return true;
}
// A row after an unconditional row of the same (from, trigger) could never be taken.
constexpr bool every_row_reachable() {
  for (std::size_t i = 0; i < kTransitions.size(); ++i) {
    for (std::size_t j = i + 1; j < kTransitions.size(); ++j) {
      const TransitionRow& a = kTransitions[i];
      const TransitionRow& b = kTransitions[j];
      if (a.from == b.from && a.trigger == b.trigger &&
          (a.guard.kind == GuardKind::Always || a.guard == b.guard))
        return false;
    }
  }
  return true;
}
constexpr bool internal_rows_stay() {
  for (const TransitionRow& r : kTransitions) {
    if (r.kind == TransitionKind::Internal && r.to != r.from) return false;
  }
  return true;
}
constexpr bool rows_grouped_by_state() {
  for (std::size_t i = 0; i < kTransitions.size(); ++i) {
    const RowRange r = kRowsByState[index_of(kTransitions[i].from)];
    if (i < r.begin || i >= r.end) return false;
  }
  for (State s : kAllStates) {
    const RowRange r = kRowsByState[index_of(s)];
    for (std::size_t i = r.begin; i < r.end; ++i) {
      if (kTransitions[i].from != s) return false;
    }
  }
  return true;
}
static_assert(rows_grouped_by_state());
static_assert(no_row_leaves_terminal_or_unknown());
static_assert(every_row_reachable());
static_assert(internal_rows_stay());
}  // namespace table_detail

}  // namespace clickpipe
