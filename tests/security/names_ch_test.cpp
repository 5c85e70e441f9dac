// Tables clickpipe did not make are never adopted, renamed or dropped, on a real ClickHouse: the
// one ./scripts/test.sh starts on 127.0.0.1 (Debian's 18.16), and ClickHouse 26 embedded in the
// release run (CLICKPIPE_CH_URL=chdb://DIR). Without them these tests fail (they never skip).
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "../clickhouse/ch_fixtures.hpp"
#include "../expect.hpp"
#include "../servers.hpp"
#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/clickhouse/insert.hpp"
#include "clickpipe/clickhouse/layout.hpp"
#include "clickpipe/clickhouse/quote.hpp"
#include "clickpipe/clickhouse/tab_separated.hpp"
#include "clickpipe/clickhouse/tables.hpp"

namespace clickpipe::clickhouse {
namespace {

using namespace chtest;
using test::expect_throws;
using test::message;

std::string count(Client& c, const std::string& table) {
  return c.query("SELECT count() FROM " + quote(table));
}

// Someone else's table under `name`: another layout, three rows.
void foreign(Client& c, const std::string& name) {
  c.query("CREATE TABLE " + quote(name) +
          " (`id` Int64, `note` String) ENGINE = MergeTree ORDER BY `id`");
  c.insert("INSERT INTO " + quote(name) + " (`id`, `note`)", "1\tmine\n2\tmine\n3\tmine\n");
}

// The foreign table is as foreign() left it.
void expect_intact(Client& c, const std::string& name) {
  EXPECT_EQ(count(c, name), "3\n") << name;
  const auto t = describe_table(c, name);
  ASSERT_TRUE(t.has_value()) << name;
  EXPECT_EQ(t->engine, "MergeTree");
  EXPECT_EQ(t->columns.size(), 2u);
}

std::vector<Row> one(const char* id, const char* v) {
  return {Row{{Datum::of(id), Datum::of(v)}, 1, false}};
}

TableLayout resync_copy(const TableLayout& l) {
  TableLayout copy = l;
  copy.name.append(kResyncSuffix);
  return copy;
}

TEST(NamesClickHouse, AForeignTableUnderTheDestinationNameIsNotAdopted) {
  Client c(test::clickhouse_settings());
  const TableLayout l = layout_for(simple(), unique("foreign"), c.version());
  foreign(c, l.name);
  EXPECT_FALSE(is_clickpipe_table(c, l.name));
  const auto e = expect_throws<FatalError>([&] { create_table(c, l); });
  const std::string m = message(e);
  EXPECT_NE(m.find(quote(l.name)), std::string::npos) << m;
  EXPECT_NE(m.find("not taken over: it is not one clickpipe made: its engine is MergeTree"),
            std::string::npos)
      << m;
  expect_intact(c, l.name);
}

TEST(NamesClickHouse, AClickPipeTableWithAnotherLayoutIsNotAdopted) {
  Client c(test::clickhouse_settings());
  const TableLayout l = layout_for(simple(), unique("layout"), c.version());
  // The same name with `v` of another type: a table made for another definition.
  TableDefinition other = simple();
  other.columns[1].type = "int8";
  TableLayout typed = layout_for(other, l.name, c.version());
  create_table(c, typed);
  insert(c, typed, one("1", "7"));
  auto e = expect_throws<FatalError>([&] { create_table(c, l); });
  EXPECT_NE(message(e).find("its column `v` is Nullable(Int64), not Nullable(String)"),
            std::string::npos)
      << message(e);
  EXPECT_EQ(count(c, l.name), "1\n");

  // And one lacking a column the layout needs.
  TableDefinition narrow = simple();
  narrow.columns.pop_back();
  const TableLayout l2 = layout_for(simple(), unique("narrow"), c.version());
  create_table(c, layout_for(narrow, l2.name, c.version()));
  e = expect_throws<FatalError>([&] { create_table(c, l2); });
  EXPECT_NE(message(e).find("it has no column `v`"), std::string::npos) << message(e);
}

TEST(NamesClickHouse, AClickPipeTableOrderedByAnotherKeyIsNotAdopted) {
  Client c(test::clickhouse_settings());
  const TableLayout l = layout_for(simple(), unique("keyed"), c.version());
  // Every column right, but rows deduplicated by another key.
  TableLayout other = l;
  other.order_by.push_back("_version");
  c.query(create_table_sql(other, c.settings().database));
  EXPECT_TRUE(is_clickpipe_table(c, l.name));
  const auto e = expect_throws<FatalError>([&] { create_table(c, l); });
  EXPECT_NE(message(e).find("it is ordered by (id, _version), not (id)"), std::string::npos)
      << message(e);
}

TEST(NamesClickHouse, ItsOwnTableIsAdoptedEvenWithColumnsAddedSince) {
  Client c(test::clickhouse_settings());
  const TableLayout l = layout_for(simple(), unique("own"), c.version());
  EXPECT_FALSE(is_clickpipe_table(c, l.name)) << "not there yet";
  create_table(c, l);
  EXPECT_TRUE(is_clickpipe_table(c, l.name));
  insert(c, l, one("1", "kept"));
  c.query("ALTER TABLE " + quote(l.name) + " ADD COLUMN `later` Nullable(String)");
  EXPECT_NO_THROW(create_table(c, l));  // as after a crash, or a table added again
  EXPECT_EQ(read_final(c, l), (Table{{s("1"), s("kept")}}));
}

// `clickpipe delete --drop-destination` (issue 15): its own tables go, anyone else's stay.
TEST(NamesClickHouse, DroppingADeletedPipesTablesDropsOnlyClickPipesOwn) {
  Client c(test::clickhouse_settings());
  const TableLayout l = layout_for(simple(), unique("drop_own"), c.version());
  create_table(c, l);
  insert(c, l, one("1", "gone"));
  EXPECT_EQ(drop_if_clickpipe(c, l.name), std::nullopt);
  EXPECT_FALSE(table_exists(c, l.name));
  EXPECT_EQ(drop_if_clickpipe(c, l.name), std::nullopt) << "already gone is fine";

  const std::string theirs = unique("drop_foreign");
  foreign(c, theirs);
  const std::optional<std::string> kept = drop_if_clickpipe(c, theirs);
  ASSERT_TRUE(kept.has_value());
  EXPECT_NE(kept->find("MergeTree"), std::string::npos) << *kept;
  expect_intact(c, theirs);
}

TEST(NamesClickHouse, AForeignResyncTableIsNotDropped) {
  Client c(test::clickhouse_settings());
  const TableLayout l = layout_for(simple(), unique("fresync"), c.version());
  create_table(c, l);
  insert(c, l, one("1", "main"));
  const std::string resync = resync_copy(l).name;
  foreign(c, resync);

  auto e = expect_throws<FatalError>([&] { create_resync_table(c, l); });
  EXPECT_NE(message(e).find(quote(resync)), std::string::npos) << message(e);
  EXPECT_NE(message(e).find("not one clickpipe made"), std::string::npos) << message(e);
  expect_intact(c, resync);

  e = expect_throws<FatalError>([&] { swap_resync(c, l.name); });
  EXPECT_NE(message(e).find(quote(resync)), std::string::npos) << message(e);
  expect_intact(c, resync);
  EXPECT_EQ(read_final(c, l), (Table{{s("1"), s("main")}})) << "nothing renamed";
  EXPECT_FALSE(table_exists(c, l.name + "_old"));
}

TEST(NamesClickHouse, AForeignOldTableIsNotDroppedAndNothingIsRenamed) {
  Client c(test::clickhouse_settings());
  const TableLayout l = layout_for(simple(), unique("fold"), c.version());
  create_table(c, l);
  insert(c, l, one("1", "old"));
  create_resync_table(c, l);
  insert(c, resync_copy(l), one("2", "new"));
  const std::string old = l.name + std::string(kOldSuffix);
  foreign(c, old);

  auto e = expect_throws<FatalError>([&] { swap_resync(c, l.name); });
  EXPECT_NE(message(e).find(quote(old)), std::string::npos) << message(e);
  expect_intact(c, old);
  EXPECT_EQ(read_final(c, l), (Table{{s("1"), s("old")}})) << "the swap must not have begun";
  EXPECT_EQ(read_final(c, resync_copy(l)), (Table{{s("2"), s("new")}}));

  // With the swap already done (no copy left), the foreign table is still not dropped.
  c.query("DROP TABLE " + quote(resync_copy(l).name));
  EXPECT_THROW(swap_resync(c, l.name), FatalError);
  expect_intact(c, old);
  EXPECT_EQ(read_final(c, l), (Table{{s("1"), s("old")}}));
}

// Crash recovery still works: what an interrupted resync of clickpipe's own left is cleaned up.
TEST(NamesClickHouse, ItsOwnLeftoversAreStillCleanedUp) {
  Client c(test::clickhouse_settings());
  const TableLayout l = layout_for(simple(), unique("leftover"), c.version());
  const TableLayout copy = resync_copy(l);
  const std::string old = l.name + std::string(kOldSuffix);
  create_table(c, l);
  insert(c, l, one("1", "old"));

  // A resync cut short left a loaded copy: a fresh resync starts from an empty one.
  create_resync_table(c, l);
  insert(c, copy, one("9", "stale"));
  create_resync_table(c, l);
  EXPECT_EQ(count(c, copy.name), "0\n");
  insert(c, copy, one("2", "new"));

  // A swap cut short before its drop left the previous old copy.
  c.query("CREATE TABLE " + quote(old) + " AS " + quote(l.name));
  EXPECT_TRUE(is_clickpipe_table(c, old));
  swap_resync(c, l.name);
  EXPECT_EQ(read_final(c, l), (Table{{s("2"), s("new")}}));
  EXPECT_FALSE(table_exists(c, copy.name));
  EXPECT_FALSE(table_exists(c, old));

  // A swap cut short between its rename and its drop.
  c.query("CREATE TABLE " + quote(old) + " AS " + quote(l.name));
  swap_resync(c, l.name);
  EXPECT_FALSE(table_exists(c, old));
  EXPECT_EQ(read_final(c, l), (Table{{s("2"), s("new")}}));
}

}  // namespace
}  // namespace clickpipe::clickhouse
