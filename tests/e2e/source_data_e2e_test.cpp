// What real sources hold, end to end on the real servers: partitioned tables, generated columns,
// TRUNCATE, unchanged TOAST values and transactions too large for memory. Every check compares
// ClickHouse FINAL with PostgreSQL value by value, and the paths that are easy to miss are proven
// taken with counters. Schema changes: source_changes_e2e_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "clickpipe/pg_to_clickhouse/executors.hpp"
#include "clickpipe/testing/helpers.hpp"
#include "source_changes.hpp"

namespace clickpipe {
namespace {

using namespace std::chrono_literals;
using namespace sctest;

// The defect: partitioned tables never ran in a test. A partitioned parent replicates as one
// table: the initial load copies each leaf, CDC arrives through the root
// (publish_via_partition_root), rows moving between partitions stay right, and a partition
// attached while Running (its rows never pass through the WAL) is copied.
TEST(SourceChanges, PartitionedTablesWereNeverReplicated) {
  const std::string t = "sc_part_" + tag();
  const pg_to_clickhouse::Config cfg = test::config("sc_part_" + tag());
  postgres::Connection pg = postgres::Connection::open(cfg.source);
  pg.exec("CREATE TABLE " + t +
          " (id int8, region int4, v text, extra text, PRIMARY KEY (id, region)) PARTITION BY LIST "
          "(region)");
  for (int r : {1, 2}) {
    pg.exec("CREATE TABLE " + t + "_" + std::to_string(r) + " PARTITION OF " + t +
            " FOR VALUES IN (" + std::to_string(r) + ")");
  }
  pg.exec("INSERT INTO " + t +
          " SELECT g, 1 + g % 2, 'row ' || g, 'x' FROM generate_series(1, 6000) g");
  pg.exec("ANALYZE " + t + "_1");
  pg.exec("ANALYZE " + t + "_2");
  auto pipe = test::start_pipe(cfg, {t}, fast());
  ASSERT_TRUE(pipe->wait_for(State::Running, 60s));
  EXPECT_GE(pipe->status().snapshot.at(0).partitions_total, 2u) << "planned per leaf";
  const std::vector<std::string> cols{"region", "v"};
  EXPECT_TRUE(converges(pg, cfg, t, cols)) << "after the initial load";

  pg.exec("INSERT INTO " + t + " VALUES (7001, 1, 'cdc 1'), (7002, 2, 'cdc 2')");
  pg.exec("UPDATE " + t + " SET v = 'moved', region = 2 WHERE id = 2");  // leaf 1 -> leaf 2
  pg.exec("DELETE FROM " + t + " WHERE id = 3");
  // ids are unique across regions here, so rows compare by id.
  EXPECT_TRUE(converges(pg, cfg, t, cols)) << "after CDC";

  // A dropped column must not break the copy of a partition attached later.
  pg.exec("ALTER TABLE " + t + " DROP COLUMN extra");
  const auto before = pg_to_clickhouse::counters();
  pg.exec("CREATE TABLE " + t + "_3 (LIKE " + t + " INCLUDING ALL)");
  pg.exec("INSERT INTO " + t +
          "_3 SELECT g, 3, 'attached ' || g FROM generate_series(8001, 8500) g");
  pg.exec("ALTER TABLE " + t + " ATTACH PARTITION " + t + "_3 FOR VALUES IN (3)");
  pg.exec("INSERT INTO " + t + " VALUES (9001, 3, 'after attach')");
  pg.exec("UPDATE " + t + " SET v = 'changed after attach' WHERE id = 8001");
  EXPECT_TRUE(converges(pg, cfg, t, cols, 90s)) << "the attached partition's rows";
  EXPECT_EQ(pg_to_clickhouse::counters().partitions_backfilled - before.partitions_backfilled, 1u);
  EXPECT_TRUE(has_event(pipe->status(), t, SchemaChange::Kind::PartitionsChanged));

  // Rows changed (and deleted) by CDC before a partition is detached, changed while detached,
  // then attached again: the copy must win over the older changes ClickHouse holds.
  pg.exec("UPDATE " + t + " SET v = 'before detach' WHERE id IN (4, 6)");
  pg.exec("DELETE FROM " + t + " WHERE id = 8");
  ASSERT_TRUE(converges(pg, cfg, t, cols));
  pg.exec("ALTER TABLE " + t + " DETACH PARTITION " + t + "_1");
  pg.exec("UPDATE " + t + "_1 SET v = 'changed while detached' WHERE id IN (4, 6)");
  pg.exec("INSERT INTO " + t + "_1 VALUES (8, 1, 'back again')");
  // Seen detached (its rows stay in ClickHouse meanwhile) before it comes back.
  ASSERT_TRUE(testing::wait_until(
      *pipe,
      [&](const PipeStatus& st) {
        return std::any_of(
            st.schema_changes.begin(), st.schema_changes.end(), [&](const SchemaEvent& e) {
              return e.table.name == t && e.description.find("detached") != std::string::npos;
            });
      },
      60s));
  pg.exec("ALTER TABLE " + t + " ATTACH PARTITION " + t + "_1 FOR VALUES IN (1)");
  EXPECT_TRUE(converges(pg, cfg, t, cols, 90s)) << "a partition attached again";
  EXPECT_EQ(destination(cfg, t, cols).at("4").at(1), "changed while detached");
  ASSERT_TRUE(testing::drive_to(*pipe, State::Terminated, 30s));
}

// The defect: generated columns never ran in a test. PostgreSQL 15 does not publish them, so the
// pipe leaves them out of the snapshot too: the ClickHouse table has no such column, and both
// paths agree on the rest.
TEST(SourceChanges, GeneratedColumnsWereNeverTested) {
  const std::string t = "sc_gen_" + tag();
  const pg_to_clickhouse::Config cfg = test::config("sc_gen_" + tag());
  postgres::Connection pg = postgres::Connection::open(cfg.source);
  pg.exec("CREATE TABLE " + t +
          " (id int8 PRIMARY KEY, v text, g text GENERATED ALWAYS AS (upper(v)) STORED, n int4)");
  pg.exec("INSERT INTO " + t +
          " (id, v, n) SELECT g, 'row ' || g, g FROM generate_series(1, 500) g");
  auto pipe = test::start_pipe(cfg, {t}, fast());
  ASSERT_TRUE(pipe->wait_for(State::Running, 60s));
  pg.exec("INSERT INTO " + t + " (id, v, n) VALUES (1001, 'cdc', 1)");
  pg.exec("UPDATE " + t + " SET v = 'changed' WHERE id = 2");
  EXPECT_TRUE(converges(pg, cfg, t, {"v", "n"}));
  EXPECT_EQ(column_type(cfg, t, "g"), "") << "no ClickHouse column for a generated one";
  EXPECT_EQ(column_type(cfg, t, "n"), "Nullable(Int32)");
  EXPECT_TRUE(pipe->status().schema_changes.empty()) << "snapshot and CDC saw the same columns";
  ASSERT_TRUE(testing::drive_to(*pipe, State::Terminated, 30s));
}

// The defect: TRUNCATE never ran end to end. Rows go from FINAL, rows inserted after (in the same
// transaction too, at the same version) are there.
TEST(SourceChanges, TruncateWasNeverTestedEndToEnd) {
  const std::string t = "sc_trunc_" + tag();
  const pg_to_clickhouse::Config cfg = test::config("sc_trunc_" + tag());
  postgres::Connection pg = postgres::Connection::open(cfg.source);
  pg.exec("CREATE TABLE " + t + " (id int8 PRIMARY KEY, v text)");
  pg.exec("INSERT INTO " + t + " SELECT g, 'row ' || g FROM generate_series(1, 1000) g");
  auto pipe = test::start_pipe(cfg, {t}, fast());
  ASSERT_TRUE(pipe->wait_for(State::Running, 60s));
  const auto before = pg_to_clickhouse::counters();
  pg.exec("INSERT INTO " + t + " VALUES (2001, 'cdc')");
  pg.exec("TRUNCATE " + t);
  pg.exec("INSERT INTO " + t + " VALUES (5, 'after truncate'), (2002, 'new')");
  EXPECT_TRUE(converges(pg, cfg, t, {"v"}));
  pg.exec("BEGIN");
  pg.exec("UPDATE " + t + " SET v = 'gone with the truncate' WHERE id = 5");
  pg.exec("TRUNCATE " + t);
  pg.exec("INSERT INTO " + t + " VALUES (6, 'same transaction'), (2002, 'again')");
  pg.exec("COMMIT");
  EXPECT_TRUE(converges(pg, cfg, t, {"v"}));
  EXPECT_EQ(destination(cfg, t, {"v"}).size(), 2u);
  EXPECT_EQ(pg_to_clickhouse::counters().truncates - before.truncates, 2u);
  ASSERT_TRUE(testing::drive_to(*pipe, State::Terminated, 30s));
}

// The defect: the "unchanged TOAST" fill was claimed but its test values compressed inline and
// were never TOASTed. Now the values are over 8 kB, random and stored EXTERNAL (out of line,
// uncompressed): updates that leave them alone send them as unchanged, the counter proves the
// fill ran, and the values are compared whole.
TEST(SourceChanges, UnchangedToastValuesWereNeverToasted) {
  const std::string t = "sc_toast_" + tag();
  const pg_to_clickhouse::Config cfg = test::config("sc_toast_" + tag());
  postgres::Connection pg = postgres::Connection::open(cfg.source);
  pg.exec("CREATE TABLE " + t + " (id int8 PRIMARY KEY, v text, big text)");
  pg.exec("ALTER TABLE " + t + " ALTER COLUMN big SET STORAGE EXTERNAL");
  const std::string random_10k =
      "(SELECT string_agg(md5(random()::text || g), '') FROM generate_series(1, 320) g)";
  pg.exec("INSERT INTO " + t + " SELECT i, 'row ' || i, " + random_10k +
          " FROM generate_series(1, 30) i");
  ASSERT_EQ(pg.exec("SELECT min(octet_length(big)) FROM " + t).value(0, 0), "10240");
  auto pipe = test::start_pipe(cfg, {t}, fast());
  ASSERT_TRUE(pipe->wait_for(State::Running, 60s));
  const auto before = pg_to_clickhouse::counters();
  pg.exec("INSERT INTO " + t + " SELECT 100, 'cdc', " + random_10k);
  pg.exec("UPDATE " + t + " SET v = v || ' changed'");  // big untouched: sent as unchanged
  EXPECT_TRUE(converges(pg, cfg, t, {"v", "big"}));
  EXPECT_GE(pg_to_clickhouse::counters().unchanged_toast_refilled - before.unchanged_toast_refilled,
            31u)
      << "the unchanged TOAST values were not read back";

  // An update that left the value alone, then the column dropped before the pipe reads it back:
  // the column is gone at the source, so the row gets NULL there (the pipe does not fail).
  ASSERT_TRUE(testing::drive_to(*pipe, State::Paused, 30s));
  pg.exec("UPDATE " + t + " SET v = 'before the drop' WHERE id <= 5");
  pg.exec("ALTER TABLE " + t + " DROP COLUMN big");
  ASSERT_TRUE(pipe->resume());
  EXPECT_TRUE(converges(pg, cfg, t, {"v"}));
  EXPECT_EQ(destination(cfg, t, {"big"}).at("1").at(0), "<null>");
  EXPECT_EQ(pipe->status().state, State::Running);
  ASSERT_TRUE(testing::drive_to(*pipe, State::Terminated, 30s));
}

// The defect: a transaction was buffered whole until its commit, so a large one exhausted memory
// (and again on every replay). With a small budget here, one transaction of 60,000 changes is
// spilled to disk and applied in many batches, and the result is exact.
TEST(SourceChanges, HugeTransactionsWereBufferedWholeInMemory) {
  const std::string t = "sc_huge_" + tag();
  pg_to_clickhouse::Config cfg = test::config("sc_huge_" + tag());
  cfg.stream.spill_bytes = 256 << 10;
  cfg.stream.batch_bytes = 256 << 10;
  postgres::Connection pg = postgres::Connection::open(cfg.source);
  pg.exec("CREATE TABLE " + t + " (id int8 PRIMARY KEY, v text)");
  pg.exec("INSERT INTO " + t + " SELECT g, 'row ' || g FROM generate_series(1, 30000) g");
  auto pipe = test::start_pipe(cfg, {t}, fast());
  ASSERT_TRUE(pipe->wait_for(State::Running, 60s));
  const auto before = pg_to_clickhouse::counters();
  const std::uint64_t batches = pipe->status().cdc.batches;
  pg.exec("BEGIN");
  pg.exec("UPDATE " + t + " SET v = v || ' updated'");
  pg.exec("INSERT INTO " + t + " SELECT g, 'new ' || g FROM generate_series(100001, 120000) g");
  pg.exec("DELETE FROM " + t + " WHERE id % 10 = 0");
  pg.exec("UPDATE " + t + " SET v = 'last word' WHERE id % 7 = 0");  // later change, same key
  pg.exec("COMMIT");
  EXPECT_TRUE(converges(pg, cfg, t, {"v"}, 120s));
  const auto after = pg_to_clickhouse::counters();
  EXPECT_EQ(after.transactions_spilled - before.transactions_spilled, 1u);
  EXPECT_GT(after.changes_spilled - before.changes_spilled, 50000u);
  EXPECT_GT(pipe->status().cdc.batches - batches, 10u) << "applied in pieces";
  ASSERT_TRUE(testing::drive_to(*pipe, State::Terminated, 30s));
}

}  // namespace
}  // namespace clickpipe
