#include "clickpipe/lsn.hpp"

#include <algorithm>
#include <cstdio>

#include "clickpipe/error.hpp"

namespace clickpipe {

std::string to_string(Lsn lsn) {
  char buf[20];
  const auto hi = static_cast<unsigned>(lsn.value >> 32);
  const auto lo = static_cast<unsigned>(lsn.value & 0xffffffffu);
  const int n = std::snprintf(buf, sizeof buf, "%X/%X", hi, lo);
  return std::string(buf, static_cast<std::size_t>(n));
}

std::optional<Lsn> parse_lsn(std::string_view text) noexcept {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto hex = [](std::string_view part) -> std::optional<std::uint64_t> {
    if (part.empty() || part.size() > 8) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : part) {
      int d = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                       : -1;
      if (d < 0) return std::nullopt;
      v = v * 16 + static_cast<std::uint64_t>(d);
    }
    return v;
  };
  auto hi = hex(text.substr(0, slash));
  auto lo = hex(text.substr(slash + 1));
  if (!hi || !lo) return std::nullopt;
  return Lsn{(*hi << 32) | *lo};
}

std::uint64_t row_version(Lsn commit) {
  if (commit.value == kSnapshotVersion) {
    throw FatalError("commit LSN 0/0 cannot version a change: it would tie with snapshot rows");
  }
  return commit.value;
}

std::uint64_t packed_row_version(Lsn commit, std::uint64_t position_in_txn) {
  constexpr unsigned kSeqBits = 20;
  constexpr std::uint64_t kMaxLsn = (std::uint64_t{1} << (64 - kSeqBits)) - 1;
  constexpr std::uint64_t kSeqMax = (std::uint64_t{1} << kSeqBits) - 1;
  if (commit.value == kSnapshotVersion || commit.value > kMaxLsn) {
    throw FatalError("commit LSN " + to_string(commit) +
                     " is past what this pipe's row versions can represent (they were written by "
                     "an older clickpipe, packed into 44 bits): resync the pipe to move it to "
                     "versions that cover the whole LSN range");
  }
  return (commit.value << kSeqBits) | std::min(position_in_txn, kSeqMax);
}

}  // namespace clickpipe
