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

// How a pipe's rows are versioned, saved with the pipe. Pipes created before the commit-LSN scheme
// wrote versions that pack the LSN into the high 44 bits and the change's position in its
// transaction into the low 20; their tables keep that scheme (a new version must exceed the old
// ones of the same key) until a resync rebuilds them.
enum class RowVersions : std::uint8_t { CommitLsn, PackedLegacy };

// The packed scheme. It cannot represent a commit past FFF/FFFFFFFF (16 TiB of WAL): throws
// FatalError asking for a resync there instead of wrapping (the older row would win from then on).
std::uint64_t packed_row_version(Lsn commit, std::uint64_t position_in_txn);

}  // namespace clickpipe
