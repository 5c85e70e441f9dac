// Table layouts and the COPY text encoder, without a server: names refused or quoted, types
// following the server's version, and lines with the wrong field count.
#include <gtest/gtest.h>

#include <string>

#include "../expect.hpp"
#include "ch_fixtures.hpp"
#include "clickpipe/clickhouse/insert.hpp"
#include "clickpipe/clickhouse/layout.hpp"
#include "clickpipe/clickhouse/quote.hpp"

namespace clickpipe::clickhouse {
namespace {

using namespace chtest;

TEST(ClickHouse, CopyTextWithTheWrongFieldCountIsRefusedAndWritesNothing) {
  const TableLayout l = layout_for(simple(), "copy_fields", ServerVersion{18, 16});
  CopyTextEncoder encoder(l, 0);
  std::string out = "kept";
  EXPECT_THROW(encoder.add("1", out), InvalidField);
  EXPECT_THROW(encoder.add("1\tx\ty", out), InvalidField);
  EXPECT_EQ(out, "kept");
  encoder.add("1\tx\\ty", out);
  EXPECT_EQ(out.substr(0, 12), "kept1\tx\\ty\t0");
}

TEST(ClickHouse, InvalidAndCollidingNamesAreRejectedClearly) {
  const ServerVersion v{18, 16};
  TableDefinition bad = simple();
  bad.columns[1].name = "bad\xff";
  EXPECT_THROW(layout_for(bad, "t", v), InvalidField);
  TableDefinition clash = simple();
  clash.columns[1].name = "_version";
  const std::string collides =
      test::message(test::expect_throws<InvalidField>([&] { layout_for(clash, "t", v); }));
  EXPECT_NE(collides.find("collides"), std::string::npos) << collides;
  TableDefinition dup = simple();
  dup.columns.push_back(col("v", "text"));
  EXPECT_THROW(layout_for(dup, "t", v), InvalidField);
  TableDefinition nokey = simple();
  nokey.primary_key.clear();
  EXPECT_THROW(layout_for(nokey, "t", v), InvalidField);
  EXPECT_EQ(quote("a`b\\c"), "`a\\`b\\\\c`");
}

TEST(ClickHouse, TypesFollowTheServerVersion) {
  const Column ts = col("ts", "timestamptz", false), d = col("d", "date"), n = col("n", "numeric");
  EXPECT_EQ(map_column(ts, {18, 16}).type, "String");
  EXPECT_EQ(map_column(ts, {23, 8}).type, "DateTime64(6, 'UTC')");
  EXPECT_EQ(map_column(d, {18, 16}).type, "Nullable(String)");
  EXPECT_EQ(map_column(d, {23, 8}).type, "Nullable(Date32)");
  EXPECT_EQ(map_column(n, {23, 8}).type, "Nullable(String)") << "unconstrained numeric stays exact";
  EXPECT_EQ(map_column(col("a", "_int8", true, 1), {18, 16}).type, "Array(Nullable(Int64))");
}

}  // namespace
}  // namespace clickpipe::clickhouse
