// The initial load's reads on the test server (./scripts/test.sh; CLICKPIPE_PG_* must be set,
// these tests never skip): partitions planned from the planner's estimate, each copied with COPY
// under the slot's exported snapshot, and a snapshot that is gone reported so the caller can read
// a fresh one.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../expect.hpp"
#include "../print.hpp"
#include "clickpipe/postgres/catalog.hpp"
#include "clickpipe/postgres/snapshot.hpp"
#include "pg_fixtures.hpp"

namespace clickpipe::postgres {
namespace {

using namespace pgtest;

// Order-independent fingerprint of rows (id, text): count, sums and a mixed sum.
struct Fingerprint {
  std::uint64_t rows = 0, ids = 0, lengths = 0, mixed = 0;
  void add(const Values& v) {
    const std::uint64_t id = std::stoull(v.at(0).text);
    const std::uint64_t len = v.at(1).is_null() ? 0 : v.at(1).text.size();
    ++rows;
    ids += id;
    lengths += len;
    mixed += (id * 2654435761u) ^ (len * 40503u);
  }
  void merge(const Fingerprint& o) {
    rows += o.rows;
    ids += o.ids;
    lengths += o.lengths;
    mixed += o.mixed;
  }
  friend bool operator==(const Fingerprint&, const Fingerprint&) = default;
};

TEST(Postgres, AMillionRowsSnapshottedInPartitionsEqualTheSource) {
  Connection c = sql();
  const std::string t = unique("million");
  c.exec("CREATE TABLE " + t + " (id int8 PRIMARY KEY, v text)");
  c.exec("INSERT INTO " + t +
         " SELECT g, repeat(chr(97 + (g % 26)::int), (g % 37)::int) FROM generate_series(1, "
         "1000000) g");
  c.exec("ANALYZE " + t);
  const TableDefinition def = read_definitions(c, std::vector<TableRef>{{"public", t}}).at(0);

  // The slot's exported snapshot: rows written after it must not be copied.
  const std::string slot = unique("snap_slot");
  Connection repl = Connection::open(settings(), true);
  const CreatedSlot created = create_slot(repl, c, slot);
  ASSERT_FALSE(created.snapshot_name.empty());
  Connection writer = sql();
  writer.exec("INSERT INTO " + t + " VALUES (2000001, 'after the snapshot')");
  writer.exec("DELETE FROM " + t + " WHERE id = 5");

  const auto parts = plan_partitions(c, def, 100000, 1000);
  EXPECT_GE(parts.size(), 8u);
  EXPECT_LE(parts.size(), 12u);
  EXPECT_TRUE(parts.front().begin.empty());
  EXPECT_TRUE(parts.back().end.empty());

  // One partition after another, each in its own transaction under the same exported snapshot
  // (the copier does the same, on one connection per partition).
  Fingerprint got;
  for (const Partition& p : parts) {
    Fingerprint part;
    const std::uint64_t n =
        copy_partition(c, def, p, created.snapshot_name, [&](std::vector<Values>&& rows) {
          for (const auto& r : rows) part.add(r);
        });
    EXPECT_EQ(n, part.rows) << "partition " << p.index << " counted as it was read";
    got.merge(part);
  }
  Fingerprint want;
  for (std::uint64_t id = 1; id <= 1000000; ++id) {
    want.add({Datum::of(std::to_string(id)), Datum::of(std::string(id % 37, 'x'))});
  }
  EXPECT_EQ(got.rows, 1000000u);
  EXPECT_EQ(got, want) << "the snapshot has exactly the rows at the slot's consistent point";
  drop_slot(c, slot);
}

TEST(Postgres, AGoneSnapshotIsReportedSoTheCallerReadsAFreshOne) {
  Connection c = sql();
  const std::string t = unique("gone");
  c.exec("CREATE TABLE " + t + " (id int8 PRIMARY KEY, v text)");
  c.exec("INSERT INTO " + t + " SELECT g, 'x' FROM generate_series(1, 100) g");
  const TableDefinition def = read_definitions(c, std::vector<TableRef>{{"public", t}}).at(0);
  const std::string slot = unique("gone_slot");
  std::string snapshot;
  {
    Connection repl = Connection::open(settings(), true);
    snapshot = create_slot(repl, c, slot).snapshot_name;
  }  // the exporting connection closes, as after a restart
  ASSERT_FALSE(snapshot.empty());
  const Partition all{0, "", "", 100};
  std::uint64_t n = 0;
  auto count = [&](std::vector<Values>&& r) { n += r.size(); };
  test::expect_throws<SnapshotGone>([&] { copy_partition(c, def, all, snapshot, count); },
                                    "a snapshot whose exporter closed");
  EXPECT_EQ(n, 0u) << "nothing is read under a snapshot that is gone";
  // The caller's way out, on the same connection (the failed transaction was rolled back).
  EXPECT_EQ(copy_partition(c, def, all, "", count), 100u);
  EXPECT_EQ(n, 100u);
  // Re-running slot creation after a crash returns the slot as it is.
  Connection repl = Connection::open(settings(), true);
  const CreatedSlot again = create_slot(repl, c, slot);
  EXPECT_TRUE(again.snapshot_name.empty());
  drop_slot(c, slot);
}

}  // namespace
}  // namespace clickpipe::postgres
