// FileStore: durable writes, checksums, locking, generations, format versions (faults are in
// file_store_faults_test.cpp).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../expect.hpp"
#include "../files.hpp"
#include "../runtime/world.hpp"
#include "clickpipe/json.hpp"
#include "clickpipe/runtime/pipe_service.hpp"
#include "clickpipe/store/file_store.hpp"

namespace clickpipe::test {
namespace {

namespace fs = std::filesystem;

// A record with something in every field, times in whole milliseconds (as stored).
PipeRecord sample(const std::string& id) {
  PipeRecord r;
  r.id = id;
  Lifecycle l(Mode::CdcOnly);
  l.apply(Trigger::Provisioned);
  l.apply(Trigger::FatalError);
  r.lifecycle = l;
  r.intent = Intent::Paused;
  r.since = TimePoint(std::chrono::milliseconds(1700000000123));
  r.settings.pull_batch_size = 77;
  r.tables = {{"public", "orders"}, {"Sales", "Order Items"}};
  r.definitions = {table_def("orders")};
  r.definitions[0].oid = 16401;
  r.definitions[0].columns[0].attnum = 1;
  r.definitions[0].columns.back().dropped = true;
  r.definitions[0].leaves = {{"public", "orders_2024"}, {"public", "orders_2025"}};
  r.pending_added = {{"public", "x"}};
  r.cancelled_added = {{"public", "y"}};
  r.slot = SlotInfo{"clickpipe_" + id, Lsn{0x16B374D848}};
  r.load = {TableLoadRecord{
      {"public", "orders"},
      {Partition{0, "", "5", 5, {"public", "orders_2024"}}, Partition{1, "5", "", 7}},
      {1},
      7}};
  r.confirmed = Lsn{0x16B374D900};
  r.cdc_batches = 3;
  r.cdc_changes = 44;
  r.last_error =
      ErrorInfo{"boom", State::Setup, TimePoint(std::chrono::milliseconds(1700000000456)), true};
  r.history = {HistoryEntry{State::Provisioning, Trigger::Provisioned, State::Setup,
                            TimePoint(std::chrono::milliseconds(1700000000001))}};
  r.transitions = 2;
  r.stopped_tables = {StoppedTable{{"public", "orders"},
                                   "column a was renamed to b; resync",
                                   TimePoint(std::chrono::milliseconds(1700000000789))}};
  r.row_versions = RowVersions::PackedLegacy;
  r.schema_changes = {SchemaEvent{{"public", "orders"},
                                  SchemaChange::Kind::ColumnsAdded,
                                  "column(s) added: c text",
                                  TimePoint(std::chrono::milliseconds(1700000000700))}};
  return r;
}

// Rewrites a saved record as an older format would have written it: `edit` changes the body,
// the checksum is computed again (the same way every version did).
void downgrade(const fs::path& file, int version,
               const std::function<void(nlohmann::json&)>& edit) {
  rewrite_record(file, [&](nlohmann::json& j) {
    j["format_version"] = version;
    edit(j.at("record"));
  });
}

TEST(FileStore, SavesAndLoadsEveryField) {
  TempDirGuard dir;
  auto store = FileStore::open(dir.path);
  store->save(sample("a"));
  store->save(sample("b/with slash"));
  const LoadResult loaded = store->load_all();
  EXPECT_TRUE(loaded.broken.empty());
  ASSERT_EQ(loaded.records.size(), 2u);
  EXPECT_EQ(loaded.records[0], sample("a"));
  EXPECT_EQ(loaded.records[1].id, "b/with slash");
  EXPECT_TRUE(fs::exists(dir.root / "b%2Fwith%20slash.json"));
  EXPECT_FALSE(fs::exists(dir.root / "a.json.tmp")) << "no temp file left behind";
}

TEST(FileStore, TempFilesLeftByACrashAreReplaced) {
  // Temp files are created exclusively (never through a symlink), so a stale one is removed first.
  TempDirGuard dir;
  { FileStore::open(dir.path)->save(sample("a")); }
  spit(dir.root / "a.json.tmp", "half a record");
  spit(dir.root / "GENERATION.tmp", "9");
  auto store = FileStore::open(dir.path);
  PipeRecord changed = sample("a");
  changed.cdc_changes = 45;
  EXPECT_NO_THROW(store->save(changed));
  EXPECT_EQ(store->load_all().records.at(0), changed);
  EXPECT_FALSE(fs::exists(dir.root / "a.json.tmp"));
  EXPECT_FALSE(fs::exists(dir.root / "GENERATION.tmp"));
}

TEST(FileStore, RecordsCarryFormatVersionGenerationAndChecksum) {
  TempDirGuard dir;
  auto store = FileStore::open(dir.path);
  store->save(sample("a"));
  const auto j = nlohmann::json::parse(slurp(dir.root / "a.json"));
  EXPECT_EQ(j.at("format_version"), PipeRecord::kFormatVersion);
  EXPECT_EQ(j.at("generation"), store->generation());
  EXPECT_EQ(j.at("checksum").get<std::string>().rfind("fnv1a64:", 0), 0u);
}

TEST(FileStore, ASecondProcessIsRefusedWithAClearError) {
  TempDirGuard dir;
  auto first = FileStore::open(dir.path);
  const auto e = expect_throws<StoreError>([&] { FileStore::open(dir.path); }, "second open");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), StoreErrorCode::Locked) << to_string(e->code());
  EXPECT_NE(
      std::string(e->what()).find("in use by another process (pid " + std::to_string(::getpid())),
      std::string::npos)
      << e->what();
  first.reset();
  EXPECT_NO_THROW(FileStore::open(dir.path)) << "the lock goes with the first store";
}

TEST(FileStore, EachOpenIsANewGenerationAndAStaleWriterIsRefused) {
  TempDirGuard dir;
  std::uint64_t g1 = 0;
  {
    auto s = FileStore::open(dir.path);
    g1 = s->generation();
  }
  auto s2 = FileStore::open(dir.path);
  EXPECT_EQ(s2->generation(), g1 + 1);
  s2->save(sample("a"));
  // A newer writer took over (as after a lost lock): this one must not write any more.
  spit(dir.root / "GENERATION", std::to_string(s2->generation() + 1));
  for (int i = 0; i < 2; ++i) {  // and it keeps refusing
    const auto e = expect_throws<StoreError>([&] { s2->save(sample("a")); }, "stale save");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), StoreErrorCode::Failed) << to_string(e->code());
    EXPECT_NE(std::string(e->what()).find("newer writer"), std::string::npos) << e->what();
  }
}

TEST(FileStore, ATornRecordIsReportedByNameAndNeverOverwritten) {
  TempDirGuard dir;
  {
    auto store = FileStore::open(dir.path);
    store->save(sample("a"));
    store->save(sample("b"));
  }
  const std::string whole = slurp(dir.root / "b.json");
  const std::string torn = whole.substr(0, whole.size() / 2);
  spit(dir.root / "b.json", torn);
  auto store = FileStore::open(dir.path);
  const LoadResult loaded = store->load_all();
  ASSERT_EQ(loaded.records.size(), 1u);
  EXPECT_EQ(loaded.records[0].id, "a");
  ASSERT_EQ(loaded.broken.size(), 1u);
  EXPECT_EQ(loaded.broken[0].name, "b.json");
  EXPECT_NE(loaded.broken[0].reason.find("torn or damaged"), std::string::npos);
  EXPECT_TRUE(store->holds("b"));

  // A service reports it, runs the rest, and refuses to create a pipe over it.
  World w;
  ServiceOptions options;
  options.store = std::move(store);
  options.executors = [&](const std::string& id, Mode) { return w.mem.executors(id); };
  options.logger = quiet_logger();
  PipeService service(options);
  ASSERT_EQ(service.broken().size(), 1u);
  EXPECT_THROW(service.create(w.config("b")), StoreError);
  EXPECT_EQ(slurp(dir.root / "b.json"), torn) << "the broken record is left as it was";
  EXPECT_NE(service_status_json(service.statuses(), service.broken()).find("torn or damaged"),
            std::string::npos);
}

TEST(FileStore, AFlippedByteFailsTheChecksum) {
  TempDirGuard dir;
  {
    auto store = FileStore::open(dir.path);
    store->save(sample("a"));
  }
  std::string text = slurp(dir.root / "a.json");
  const std::string field = "\"pull_batch_size\": ";
  const auto at = text.find(field + "77");
  ASSERT_NE(at, std::string::npos);
  text[at + field.size()] = '8';  // 77 -> 87, still valid JSON
  spit(dir.root / "a.json", text);
  auto store = FileStore::open(dir.path);
  const LoadResult loaded = store->load_all();
  EXPECT_TRUE(loaded.records.empty());
  ASSERT_EQ(loaded.broken.size(), 1u);
  EXPECT_NE(loaded.broken[0].reason.find("checksum mismatch"), std::string::npos);
}

TEST(FileStore, ANewerFormatVersionIsRefusedClearly) {
  TempDirGuard dir;
  {
    auto store = FileStore::open(dir.path);
    store->save(sample("a"));
  }
  auto j = nlohmann::json::parse(slurp(dir.root / "a.json"));
  j["format_version"] = PipeRecord::kFormatVersion + 1;
  spit(dir.root / "a.json", j.dump());
  auto store = FileStore::open(dir.path);
  const LoadResult loaded = store->load_all();
  ASSERT_EQ(loaded.broken.size(), 1u);
  EXPECT_NE(loaded.broken[0].reason.find("written by a newer clickpipe"), std::string::npos)
      << loaded.broken[0].reason;
}

TEST(FileStore, AnOlderFormatVersionIsReadAndUpgraded) {
  // Version 1 had no intent and no cancelled additions.
  TempDirGuard dir;
  { FileStore::open(dir.path)->save(sample("a")); }
  downgrade(dir.root / "a.json", 1, [](nlohmann::json& body) {
    body.erase("intent");
    body.erase("cancelled_added");
    body.erase("stopped_tables");
    body.erase("schema_changes");
    body.erase("row_versions");
    body["lifecycle"]["state"] = "Paused";
  });
  auto store = FileStore::open(dir.path);
  const LoadResult loaded = store->load_all();
  ASSERT_TRUE(loaded.broken.empty()) << loaded.broken[0].reason;
  ASSERT_EQ(loaded.records.size(), 1u);
  EXPECT_EQ(loaded.records[0].intent, Intent::Paused);
  EXPECT_TRUE(loaded.records[0].cancelled_added.empty());
  EXPECT_EQ(loaded.records[0].confirmed, sample("a").confirmed);
}

TEST(FileStore, AVersion2RecordIsReadWithoutSchemaHistoryAndOids) {
  // Version 2 had no stopped tables, schema changes, OIDs, attnums, leaves or leaf partitions.
  TempDirGuard dir;
  { FileStore::open(dir.path)->save(sample("a")); }
  downgrade(dir.root / "a.json", 2, [](nlohmann::json& body) {
    body.erase("stopped_tables");
    body.erase("schema_changes");
    body.erase("row_versions");
    for (auto& def : body.at("definitions")) {
      def.erase("oid");
      def.erase("leaves");
      for (auto& c : def.at("columns")) {
        c.erase("attnum");
        c.erase("dropped");
      }
    }
    for (auto& l : body.at("load")) {
      for (auto& p : l.at("partitions")) p.erase("leaf");
    }
  });
  const LoadResult loaded = FileStore::open(dir.path)->load_all();
  ASSERT_TRUE(loaded.broken.empty()) << loaded.broken[0].reason;
  ASSERT_EQ(loaded.records.size(), 1u);
  const PipeRecord& r = loaded.records[0];
  EXPECT_TRUE(r.stopped_tables.empty());
  EXPECT_TRUE(r.schema_changes.empty());
  EXPECT_EQ(r.definitions.at(0).oid, 0u) << "adopted by name when CDC starts";
  EXPECT_EQ(r.definitions.at(0).columns.at(0).attnum, 0);
  EXPECT_TRUE(r.load.at(0).partitions.at(0).leaf.name.empty());
  EXPECT_EQ(r.confirmed, sample("a").confirmed);
  EXPECT_EQ(r.row_versions, RowVersions::PackedLegacy) << "CDC wrote packed versions";
}

TEST(FileStore, AVersion2RecordThatNeverRanCdcMovesToCommitLsnVersions) {
  TempDirGuard dir;
  PipeRecord fresh = sample("a");
  fresh.confirmed.reset();
  { FileStore::open(dir.path)->save(fresh); }
  downgrade(dir.root / "a.json", 2, [](nlohmann::json& body) {
    body.erase("stopped_tables");
    body.erase("schema_changes");
    body.erase("row_versions");
  });
  const LoadResult loaded = FileStore::open(dir.path)->load_all();
  ASSERT_EQ(loaded.records.size(), 1u);
  EXPECT_EQ(loaded.records[0].row_versions, RowVersions::CommitLsn);
}

TEST(FileStore, AnUnknownSchemaChangeKindIsRefusedWithItsField) {
  TempDirGuard dir;
  { FileStore::open(dir.path)->save(sample("a")); }
  downgrade(dir.root / "a.json", PipeRecord::kFormatVersion, [](nlohmann::json& body) {
    body.at("schema_changes").at(0)["kind"] = "columns_renamed";
  });
  const LoadResult loaded = FileStore::open(dir.path)->load_all();
  ASSERT_EQ(loaded.broken.size(), 1u);
  EXPECT_NE(loaded.broken[0].reason.find("record.schema_changes.kind"), std::string::npos)
      << loaded.broken[0].reason;
}

}  // namespace
}  // namespace clickpipe::test
