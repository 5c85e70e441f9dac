// The PostgreSQL decoders on bytes made by hand, without a server: COPY text lines and pgoutput
// messages, well-formed and mutated.
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <random>
#include <vector>

#include "../expect.hpp"
#include "../print.hpp"
#include "clickpipe/error.hpp"
#include "clickpipe/postgres/pgoutput.hpp"
#include "clickpipe/postgres/snapshot.hpp"

namespace clickpipe::postgres {
namespace {

TEST(Postgres, CopyTextDecodingUndoesEveryEscape) {
  const Values v = decode_copy_line("a\\tb\\nc\t\\N\t\\\\x\t\\101\\x42\t", 5);
  EXPECT_EQ(v[0].text, "a\tb\nc");
  EXPECT_TRUE(v[1].is_null());
  EXPECT_EQ(v[2].text, "\\x");
  EXPECT_EQ(v[3].text, "AB");
  EXPECT_FALSE(v[4].is_null());
  EXPECT_EQ(v[4].text, "");
  EXPECT_THROW(decode_copy_line("a\tb", 3), FatalError);
}

std::vector<std::uint8_t> bytes(std::initializer_list<int> v) {
  std::vector<std::uint8_t> out;
  for (int b : v) out.push_back(static_cast<std::uint8_t>(b));
  return out;
}

TEST(PgOutput, DecodesHandMadeMessages) {
  // Relation 7 public.t (id key int8, v text), then an insert.
  auto rel = bytes({'R',  0, 0,   0, 7,   'p', 'u', 'b', 'l',  'i',  'c',  0,    't',  0,
                    'd',  0, 2,   1, 'i', 'd', 0,   0,   0,    0,    20,   0xff, 0xff, 0xff,
                    0xff, 0, 'v', 0, 0,   0,   0,   25,  0xff, 0xff, 0xff, 0xff});
  auto ins = bytes({'I', 0, 0, 0, 7, 'N', 0, 2, 't', 0, 0, 0, 1, '5', 'u'});
  pgoutput::Assembler a;
  EXPECT_FALSE(a.feed(pgoutput::decode(rel)));
  EXPECT_THROW(a.feed(pgoutput::decode(ins)), FatalError) << "a change outside a transaction";
  auto begin = bytes({'B', 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9});
  auto commit = bytes({'C', 0,                      // flags
                       0,   0, 0, 0, 0, 0, 0, 1,    // commit LSN
                       0,   0, 0, 0, 0, 0, 0, 2,    // end LSN
                       0,   0, 0, 0, 0, 0, 0, 0});  // commit time
  pgoutput::Assembler b;
  b.feed(pgoutput::decode(rel));
  b.feed(pgoutput::decode(begin));
  b.feed(pgoutput::decode(ins));
  auto txn = b.feed(pgoutput::decode(commit));
  ASSERT_TRUE(txn);
  ASSERT_EQ(txn->changes.size(), 1u);
  EXPECT_EQ(txn->changes[0].table.name, "t");
  EXPECT_EQ(txn->changes[0].values[0].text, "5");
  EXPECT_EQ(txn->changes[0].values[1].kind, Datum::Kind::UnchangedToast);
  EXPECT_EQ(txn->commit_lsn, Lsn{1});
  EXPECT_EQ(txn->end_lsn, Lsn{2});
}

TEST(PgOutput, SeededRandomMutationsNeverCrashOrReadOutOfBounds) {
  const std::vector<std::vector<std::uint8_t>> seeds = {
      bytes({'R', 0, 0, 0, 7, 'p', 0, 't', 0, 'd', 0, 1, 1, 'i', 0, 0, 0, 0, 20, 0, 0, 0, 0}),
      bytes({'I', 0, 0, 0, 7, 'N', 0, 1, 't', 0, 0, 0, 1, '5'}),
      bytes({'U', 0, 0, 0, 7, 'K', 0, 1, 't', 0, 0, 0, 1, '1', 'N', 0, 1, 'n'}),
      bytes({'D', 0, 0, 0, 7, 'O', 0, 1, 'u'}),
      bytes({'T', 0, 0, 0, 2, 0, 0, 0, 0, 7, 0, 0, 0, 8}),
      bytes({'B', 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9}),
      bytes({'Y', 0, 0, 0, 5, 's', 0, 'n', 0}),
      bytes({'O', 0, 0, 0, 0, 0, 0, 0, 1, 'o', 0})};
  // Every seed is whole: it decodes, any message cut short of it is refused, and so is one
  // byte more. A decoder that read past the end, or ignored what it did not read, fails here.
  for (std::size_t i = 0; i < seeds.size(); ++i) {
    const std::vector<std::uint8_t>& seed = seeds[i];
    EXPECT_NO_THROW(pgoutput::decode(seed)) << "seed " << i;
    for (std::size_t cut = 0; cut < seed.size(); ++cut) {
      const std::vector<std::uint8_t> part(seed.begin(), seed.begin() + static_cast<long>(cut));
      test::expect_throws<FatalError>(
          [&] { pgoutput::decode(part); },
          "seed " + std::to_string(i) + " cut to " + std::to_string(cut) + " bytes");
    }
    std::vector<std::uint8_t> longer = seed;
    longer.push_back(0);
    test::expect_throws<FatalError>([&] { pgoutput::decode(longer); },
                                    "seed " + std::to_string(i) + " and a byte more");
  }
  std::mt19937 rng(20261126);
  int decoded = 0, refused = 0;
  for (int i = 0; i < 200000; ++i) {
    std::vector<std::uint8_t> m = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 4) {
        case 0:
          if (!m.empty()) m[rng() % m.size()] = static_cast<std::uint8_t>(rng());
          break;
        case 1:
          if (!m.empty()) m.resize(rng() % m.size());
          break;
        case 2: m.push_back(static_cast<std::uint8_t>(rng())); break;
        default:
          if (m.size() > 1) m.insert(m.begin() + static_cast<long>(rng() % m.size()), 0xff);
      }
    }
    try {
      pgoutput::Assembler a;
      a.feed(pgoutput::decode(seeds[0]));
      a.feed(pgoutput::decode(seeds[5]));
      a.feed(pgoutput::decode(m));
      ++decoded;
    } catch (const FatalError&) {
      ++refused;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "malformed input must be a FatalError, got: " << e.what();
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(decoded, 0);
}

}  // namespace
}  // namespace clickpipe::postgres
