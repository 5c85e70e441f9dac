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

// A row version from the source, never from a clock: the commit LSN in the high bits and the
// change's position inside its transaction in the low kVersionSeqBits. Changes past position
// 2^20-1 in one transaction share the last version (ClickHouse then keeps the row inserted last,
// which is still the latest). Snapshot rows use version 0, below every CDC change.
inline constexpr unsigned kVersionSeqBits = 20;
inline constexpr std::uint64_t kMaxVersionedLsn = (std::uint64_t{1} << (64 - kVersionSeqBits)) - 1;

// Precondition: commit.value <= kMaxVersionedLsn (16 TiB of WAL); checked by the caller that
// reads LSNs from a server.
constexpr std::uint64_t row_version(Lsn commit, std::uint64_t position_in_txn) noexcept {
  constexpr std::uint64_t kSeqMax = (std::uint64_t{1} << kVersionSeqBits) - 1;
  const std::uint64_t seq = position_in_txn < kSeqMax ? position_in_txn : kSeqMax;
  return (commit.value << kVersionSeqBits) | seq;
}

}  // namespace clickpipe
