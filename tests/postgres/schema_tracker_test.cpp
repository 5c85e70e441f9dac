// SchemaTracker against a scripted catalog: each kind of definition change, without a server.
#include <gtest/gtest.h>

#include "clickpipe/error.hpp"
#include "clickpipe/postgres/schema_tracker.hpp"

namespace clickpipe::postgres {
namespace {

using pgoutput::Relation;
using pgoutput::RelationColumn;
using Kind = SchemaChange::Kind;

constexpr std::uint32_t kOid = 16400;
constexpr std::uint32_t kInt4 = 23, kText = 25, kInt8 = 20;

TableDefinition orders() {
  TableDefinition d;
  d.table = {"public", "orders"};
  d.oid = kOid;
  d.columns = {Column{"id", "int4", kInt4, -1, false, 0, 1},
               Column{"note", "text", kText, -1, true, 0, 2},
               Column{"qty", "int4", kInt4, -1, true, 0, 3}};
  d.primary_key = {"id"};
  return d;
}

Relation relation(std::vector<RelationColumn> cols, TableRef t = {"public", "orders"},
                  std::uint32_t id = kOid, char identity = 'd') {
  return Relation{id, t, identity, std::move(cols)};
}
RelationColumn col(std::string name, std::uint32_t type, bool key = false) {
  return RelationColumn{key, std::move(name), type, -1};
}

// A catalog the test edits, counting lookups.
struct Catalog {
  std::vector<CatalogColumn> columns{{1, "id", "int4", kInt4, -1, 0, false, false, true},
                                     {2, "note", "text", kText, -1, 0, false, false},
                                     {3, "qty", "int4", kInt4, -1, 0, false, false}};
  int lookups = 0;
  CatalogLookup lookup() {
    return [this](std::uint32_t oid) {
      ++lookups;
      EXPECT_EQ(oid, kOid);
      return columns;
    };
  }
  void drop(std::int32_t attnum) {
    for (auto& c : columns) {
      if (c.attnum == attnum) {
        c.dropped = true;
        c.name = "........pg.dropped." + std::to_string(attnum) + "........";
        c.type_oid = 0;
      }
    }
  }
};

Values row(std::initializer_list<const char*> v) {
  Values out;
  for (const char* s : v) out.push_back(s ? Datum::of(s) : Datum::null());
  return out;
}

TEST(SchemaTracker, UnchangedRelationMapsRowsAsTheyAreWithoutReadingTheCatalog) {
  Catalog cat;
  const TableDefinition def = orders();
  SchemaTracker t({&def, 1}, cat.lookup());
  EXPECT_TRUE(
      t.on_relation(relation({col("id", kInt4, true), col("note", kText), col("qty", kInt4)}))
          .empty());
  EXPECT_EQ(cat.lookups, 0);
  auto m = t.map(kOid, row({"1", "a", "2"}));
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->table, def.table);
  EXPECT_EQ(m->values, row({"1", "a", "2"}));
}

TEST(SchemaTracker, AddedColumnIsAppendedNullableAndMappedByName) {
  Catalog cat;
  cat.columns.push_back({4, "ship", "text", kText, -1, 0, false, false});
  const TableDefinition def = orders();
  SchemaTracker t({&def, 1}, cat.lookup());
  auto sc = t.on_relation(relation(
      {col("id", kInt4, true), col("note", kText), col("qty", kInt4), col("ship", kText)}));
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].kind, Kind::ColumnsAdded);
  ASSERT_EQ(sc[0].definition.columns.size(), 4u);
  EXPECT_EQ(sc[0].definition.columns[3].name, "ship");
  EXPECT_TRUE(sc[0].definition.columns[3].nullable);
  EXPECT_EQ(sc[0].definition.columns[3].attnum, 4);
  EXPECT_EQ(t.map(kOid, row({"1", "a", "2", "x"}))->values, row({"1", "a", "2", "x"}));
}

// The defect: dropping one column and adding another keeps the count, and values were mapped by
// position into the wrong columns.
TEST(SchemaTracker, DropOneAddAnotherNeverMapsByPosition) {
  Catalog cat;
  cat.drop(2);
  cat.columns.push_back({4, "ship", "text", kText, -1, 0, false, false});
  const TableDefinition def = orders();
  SchemaTracker t({&def, 1}, cat.lookup());
  auto sc =
      t.on_relation(relation({col("id", kInt4, true), col("qty", kInt4), col("ship", kText)}));
  ASSERT_EQ(sc.size(), 2u);
  EXPECT_EQ(sc[0].kind, Kind::ColumnsDropped);
  EXPECT_EQ(sc[1].kind, Kind::ColumnsAdded);
  const TableDefinition& next = sc[1].definition;
  ASSERT_EQ(next.columns.size(), 4u);
  EXPECT_TRUE(next.columns[1].dropped);  // note stays, NULL from now on
  // id, qty, ship -> id, (note NULL), qty, ship
  EXPECT_EQ(t.map(kOid, row({"7", "3", "dock"}))->values, row({"7", nullptr, "3", "dock"}));
}

TEST(SchemaTracker, RenamedColumnStopsTheTable) {
  Catalog cat;
  cat.columns[1].name = "remark";
  const TableDefinition def = orders();
  SchemaTracker t({&def, 1}, cat.lookup());
  auto sc =
      t.on_relation(relation({col("id", kInt4, true), col("remark", kText), col("qty", kInt4)}));
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].kind, Kind::TableStopped);
  EXPECT_NE(sc[0].description.find("column note was renamed to remark"), std::string::npos)
      << sc[0].description;
  EXPECT_NE(sc[0].description.find("resync"), std::string::npos);
  EXPECT_FALSE(t.map(kOid, row({"1", "a", "2"})));  // its rows are dropped from now on
  EXPECT_EQ(t.table(kOid), nullptr);
}

TEST(SchemaTracker, ChangedTypeStopsTheTableNamingOldAndNewType) {
  Catalog cat;
  cat.columns[2].type = "int8";
  cat.columns[2].type_oid = kInt8;
  const TableDefinition def = orders();
  SchemaTracker t({&def, 1}, cat.lookup());
  auto sc =
      t.on_relation(relation({col("id", kInt4, true), col("note", kText), col("qty", kInt8)}));
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].kind, Kind::TableStopped);
  EXPECT_NE(sc[0].description.find("column qty changed type from int4 to int8"), std::string::npos)
      << sc[0].description;
}

// The defect: a renamed table's changes were skipped as "no longer in the pipe" and their
// position confirmed.
TEST(SchemaTracker, RenamedTableIsFollowedByOidAndStopped) {
  Catalog cat;
  const TableDefinition def = orders();
  SchemaTracker t({&def, 1}, cat.lookup());
  auto sc = t.on_relation(relation({col("id", kInt4, true), col("note", kText), col("qty", kInt4)},
                                   {"public", "orders_2024"}));
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].kind, Kind::TableStopped);
  EXPECT_EQ(sc[0].table, def.table);
  EXPECT_NE(sc[0].description.find("renamed to public.orders_2024"), std::string::npos);
}

TEST(SchemaTracker, TableCreatedAgainUnderTheSameNameIsStopped) {
  Catalog cat;
  const TableDefinition def = orders();
  SchemaTracker t({&def, 1}, cat.lookup());
  auto sc = t.on_relation(
      relation({col("id", kInt4, true), col("note", kText), col("qty", kInt4)}, def.table, 99999));
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].kind, Kind::TableStopped);
  EXPECT_NE(sc[0].description.find("dropped and created again"), std::string::npos);
}

TEST(SchemaTracker, NewPrimaryKeyStopsTheTable) {
  Catalog cat;
  const TableDefinition def = orders();
  SchemaTracker t({&def, 1}, cat.lookup());
  auto sc = t.on_relation(
      relation({col("id", kInt4, true), col("note", kText), col("qty", kInt4, true)}));
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].kind, Kind::TableStopped);
  EXPECT_NE(sc[0].description.find("primary key changed"), std::string::npos);
}

TEST(SchemaTracker, ReplicaIdentityBecomingUsingIndexStopsTheTable) {
  Catalog cat;
  const TableDefinition def = orders();
  SchemaTracker t({&def, 1}, cat.lookup());
  auto sc = t.on_relation(relation({col("id", kInt4), col("note", kText), col("qty", kInt4, true)},
                                   def.table, kOid, 'i'));
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].kind, Kind::TableStopped);
  EXPECT_NE(sc[0].description.find("replica identity became USING INDEX"), std::string::npos)
      << sc[0].description;
}

// With REPLICA IDENTITY FULL every column is flagged: the key is checked in the catalog.
TEST(SchemaTracker, FullIdentityChecksTheKeyInTheCatalog) {
  Catalog cat;
  const TableDefinition def = orders();
  SchemaTracker t({&def, 1}, cat.lookup());
  const auto full =
      relation({col("id", kInt4, true), col("note", kText, true), col("qty", kInt4, true)},
               def.table, kOid, 'f');
  EXPECT_TRUE(t.on_relation(full).empty());
  EXPECT_EQ(cat.lookups, 1);
  cat.columns[0].key = false;
  cat.columns[2].key = true;  // the primary key moved to qty
  auto sc = t.on_relation(full);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].kind, Kind::TableStopped);
  EXPECT_NE(sc[0].description.find("primary key changed from (id) to (qty)"), std::string::npos)
      << sc[0].description;
}

TEST(SchemaTracker, RelationsOutsideThePipeAreDropped) {
  Catalog cat;
  const TableDefinition def = orders();
  SchemaTracker t({&def, 1}, cat.lookup());
  EXPECT_TRUE(t.on_relation(relation({col("x", kInt4, true)}, {"public", "other"}, 5)).empty());
  EXPECT_FALSE(t.map(5, row({"1"})));
}

TEST(SchemaTracker, DefinitionWithoutOidIsAdoptedByName) {
  Catalog cat;
  TableDefinition def = orders();
  def.oid = 0;
  for (auto& c : def.columns) c.attnum = 0;
  SchemaTracker t({&def, 1}, cat.lookup());
  EXPECT_TRUE(
      t.on_relation(relation({col("id", kInt4, true), col("note", kText), col("qty", kInt4)}))
          .empty());
  EXPECT_EQ(t.definitions()[0].oid, kOid);
  EXPECT_TRUE(t.map(kOid, row({"1", "a", "2"})));
}

TEST(SchemaTracker, RowThatDoesNotMatchItsDescriptionIsRefused) {
  Catalog cat;
  const TableDefinition def = orders();
  SchemaTracker t({&def, 1}, cat.lookup());
  t.on_relation(relation({col("id", kInt4, true), col("note", kText), col("qty", kInt4)}));
  EXPECT_THROW(t.map(kOid, row({"1", "a"})), FatalError);
}

}  // namespace
}  // namespace clickpipe::postgres
