// What a pipe copies: the initial load, the change stream, or both.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace clickpipe {

enum class Mode : std::uint8_t {
  InitialLoadAndCdc,  // Setup -> Snapshot -> Running (the default)
  CdcOnly,            // Setup -> Running; the slot is created on entering Running
  SnapshotOnly,       // Setup -> Snapshot -> Completed; no slot is kept
};

inline constexpr std::array<Mode, 3> kAllModes = {Mode::InitialLoadAndCdc, Mode::CdcOnly,
                                                  Mode::SnapshotOnly};

constexpr std::string_view to_string(Mode m) noexcept {
  switch (m) {
    case Mode::InitialLoadAndCdc: return "initial_load_and_cdc";
    case Mode::CdcOnly: return "cdc_only";
    case Mode::SnapshotOnly: return "snapshot_only";
  }
  return "initial_load_and_cdc";
}

// Unlike states, an unknown mode is an error for the caller to report: running a pipe in a mode we
// do not understand would copy the wrong data.
constexpr std::optional<Mode> parse_mode(std::string_view text) noexcept {
  for (Mode m : kAllModes) {
    if (to_string(m) == text) return m;
  }
  return std::nullopt;
}

}  // namespace clickpipe
