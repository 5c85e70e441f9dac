// The few facts besides the state that decide where a trigger leads (the guards' inputs).
#pragma once

#include <cstdint>
#include <string_view>

#include "clickpipe/lifecycle/mode.hpp"
#include "clickpipe/lifecycle/state.hpp"

namespace clickpipe {

// Why a pipe is in Pausing: what it does once CDC has stopped.
enum class PauseFor : std::uint8_t { Pause, AddTables, RemoveTables };

constexpr std::string_view to_string(PauseFor p) noexcept {
  switch (p) {
    case PauseFor::Pause: return "pause";
    case PauseFor::AddTables: return "add_tables";
    case PauseFor::RemoveTables: return "remove_tables";
  }
  return "pause";
}

struct LifecycleContext {
  Mode mode = Mode::InitialLoadAndCdc;
  State failed_in = State::Unknown;  // in Failed: where the error happened (retry goes back there)
  PauseFor pause_for = PauseFor::Pause;  // in Pausing: what follows the stop
  bool resyncing = false;       // Setup/Snapshot/Resync belong to a resync (load `_resync` tables)
  bool adding_tables = false;   // Setup/Snapshot cover only tables added to a running pipe
  bool back_to_paused = false;  // Modifying returns to Paused (it was entered from Paused)

  friend constexpr bool operator==(const LifecycleContext&, const LifecycleContext&) = default;
};

}  // namespace clickpipe
