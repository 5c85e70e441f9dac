// Against the throwaway ClickHouse that ./scripts/test.sh starts on 127.0.0.1 (Debian's 18.16),
// and again against ClickHouse 26.7 embedded (CLICKPIPE_CH_URL=chdb://DIR, the release run).
// Without them these tests fail (they never skip): CLICKPIPE_CH_* must be set. Values, tables,
// errors and settings here; counting back in reconcile_test.cpp; what needs no server in the
// *_unit_test.cpp files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "../expect.hpp"
#include "../servers.hpp"
#include "ch_fixtures.hpp"
#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/clickhouse/insert.hpp"
#include "clickpipe/clickhouse/layout.hpp"
#include "clickpipe/clickhouse/quote.hpp"
#include "clickpipe/clickhouse/tab_separated.hpp"
#include "clickpipe/clickhouse/tables.hpp"

namespace clickpipe::clickhouse {
namespace {

using namespace chtest;

// The destination under test: 18.16 over HTTP, or 26 embedded in the release run.
ClientSettings settings() { return test::clickhouse_settings(); }

// For what only HTTP has (credentials, proxies).
ClientSettings http_settings() { return test::http_clickhouse_settings(); }

TEST(ClickHouse, EveryMappedTypeRoundTripsExactValues) {
  Client c(settings());
  const ServerVersion v = c.version();
  EXPECT_EQ(v.major, test::embedded_clickhouse() ? 26 : 18) << v.to_string();
  TableDefinition def{
      TableRef{"public", "types"},
      {col("id", "int8", false), col("i2", "int2"), col("i4", "int4"),
       col("d", "numeric", true, 0, ((12 << 16) | 3) + 4), col("u", "numeric"), col("f", "float8"),
       col("t", "text"), col("b", "bool"), col("dt", "date"), col("ts", "timestamptz"),
       col("id2", "uuid"), col("j", "jsonb"), col("by", "bytea"), col("arr", "_int4", false, 1),
       col("sa", "_text", false, 1), col("other", "interval")},
      {"id"}};
  const TableLayout l = layout_for(def, unique("types"), v);
  c.query(create_table_sql(l, "default"));
  std::vector<Row> rows;
  rows.push_back(
      Row{{Datum::of("1"), Datum::of("-32768"), Datum::of("2147483647"),
           Datum::of("-123456789.123"), Datum::of("3.14159265358979323846264338327950288"),
           Datum::of("-Infinity"), Datum::of("tab\there\nnewline \\ back 'q' ü 日本"),
           Datum::of("t"), Datum::of("1999-12-31"), Datum::of("2024-02-29 23:59:59.123456+00"),
           Datum::of("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), Datum::of("{\"k\": [1, 2]}"),
           Datum::of("\\x00ff0a41"), Datum::of("{1,NULL,-3}"),
           Datum::of("{\"a b\",NULL,\"it's\",\"x\\\"y\"}"), Datum::of("1 day 02:03:04")},
          10,
          false});
  rows.push_back(Row{
      {Datum::of("2"), Datum::null(), Datum::null(), Datum::null(), Datum::null(), Datum::of("NaN"),
       Datum::of(""), Datum::of("f"), Datum::null(), Datum::null(), Datum::null(), Datum::null(),
       Datum::null(), Datum::null(), Datum::null(), Datum::null()},
      10,
      false});
  EXPECT_EQ(insert(c, l, rows), 2u);
  const Table got = read_final(c, l);
  ASSERT_EQ(got.size(), 2u);
  const Table want = {{s("1"), s("-32768"), s("2147483647"), s("-123456789.123"),
                       s("3.14159265358979323846264338327950288"), s("-inf"),
                       s("tab\there\nnewline \\ back 'q' ü 日本"), s("1"), s("1999-12-31"),
                       s("2024-02-29 23:59:59.123456"), s("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                       s("{\"k\": [1, 2]}"), std::string("\x00\xff\x0a\x41", 4), s("[1,NULL,-3]"),
                       s("['a b',NULL,'it's','x\"y']"), s("1 day 02:03:04")},
                      {s("2"), std::nullopt, std::nullopt, std::nullopt, std::nullopt, s("nan"),
                       s(""), s("0"), std::nullopt, std::nullopt, std::nullopt, std::nullopt,
                       std::nullopt, s("[]"), s("[]"), std::nullopt}};
  EXPECT_EQ(got, want);
  // Array elements exactly (the response is TabSeparated, which escapes ' as \').
  EXPECT_EQ(c.query("SELECT sa[3], sa[4], length(sa), isNull(sa[2]) FROM " + quote(l.name) +
                    " FINAL WHERE id = 1 FORMAT TabSeparated"),
            "it\\'s\tx\"y\t4\t1\n");
}

TEST(ClickHouse, UpsertsAndDeletesInOneBatchGiveTheExpectedFinal) {
  Client c(settings());
  const TableLayout l = layout_for(simple(), unique("upserts"), c.version());
  c.query(create_table_sql(l, "default"));
  const std::vector<Row> batch = {
      {{Datum::of("1"), Datum::of("snapshot")}, 0, false},
      {{Datum::of("2"), Datum::of("snapshot")}, 0, false},
      {{Datum::of("1"), Datum::of("updated")}, 100, false},
      {{Datum::of("2"), Datum::of("snapshot")}, 101, true},  // deleted
      {{Datum::of("3"), Datum::of("late")}, 50, false},
      {{Datum::of("3"), Datum::of("older, arrives later")}, 40, false},  // lower version loses
  };
  insert(c, l, batch);
  const Table want = {{s("1"), s("updated")}, {s("3"), s("late")}};
  EXPECT_EQ(read_final(c, l), want);
  insert(c, l, batch);  // the same batch again, as after a crash: FINAL does not change
  EXPECT_EQ(read_final(c, l), want);
  c.query("OPTIMIZE TABLE " + quote(l.name) + " FINAL");
  EXPECT_EQ(read_final(c, l), want);
}

TEST(ClickHouse, WeirdIdentifiersWork) {
  Client c(settings());
  TableDefinition def{TableRef{"public", "w"},
                      {col("id`x", "int8", false), col("back\\slash", "text"),
                       col("quote'\"", "text"), col("semi;colon", "text"), col("new\nline", "text"),
                       col("select", "text"), col("ünïcødé 日本", "text")},
                      {"id`x"}};
  const TableLayout l = layout_for(def, unique("weird `table`; DROP"), c.version());
  c.query(create_table_sql(l, "default"));
  insert(c, l,
         {{{Datum::of("7"), Datum::of("a"), Datum::of("b"), Datum::of("c"), Datum::of("d"),
            Datum::of("e"), Datum::of("f")},
           1,
           false}});
  const Table want = {{s("7"), s("a"), s("b"), s("c"), s("d"), s("e"), s("f")}};
  EXPECT_EQ(read_final(c, l), want);
  EXPECT_TRUE(table_exists(c, l.name));
}

TEST(ClickHouse, ErrorsAreClassifiedAndCarryTheServersMessage) {
  Client c(settings());
  const auto syntax =
      test::expect_throws<ClickHouseFatalError>([&] { c.query("SELEC 1"); }, "a syntax error");
  ASSERT_TRUE(syntax);
  EXPECT_EQ(syntax->code(), 62);
  EXPECT_NE(std::string(syntax->what()).find("Syntax error"), std::string::npos) << syntax->what();
  const auto missing = test::expect_throws<ClickHouseFatalError>(
      [&] { c.query("SELECT * FROM no_such_table_here"); }, "a missing table");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->code(), 60);
  ClientSettings wrong = http_settings();
  wrong.password = "CANARY-ch-secret";
  const auto refused = test::expect_throws<ClickHouseFatalError>(
      [&] { Client(wrong).query("SELECT 1"); }, "a wrong password");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code(), 193);
  EXPECT_EQ(std::string(refused->what()).find("CANARY"), std::string::npos) << refused->what();
  ClientSettings down = settings();
  down.url = "http://127.0.0.1:1";
  EXPECT_THROW(Client(down).query("SELECT 1"), ClickHouseTransientError);
}

TEST(ClickHouse, ATransientFailureRetriedLandsTheDataOnce) {
  // The first attempt fails after the server may or may not have stored it; retrying the same
  // versioned rows gives the same FINAL either way.
  Client c(settings());
  const TableLayout l = layout_for(simple(), unique("retry"), c.version());
  c.query(create_table_sql(l, "default"));
  const std::vector<Row> batch = {{{Datum::of("1"), Datum::of("x")}, 5, false},
                                  {{Datum::of("2"), Datum::of("y")}, 6, false}};
  // The client asks the version first (insert settings follow it), then the insert fails.
  FakeServer fake({http(200, "18.16.1\n"), http(503, "Service Unavailable")});
  ClientSettings st = http_settings();
  st.url = fake.url();
  Client via_proxy(st);
  EXPECT_THROW(insert(via_proxy, l, batch), ClickHouseTransientError);
  insert(c, l, batch);  // landed
  insert(c, l, batch);  // and the retry of an unknown outcome
  EXPECT_EQ(read_final(c, l), (Table{{s("1"), s("x")}, {s("2"), s("y")}}));
  EXPECT_EQ(c.query("SELECT count() FROM " + quote(l.name) + " FINAL"), "2\n");
}

TEST(ClickHouse, ResyncSwapIsAtomicAndSafeToRunAgain) {
  Client c(settings());
  const TableLayout l = layout_for(simple(), unique("swap"), c.version());
  c.query(create_table_sql(l, "default"));
  insert(c, l, {{{Datum::of("1"), Datum::of("old")}, 1, false}});
  create_resync_table(c, l);
  TableLayout copy = l;
  copy.name = l.name + "_resync";
  insert(c, copy, {{{Datum::of("2"), Datum::of("new")}, 0, false}});
  swap_resync(c, l.name);
  EXPECT_EQ(read_final(c, l), (Table{{s("2"), s("new")}}));
  EXPECT_FALSE(table_exists(c, l.name + "_resync"));
  EXPECT_FALSE(table_exists(c, l.name + "_old"));
  swap_resync(c, l.name);  // again, as after a crash right after the swap: nothing changes
  EXPECT_EQ(read_final(c, l), (Table{{s("2"), s("new")}}));
  // A crash between the rename and the drop left the old copy behind.
  c.query("CREATE TABLE " + quote(l.name + "_old") + " AS " + quote(l.name));
  swap_resync(c, l.name);
  EXPECT_FALSE(table_exists(c, l.name + "_old"));
  EXPECT_EQ(read_final(c, l), (Table{{s("2"), s("new")}}));
}

TEST(ClickHouse, TheEngineFollowsTheServerVersion) {
  Client c(settings());
  const TableLayout l = layout_for(simple(), unique("engine"), c.version());
  c.query(create_table_sql(l, "default"));
  // SHOW CREATE opens this table only; a read of system.tables would open every table, and
  // 18.16 fails it when another test drops one meanwhile.
  const std::string create = c.query("SHOW CREATE TABLE default." + quote(l.name));
  const std::size_t at = create.find("ENGINE = ReplacingMergeTree(");
  ASSERT_NE(at, std::string::npos) << create;
  const std::string engine = create.substr(at, create.find(')', at) - at);
  const bool is_deleted = c.features().replacing_is_deleted;
  EXPECT_EQ(is_deleted, test::embedded_clickhouse());
  EXPECT_EQ(engine.find("_is_deleted") != std::string::npos, is_deleted) << engine;
}

// A user profile (or a session) may allow skipping unparseable rows or acknowledge inserts
// before they are written: clickpipe pins both off on every insert.
TEST(ClickHouse, InsertsIgnoreAProfileThatSkipsBadRowsOrWritesLater) {
  Client c(settings());
  const TableLayout l = layout_for(simple(), unique("pinned"), c.version());
  c.query(create_table_sql(l, "default"));
  if (test::embedded_clickhouse()) {
    // The embedded engine has no profiles: the connection's session plays the profile's part.
    c.query("SET input_format_allow_errors_num = 5");
    c.query("SET input_format_allow_errors_ratio = 0.5");
    c.query("SET async_insert = 1");
    c.query("SET wait_for_async_insert = 0");
    c.query("SET input_format_tsv_empty_as_default = 1");  // '' into Nullable(String): NULL
  }
  EXPECT_EQ(
      c.query("SELECT value FROM system.settings WHERE name = 'input_format_allow_errors_num'"),
      "5\n")
      << "the hostile default is in effect (scripts/ch.sh's profile, or the session)";
  const std::string id = quote(l.name);
  EXPECT_THROW(
      c.insert("INSERT INTO " + id + " (`id`, `v`, `_version`, `_is_deleted`, `_synced_at`)",
               "1\ta\t1\t0\t0\nnot a number\tb\t1\t0\t0\n3\tc\t1\t0\t0\n"),
      ClickHouseFatalError);
  EXPECT_EQ(c.query("SELECT count() FROM " + id), "0\n") << "nothing skipped, nothing stored";
  if (c.features().async_insert) {
    EXPECT_EQ(c.query("SELECT value FROM system.settings WHERE name = 'async_insert'"), "1\n");
  }
  insert(
      c, l,
      {{{Datum::of("1"), Datum::of("")}, 1, false}, {{Datum::of("2"), Datum::of("b")}, 1, false}});
  EXPECT_EQ(c.query("SELECT count() FROM " + id), "2\n") << "written when the insert returned";
  EXPECT_EQ(c.query("SELECT count() FROM " + id + " WHERE v = ''"), "1\n")
      << "an empty string stays an empty string";
}

TEST(ClickHouse, AMissingEmbeddedLibraryIsAClearFatalError) {
  if (test::embedded_clickhouse()) {
    // The engine of this process is up: a second directory is refused, the first one shared.
    Client c(settings());
    ClientSettings other = settings();
    other.url += "_other";
    const std::string second = test::message(
        test::expect_throws<ClickHouseFatalError>([&] { Client{other}; }, "a second directory"));
    EXPECT_NE(second.find("one directory per process"), std::string::npos) << second;
    EXPECT_EQ(Client(settings()).query("SELECT 1"), "1\n");
    return;
  }
  ClientSettings s;
  s.url = "chdb:///tmp/clickpipe-never-created-" + std::to_string(::getpid());
  s.chdb_library = "/nonexistent/libchdb.so";
  const std::string missing = test::message(
      test::expect_throws<ClickHouseFatalError>([&] { Client{s}; }, "a missing library"));
  EXPECT_NE(missing.find("@chdb/lib-linux-x64-gnu"), std::string::npos) << missing;
  ClientSettings bad;
  bad.url = "ftp://127.0.0.1";
  EXPECT_THROW(Client{bad}, InvalidField);
}

}  // namespace
}  // namespace clickpipe::clickhouse
