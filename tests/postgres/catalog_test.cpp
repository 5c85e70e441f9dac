// The catalog on the test server (./scripts/test.sh; CLICKPIPE_PG_* must be set, these tests never
// skip): table definitions, preflight's refusals, quoted and unicode names.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../expect.hpp"
#include "../print.hpp"
#include "clickpipe/postgres/catalog.hpp"
#include "pg_fixtures.hpp"

namespace clickpipe::postgres {
namespace {

using namespace pgtest;

TEST(Postgres, ReadsDefinitionsOfTwentyPlusTypes) {
  Connection c = sql();
  const std::string t = unique("types");
  c.exec("CREATE TABLE " + t +
         " (a int2, b int4 NOT NULL, c int8, d numeric(12,3), e numeric, f real, g float8, h text,"
         " i varchar(40), j char(5), k boolean, l date, m timestamp, n timestamptz, o time,"
         " p uuid, q json, r jsonb, s bytea, u int4[], v text[][], w interval, x inet,"
         " PRIMARY KEY (b, a))");
  const std::vector<TableRef> refs{{"public", t}};
  const auto defs = read_definitions(c, refs);
  ASSERT_EQ(defs.size(), 1u);
  const TableDefinition& d = defs[0];
  ASSERT_EQ(d.columns.size(), 23u);
  EXPECT_EQ(d.primary_key, (std::vector<std::string>{"b", "a"}));
  auto col = [&](const std::string& name) {
    for (const auto& x : d.columns) {
      if (x.name == name) return x;
    }
    ADD_FAILURE() << "no column " << name;
    return Column{};
  };
  EXPECT_EQ(col("a").type, "int2");
  EXPECT_EQ(col("a").type_oid, 21u);
  EXPECT_FALSE(col("a").nullable) << "primary key columns are NOT NULL";
  EXPECT_FALSE(col("b").nullable);
  EXPECT_TRUE(col("c").nullable);
  EXPECT_EQ(col("d").type, "numeric");
  EXPECT_EQ(col("d").type_modifier, ((12 << 16) | 3) + 4) << "numeric typmod is (p<<16|s)+4";
  EXPECT_EQ(col("e").type_modifier, -1);
  EXPECT_EQ(col("i").type_modifier, 40 + 4);
  EXPECT_EQ(col("n").type, "timestamptz");
  EXPECT_EQ(col("p").type_oid, 2950u);
  EXPECT_EQ(col("u").type, "_int4");
  EXPECT_EQ(col("u").array_dimensions, 1);
  EXPECT_GE(col("v").array_dimensions, 1);
  EXPECT_EQ(col("h").array_dimensions, 0);
  EXPECT_EQ(d.columns.front().name, "a");
  EXPECT_EQ(d.columns.back().name, "x");
}

TEST(Postgres, PreflightReportsEveryProblemAtOnce) {
  Connection c = sql();
  const std::string nopk = unique("nopk"), ok = unique("ok"), full = unique("full");
  c.exec("CREATE TABLE " + nopk + " (a int)");
  c.exec("CREATE TABLE " + ok + " (a int PRIMARY KEY)");
  c.exec("CREATE TABLE " + full + " (a int PRIMARY KEY, b text)");
  c.exec("ALTER TABLE " + full + " REPLICA IDENTITY FULL");
  const std::vector<TableRef> refs{{"public", nopk}, {"public", ok}, {"public", "missing_table"}};
  const auto e = test::expect_throws<PreflightError>([&] { preflight(c, refs); });
  ASSERT_TRUE(e);
  ASSERT_EQ(e->problems().size(), 2u) << e->what();
  EXPECT_NE(e->problems()[0].find(nopk + " has no primary key"), std::string::npos);
  EXPECT_NE(e->problems()[1].find("public.missing_table does not exist"), std::string::npos);
  const std::vector<TableRef> good{{"public", ok}, {"public", full}};
  EXPECT_NO_THROW(preflight(c, good));
}

// The defect: preflight accepted USING INDEX and NOTHING (deletes then carry another key, or the
// application's own UPDATEs fail), and a keyless REPLICA IDENTITY FULL table that Setup refused.
TEST(Postgres, PreflightAcceptedIdentitiesThatLoseDeletesAndKeylessTables) {
  Connection c = sql();
  const std::string index = unique("ri_index"), nothing = unique("ri_nothing"),
                    keyless = unique("ri_keyless"), parted = unique("ri_parted");
  c.exec("CREATE TABLE " + index + " (a int PRIMARY KEY, b int NOT NULL UNIQUE)");
  c.exec("ALTER TABLE " + index + " REPLICA IDENTITY USING INDEX " + index + "_b_key");
  c.exec("CREATE TABLE " + nothing + " (a int PRIMARY KEY)");
  c.exec("ALTER TABLE " + nothing + " REPLICA IDENTITY NOTHING");
  c.exec("CREATE TABLE " + keyless + " (a int)");
  c.exec("ALTER TABLE " + keyless + " REPLICA IDENTITY FULL");
  // A partitioned table whose one leaf publishes with NOTHING.
  c.exec("CREATE TABLE " + parted + " (a int PRIMARY KEY) PARTITION BY RANGE (a)");
  c.exec("CREATE TABLE " + parted + "_1 PARTITION OF " + parted + " FOR VALUES FROM (0) TO (10)");
  c.exec("ALTER TABLE " + parted + "_1 REPLICA IDENTITY NOTHING");
  const std::vector<TableRef> refs{
      {"public", index}, {"public", nothing}, {"public", keyless}, {"public", parted}};
  const auto e = test::expect_throws<PreflightError>([&] { preflight(c, refs); });
  ASSERT_TRUE(e);
  const std::vector<std::string>& problems = e->problems();
  ASSERT_EQ(problems.size(), 4u) << e->what();
  EXPECT_NE(problems[0].find(index + " has REPLICA IDENTITY USING INDEX"), std::string::npos);
  EXPECT_NE(problems[0].find("REPLICA IDENTITY DEFAULT"), std::string::npos) << "the fix";
  EXPECT_NE(problems[1].find(nothing + " has REPLICA IDENTITY NOTHING"), std::string::npos);
  EXPECT_NE(problems[2].find(keyless + " has no primary key"), std::string::npos);
  EXPECT_NE(problems[3].find("partition public." + parted + "_1 of public." + parted),
            std::string::npos)
      << problems[3];
}

TEST(Postgres, QuotedIdentifiersAndUnicodeWork) {
  Connection c = sql();
  const std::string name = unique("Order Items ü");
  c.exec("CREATE TABLE " + c.identifier(name) + " (\"select\" int PRIMARY KEY, \"Ünï\" text)");
  const std::vector<TableRef> refs{{"public", name}};
  preflight(c, refs);
  const auto d = read_definitions(c, refs).at(0);
  EXPECT_EQ(d.columns[0].name, "select");
  EXPECT_EQ(d.columns[1].name, "Ünï");
  EXPECT_EQ(d.primary_key, std::vector<std::string>{"select"});
}

}  // namespace
}  // namespace clickpipe::postgres
