// Names that cannot collide, checked before anything exists (no server): pipe ids the slot and
// publication can take, destination tables two source tables would share or that a resync's
// copies would be mistaken for, and which existing ClickHouse tables count as clickpipe's.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../expect.hpp"
#include "../runtime/world.hpp"
#include "clickpipe/clickhouse/layout.hpp"
#include "clickpipe/clickhouse/tables.hpp"
#include "clickpipe/pg_to_clickhouse/executors.hpp"
#include "clickpipe/store/memory_store.hpp"

namespace clickpipe::test {
namespace {

namespace op = testing::op;

// Every executor call the fault plan counted.
std::uint32_t executor_calls(const testing::FaultPlan& plan) {
  std::uint32_t n = 0;
  for (std::string_view o :
       {op::provision, op::read_definitions, op::create_tables, op::swap_resync_tables,
        op::remove_tables, op::teardown, op::begin_snapshot, op::plan_partitions,
        op::copy_partition, op::end_snapshot, op::cdc_start, op::pull, op::apply, op::confirm,
        op::cdc_stop}) {
    n += plan.calls(o);
  }
  return n;
}

// The in-memory TableSetup, judging table sets as the reference executors do.
class ReferenceNames final : public ForwardingTableSetup {
 public:
  using ForwardingTableSetup::ForwardingTableSetup;
  void check_tables(std::span<const TableRef> t) const override {
    pg_to_clickhouse::check_destination_names(t);
  }
};

struct NamesWorld {
  World w;
  std::shared_ptr<MemoryStore> store = std::make_shared<MemoryStore>();

  // The world's executors for `id` with reference naming, inside the counting fault wrappers
  // (so the hook also goes through FaultyTableSetup).
  Executors executors(const std::string& id) const {
    Executors ex = w.mem.executors(id);
    ex.table_setup = std::make_shared<ReferenceNames>(ex.table_setup);
    return testing::with_faults(ex, w.faults);
  }
  PipeOptions options() const {
    PipeOptions o;
    o.logger = quiet_logger();
    o.clock = w.clock;
    o.seed = 42;
    o.store = store;
    return o;
  }
  std::unique_ptr<Pipe> make(PipeConfig cfg) {
    const std::string id = cfg.id;
    return std::make_unique<Pipe>(std::move(cfg), executors(id), options());
  }
  // Nothing happened anywhere: no executor call, no record, no pipe at the service.
  void expect_untouched(const std::string& what) const {
    EXPECT_EQ(executor_calls(*w.faults), 0u) << what;
    EXPECT_TRUE(store->load_all().records.empty()) << what;
    EXPECT_TRUE(w.mem.service->pipes().empty()) << what;
  }
};

constexpr const char* kRule = "must be 1 to 53 characters of a-z, 0-9 and _";

TEST(Names, IdsASlotCannotTakeAreRefusedBeforeAnythingRuns) {
  struct Case {
    std::string id;
    std::string suggestion;  // empty: none expected
  };
  const std::vector<Case> cases = {
      {"orders-to-ch", "\"orders_to_ch\""},
      {"Orders", "\"orders\""},
      {std::string(54, 'a'), ""},
      {"a/b", ""},
      {"", ""},
      {"caf\xc3\xa9", ""},
      {"a b", ""},
  };
  for (const Case& c : cases) {
    NamesWorld n;
    const auto e = expect_throws<InvalidField>([&] { n.make(n.w.config(c.id)); }, c.id);
    EXPECT_EQ(e ? e->field() : "", "id") << c.id;
    const std::string m = message(e);
    EXPECT_NE(m.find(kRule), std::string::npos) << m;
    EXPECT_NE(m.find("clickpipe_<id>"), std::string::npos) << m;
    if (c.suggestion.empty()) {
      EXPECT_EQ(m.find("would do"), std::string::npos) << m;
    } else {
      EXPECT_NE(m.find(c.suggestion + " would do"), std::string::npos) << m;
    }
    n.expect_untouched(c.id);
  }
}

TEST(Names, ALongestIdOf53CharactersIsAcceptedAndRuns) {
  NamesWorld n;
  const std::string id = "x_" + std::string(48, '0') + "_9z";
  ASSERT_EQ(id.size(), 53u);
  auto p = n.make(n.w.config(id));
  p->start();
  ASSERT_TRUE(p->wait_for(State::Running, 10s));
  ASSERT_TRUE(p->status().slot.has_value());
  EXPECT_EQ(p->status().slot->name.size(), 63u) << "PostgreSQL's longest slot name";
  EXPECT_TRUE(n.store->holds(id));
}

TEST(Names, ASavedPipeWithABadIdIsRefusedOnLoad) {
  NamesWorld n;
  PipeRecord saved;
  {
    auto p = n.make(n.w.config("orders"));
    saved = p->record();
  }
  saved.id = "Orders-Old";
  const auto e =
      expect_throws<InvalidField>([&] { Pipe again(saved, n.executors(saved.id), n.options()); });
  EXPECT_EQ(e ? e->field() : "", "id");
  EXPECT_NE(message(e).find("\"orders_old\" would do"), std::string::npos) << message(e);
}

TEST(Names, TablesLandingInOneDestinationTableAreRefusedAtCreation) {
  NamesWorld n;
  PipeConfig cfg = n.w.config("collide");
  cfg.tables = {TableRef{"a", "b"}, n.w.orders, TableRef{"public", "a_b"}};
  const auto e = expect_throws<InvalidField>([&] { n.make(cfg); });
  EXPECT_EQ(e ? e->field() : "", "tables[2]");
  const std::string m = message(e);
  EXPECT_NE(m.find("public.a_b"), std::string::npos) << m;
  EXPECT_NE(m.find("a.b"), std::string::npos) << m;
  EXPECT_NE(m.find("tables[0]"), std::string::npos) << m;
  n.expect_untouched("collision");

  cfg.tables = {n.w.orders, TableRef{"public", "users_resync"}};
  const auto r = expect_throws<InvalidField>([&] { n.make(cfg); });
  EXPECT_EQ(r ? r->field() : "", "tables[1]");
  EXPECT_NE(message(r).find("_resync"), std::string::npos) << message(r);
  n.expect_untouched("resync suffix");
}

TEST(Names, AddingATableThatCollidesIsInvalidAndChangesNothing) {
  NamesWorld n;
  n.w.mem.source->create_table(table_def("a_b"));
  PipeConfig cfg = n.w.config("adding");
  cfg.tables = {n.w.orders, TableRef{"public", "a_b"}};
  auto p = n.make(cfg);
  p->start();
  ASSERT_TRUE(p->wait_for(State::Running, 10s));
  const PipeRecord before = p->record();
  const std::uint32_t reads = n.w.faults->calls(op::read_definitions);
  const std::uint32_t creates = n.w.faults->calls(op::create_tables);

  for (const std::vector<TableRef>& add :
       {std::vector<TableRef>{TableRef{"a", "b"}},
        std::vector<TableRef>{n.w.users, TableRef{"orders", "old"}},
        std::vector<TableRef>{TableRef{"x", "y_z"}, TableRef{"x_y", "z"}}}) {
    const CommandResult r = p->add_tables(add);
    EXPECT_EQ(r.status, CommandResult::Status::Invalid) << add.back().qualified();
    EXPECT_NE(r.message.find(add.back().qualified()), std::string::npos) << r.message;
    EXPECT_EQ(p->state(), State::Running);
    const PipeRecord after = p->record();
    EXPECT_EQ(after.tables, before.tables);
    EXPECT_TRUE(after.pending_added.empty());
    EXPECT_EQ(after.transitions, before.transitions);
    ASSERT_EQ(n.store->load_all().records.size(), 1u);
    EXPECT_EQ(n.store->load_all().records[0].tables, before.tables);
  }
  EXPECT_NE(p->add_tables({TableRef{"a", "b"}}).message.find("public.a_b"), std::string::npos)
      << "the message names the table already in the pipe";
  EXPECT_EQ(n.w.faults->calls(op::read_definitions), reads);
  EXPECT_EQ(n.w.faults->calls(op::create_tables), creates);

  // A table that lands apart from the others is still added.
  ASSERT_TRUE(p->add_tables({n.w.users}));
  EXPECT_TRUE(p->wait_for(State::Running, 10s));
  EXPECT_TRUE(n.w.wait_in_sync(n.w.users));
}

// A pipe saved before names were checked, holding `orders` and `orders_old`: a resync would drop
// the second when it swaps the first, so it is refused; an addition that clashes with nothing is
// still taken.
TEST(Names, ASavedPipeWithClashingTablesRefusesResyncButTakesAnUnrelatedAddition) {
  NamesWorld n;
  n.w.mem.source->create_table(table_def("orders_old"));
  PipeConfig cfg = n.w.config("legacy");
  cfg.tables = {n.w.orders, TableRef{"public", "orders_old"}};
  PipeRecord saved;
  {
    // Created without the check, as an older version did.
    Pipe old(cfg, testing::with_faults(n.w.mem.executors(cfg.id), n.w.faults), n.options());
    old.start();
    ASSERT_TRUE(old.wait_for(State::Running, 10s));
    saved = old.record();
  }
  Pipe p(saved, n.executors(saved.id), n.options());
  const CommandResult r = p.resync();
  EXPECT_EQ(r.status, CommandResult::Status::Invalid);
  EXPECT_NE(r.message.find("_old"), std::string::npos) << r.message;
  EXPECT_EQ(p.state(), State::Running);
  EXPECT_EQ(p.record().transitions, saved.transitions) << "nothing changed";

  EXPECT_EQ(p.add_tables({TableRef{"public", "users_old"}}).status, CommandResult::Status::Invalid);
  const CommandResult added = p.add_tables({n.w.users});
  EXPECT_NE(added.status, CommandResult::Status::Invalid) << added.message;
}

TEST(Names, DestinationNamesOfTheReferenceExecutors) {
  using pg_to_clickhouse::check_destination_names;
  auto refused = [](std::vector<TableRef> tables) {
    return expect_throws<InvalidField>([&] { check_destination_names(tables); });
  };
  EXPECT_NO_THROW(check_destination_names(std::vector<TableRef>{}));
  EXPECT_NO_THROW(check_destination_names(std::vector<TableRef>{{"public", "orders"},
                                                                {"sales", "orders"},
                                                                {"public", "old"},
                                                                {"public", "resync"},
                                                                {"public", "bold"},
                                                                {"public", "old_orders"},
                                                                {"public", "orders_resynced"}}));

  auto e = refused({{"public", "x"}, {"a", "b"}, {"public", "a_b"}});
  EXPECT_EQ(e ? e->field() : "", "tables[2]");
  EXPECT_NE(message(e).find("public.a_b and a.b (tables[1])"), std::string::npos) << message(e);
  EXPECT_NE(message(e).find("ClickHouse table a_b"), std::string::npos) << message(e);
  e = refused({{"public", "a_b"}, {"a", "b"}});
  EXPECT_EQ(e ? e->field() : "", "tables[1]");
  e = refused({{"a_b", "c"}, {"a", "b_c"}});  // both a_b_c, neither public
  EXPECT_EQ(e ? e->field() : "", "tables[1]");

  for (const TableRef& t : {TableRef{"public", "orders_old"}, TableRef{"public", "orders_resync"},
                            TableRef{"orders", "old"}, TableRef{"x", "y_resync"}}) {
    e = refused({{"public", "fine"}, t});
    EXPECT_EQ(e ? e->field() : "", "tables[1]") << t.qualified();
    EXPECT_NE(message(e).find(t.qualified()), std::string::npos) << message(e);
  }

  // The reference executors ask it through the hook.
  pg_to_clickhouse::Config cfg;  // never connects: check_tables does no I/O
  cfg.source.host = "127.0.0.1";
  cfg.source.dbname = "app";
  cfg.source.user = "clickpipe";
  cfg.pipe_id = "names";
  const Executors ex = pg_to_clickhouse::make_executors(cfg);
  const std::vector<TableRef> colliding = {{"a", "b"}, {"public", "a_b"}};
  EXPECT_THROW(ex.table_setup->check_tables(colliding), InvalidField);
}

// Which existing ClickHouse tables are clickpipe's, judged from what the server describes.
TEST(Names, AClickPipeTableIsKnownByItsLayout) {
  using namespace clickhouse;
  const TableDefinition def{
      TableRef{"public", "t"},
      {Column{"id", "int8", 20, -1, false, 0}, Column{"v", "text", 25, -1, true, 0},
       Column{"d", "numeric", 1700, ((12 << 16) | 3) + 4, true, 0}},
      {"id"}};
  const TableLayout l = layout_for(def, "t", ServerVersion{18, 16});
  ExistingTable ours{"ReplacingMergeTree",
                     {{"id", "Int64"},
                      {"v", "Nullable(String)"},
                      {"d", "Nullable(Decimal(12,3))"},  // spacing is not a difference
                      {"_version", "UInt64"},
                      {"_is_deleted", "UInt8"},
                      {"_synced_at", "DateTime"}},
                     "id"};
  EXPECT_EQ(not_clickpipe_because(ours), std::nullopt);
  EXPECT_EQ(not_adoptable_because(ours, l), std::nullopt);
  ExistingTable key_26 = ours;  // 26.x spells a one-column key "(id)"
  key_26.sorting_key = "(id)";
  EXPECT_EQ(not_adoptable_because(key_26, l), std::nullopt);
  ExistingTable other_key = ours;
  other_key.sorting_key = "id, v";
  EXPECT_EQ(not_adoptable_because(other_key, l), "it is ordered by (id, v), not (id)");

  ExistingTable extra = ours;  // a column the source added later
  extra.columns.emplace_back("added", "Nullable(String)");
  EXPECT_EQ(not_adoptable_because(extra, l), std::nullopt);

  ExistingTable other_type = ours;
  other_type.columns[1].second = "String";
  EXPECT_EQ(not_clickpipe_because(other_type), std::nullopt);
  EXPECT_EQ(not_adoptable_because(other_type, l).value_or(""),
            "its column `v` is String, not Nullable(String)");

  ExistingTable missing = ours;
  missing.columns.erase(missing.columns.begin() + 2);
  EXPECT_EQ(not_adoptable_because(missing, l).value_or(""), "it has no column `d`");

  ExistingTable engine = ours;
  engine.engine = "MergeTree";
  EXPECT_EQ(not_clickpipe_because(engine).value_or(""),
            "its engine is MergeTree, not ReplacingMergeTree");
  EXPECT_NE(not_adoptable_because(engine, l).value_or("").find("not one clickpipe made"),
            std::string::npos);

  ExistingTable no_mark = ours;
  no_mark.columns.pop_back();
  EXPECT_EQ(not_clickpipe_because(no_mark).value_or(""), "it has no column `_synced_at`");
  ExistingTable wrong_mark = ours;
  wrong_mark.columns[3].second = "Int64";
  EXPECT_EQ(not_clickpipe_because(wrong_mark).value_or(""),
            "its column `_version` is Int64, not UInt64");
}

}  // namespace
}  // namespace clickpipe::test
