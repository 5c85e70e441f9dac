// What moves a pipe: commands from users and events from executors.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string_view>

namespace clickpipe {

enum class Trigger : std::uint8_t {
  // Commands (user intent).
  Pause,
  Resume,
  Retry,
  Resync,
  AddTables,
  CancelTableAddition,
  RemoveTables,
  UpdateSettings,
  Delete,
  // Events (reported by executors and the runtime).
  Provisioned,
  SetupDone,
  SnapshotDone,
  CdcStopped,
  TablesRemoved,
  SwapDone,
  Terminated,
  FatalError,
  Unhealthy,  // health policy: only raised when the caller opted into one
  Healthy,
};

inline constexpr std::size_t kTriggerCount = static_cast<std::size_t>(Trigger::Healthy) + 1;

inline constexpr std::array<Trigger, kTriggerCount> kAllTriggers = {
    Trigger::Pause,        Trigger::Resume,         Trigger::Retry,
    Trigger::Resync,       Trigger::AddTables,      Trigger::CancelTableAddition,
    Trigger::RemoveTables, Trigger::UpdateSettings, Trigger::Delete,
    Trigger::Provisioned,  Trigger::SetupDone,      Trigger::SnapshotDone,
    Trigger::CdcStopped,   Trigger::TablesRemoved,  Trigger::SwapDone,
    Trigger::Terminated,   Trigger::FatalError,     Trigger::Unhealthy,
    Trigger::Healthy,
};

constexpr bool is_command(Trigger t) noexcept { return t <= Trigger::Delete; }
constexpr bool is_event(Trigger t) noexcept { return !is_command(t); }

constexpr std::string_view to_string(Trigger t) noexcept {
  switch (t) {
    case Trigger::Pause: return "pause";
    case Trigger::Resume: return "resume";
    case Trigger::Retry: return "retry";
    case Trigger::Resync: return "resync";
    case Trigger::AddTables: return "add_tables";
    case Trigger::CancelTableAddition: return "cancel_table_addition";
    case Trigger::RemoveTables: return "remove_tables";
    case Trigger::UpdateSettings: return "update_settings";
    case Trigger::Delete: return "delete";
    case Trigger::Provisioned: return "provisioned";
    case Trigger::SetupDone: return "setup_done";
    case Trigger::SnapshotDone: return "snapshot_done";
    case Trigger::CdcStopped: return "cdc_stopped";
    case Trigger::TablesRemoved: return "tables_removed";
    case Trigger::SwapDone: return "swap_done";
    case Trigger::Terminated: return "terminated";
    case Trigger::FatalError: return "fatal_error";
    case Trigger::Unhealthy: return "unhealthy";
    case Trigger::Healthy: return "healthy";
  }
  return "unknown";
}

constexpr std::optional<Trigger> parse_trigger(std::string_view text) noexcept {
  for (Trigger t : kAllTriggers) {
    if (to_string(t) == text) return t;
  }
  return std::nullopt;
}

// A small constexpr set of triggers (a bit mask), e.g. the commands allowed now.
class TriggerSet {
 public:
  constexpr TriggerSet() noexcept = default;
  constexpr TriggerSet(std::initializer_list<Trigger> ts) noexcept {
    for (Trigger t : ts) insert(t);
  }

  constexpr void insert(Trigger t) noexcept { bits_ |= bit(t); }
  constexpr bool contains(Trigger t) const noexcept { return (bits_ & bit(t)) != 0; }
  constexpr bool empty() const noexcept { return bits_ == 0; }
  constexpr std::size_t size() const noexcept {
    std::size_t n = 0;
    for (Trigger t : kAllTriggers) n += contains(t) ? 1 : 0;
    return n;
  }
  constexpr std::uint32_t bits() const noexcept { return bits_; }
  friend constexpr bool operator==(TriggerSet, TriggerSet) noexcept = default;

  // Calls f(trigger) for each member, in declaration order.
  template <class F>
  constexpr void for_each(F&& f) const {
    for (Trigger t : kAllTriggers) {
      if (contains(t)) f(t);
    }
  }

 private:
  static constexpr std::uint32_t bit(Trigger t) noexcept {
    return std::uint32_t{1} << static_cast<unsigned>(t);
  }
  std::uint32_t bits_ = 0;
};

}  // namespace clickpipe
