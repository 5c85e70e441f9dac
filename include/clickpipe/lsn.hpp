// Positions in the source's change stream (PostgreSQL LSNs) and the row versions derived from them.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace clickpipe {

// A WAL position, printed the PostgreSQL way: "16/B374D848" (high and low 32 bits in hex).
struct Lsn {
  std::uint64_t value = 0;

  friend constexpr auto operator<=>(Lsn, Lsn) noexcept = default;
};

std::string to_string(Lsn lsn);
// Accepts "X/Y" with 1-8 hex digits each side; anything else is nullopt.
std::optional<Lsn> parse_lsn(std::string_view text) noexcept;

// A row version from the source, never from a clock: the commit LSN itself, so versions increase
// with the WAL over its whole 64-bit range (packing the LSN into fewer bits wraps after 16 TiB of
// WAL, and from then on the older row would win). All changes of one transaction share its
// version: a writer collapses them per key to the last one, and among rows of equal version
// ReplacingMergeTree keeps the one inserted last. Snapshot rows use kSnapshotVersion, below every
// CDC version.
inline constexpr std::uint64_t kSnapshotVersion = 0;

// Throws FatalError for 0/0: PostgreSQL never commits there, and the version would tie with
// snapshot rows.
std::uint64_t row_version(Lsn commit);

}  // namespace clickpipe
