// The states of a Postgres ClickPipe, with the exact strings the upstream API uses.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace clickpipe {

// Order is part of the stored format's meaning only through the strings, never the numbers:
// records store `to_string(state)`, so reordering here is safe.
enum class State : std::uint8_t {
  Provisioning,
  Setup,
  Snapshot,
  Running,
  Pausing,
  Paused,
  Modifying,
  Resync,
  Completed,
  Failed,
  Degraded,
  Terminating,
  Terminated,
  // A state this build does not know (a newer server, or another pipe kind's state).
  Unknown,
};

inline constexpr std::size_t kStateCount = static_cast<std::size_t>(State::Unknown) + 1;

inline constexpr std::array<State, kStateCount> kAllStates = {
    State::Provisioning, State::Setup,       State::Snapshot,   State::Running,   State::Pausing,
    State::Paused,       State::Modifying,   State::Resync,     State::Completed, State::Failed,
    State::Degraded,     State::Terminating, State::Terminated, State::Unknown,
};

constexpr std::size_t index_of(State s) noexcept { return static_cast<std::size_t>(s); }

constexpr std::string_view to_string(State s) noexcept {
  switch (s) {
    case State::Provisioning: return "Provisioning";
    case State::Setup: return "Setup";
    case State::Snapshot: return "Snapshot";
    case State::Running: return "Running";
    case State::Pausing: return "Pausing";
    case State::Paused: return "Paused";
    case State::Modifying: return "Modifying";
    case State::Resync: return "Resync";
    case State::Completed: return "Completed";
    case State::Failed: return "Failed";
    case State::Degraded: return "Degraded";
    case State::Terminating: return "Terminating";
    case State::Terminated: return "Terminated";
    case State::Unknown: break;
  }
  return "Unknown";
}

// Exact, case-sensitive match on the upstream strings. Anything else, including "Unknown" itself,
// other pipe kinds' states ("Stopped", "InternalError") and future states, is State::Unknown.
constexpr State parse_state(std::string_view text) noexcept {
  for (State s : kAllStates) {
    if (s != State::Unknown && to_string(s) == text) return s;
  }
  return State::Unknown;
}

// No transition leaves a final state.
constexpr bool is_final(State s) noexcept { return s == State::Terminated; }

// A pipe in one of these states has work in progress on a worker (an executor is called).
constexpr bool has_work(State s) noexcept {
  switch (s) {
    case State::Provisioning:
    case State::Setup:
    case State::Snapshot:
    case State::Running:
    case State::Pausing:
    case State::Modifying:
    case State::Resync:
    case State::Degraded:
    case State::Terminating: return true;
    default: return false;
  }
}

}  // namespace clickpipe
