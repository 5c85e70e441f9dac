// Row versions over the whole LSN range (the spec's destination invariants).
#include <gtest/gtest.h>

#include <random>

#include "../expect.hpp"
#include "clickpipe/change.hpp"
#include "clickpipe/error.hpp"
#include "clickpipe/lsn.hpp"

namespace clickpipe {
namespace {

Lsn at(const char* text) { return *parse_lsn(text); }

// The old scheme packed the LSN into 44 bits: 1000/100 came out below FFF/FFFFF000.
TEST(RowVersion, RowVersionsWrapPast16TiBOfWal) {
  EXPECT_LT(row_version(at("FFF/FFFFF000")), row_version(at("1000/100")));
  EXPECT_LT(row_version(at("1000/100")), row_version(at("FFFFFFFF/FFFFFFFE")));
  EXPECT_LT(row_version(at("FFFFFFFF/FFFFFFFE")), row_version(at("FFFFFFFF/FFFFFFFF")));
  EXPECT_EQ(row_version(at("FFFFFFFF/FFFFFFFF")), 0xFFFFFFFFFFFFFFFFull);
}

TEST(RowVersion, SnapshotRowsAreBelowEveryCdcVersion) {
  EXPECT_LT(kSnapshotVersion, row_version(at("0/1")));
  EXPECT_LT(kSnapshotVersion, row_version(at("0/16B3748")));
}

TEST(RowVersion, ZeroLsnFailsLoudlyInsteadOfTyingWithSnapshotRows) {
  EXPECT_THROW(row_version(at("0/0")), FatalError);
  Change c;
  c.commit_lsn = at("0/0");
  EXPECT_THROW((void)c.version(), FatalError);
}

TEST(RowVersion, ChangesOfOneTransactionShareItsVersion) {
  Change a, b;
  a.commit_lsn = b.commit_lsn = at("1000/100");
  a.position = 0;
  b.position = 5000000;  // far past what the old scheme could count
  EXPECT_EQ(a.version(), b.version());
}

// Property: for any two commit LSNs, the later one's version is larger; over the whole range,
// with the high word and the boundaries weighted in.
TEST(RowVersion, StrictlyIncreasingOverTheWholeRange) {
  std::mt19937_64 rng(20261130);
  auto draw = [&]() -> std::uint64_t {
    switch (rng() % 4) {
      case 0: return rng();
      case 1: return (rng() % 0x2000) << 32 | (rng() & 0xffffffff);  // around 16 TiB
      case 2: return 0xFFFFFFFFFFFFFFFFull - rng() % 4096;           // the top
      default: return 1 + rng() % 4096;                              // the bottom
    }
  };
  for (int i = 0; i < 200000; ++i) {
    std::uint64_t x = draw(), y = draw();
    if (x == 0 || y == 0 || x == y) continue;
    if (x > y) std::swap(x, y);
    ASSERT_LT(row_version(Lsn{x}), row_version(Lsn{y}))
        << to_string(Lsn{x}) << " " << to_string(Lsn{y});
  }
}

TEST(RowVersion, PackedLegacyVersionsFailLoudlyPastWhatTheyCanRepresent) {
  EXPECT_EQ(packed_row_version(at("FFF/FFFFFFFF"), 3), (0xFFFFFFFFFFFull << 20) | 3);
  EXPECT_EQ(packed_row_version(at("0/10"), 5000000), (0x10ull << 20) | 0xFFFFF)
      << "positions past 2^20-1 share the last";
  EXPECT_THROW(packed_row_version(at("1000/0"), 0), FatalError);
  const auto e =
      test::expect_throws<FatalError>([] { (void)packed_row_version(at("1000/100"), 0); });
  EXPECT_NE(test::message(e).find("resync"), std::string::npos) << test::message(e);
  Change c;
  c.commit_lsn = at("10/0");
  c.position = 2;
  EXPECT_EQ(c.version(RowVersions::PackedLegacy), (0x1000000000ull << 20) | 2);
  EXPECT_EQ(c.version(RowVersions::CommitLsn), 0x1000000000ull);
}

}  // namespace
}  // namespace clickpipe
