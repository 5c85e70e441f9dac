// FileStore under injected faults, one FileSystem operation at a time: each error surfaces as a
// StoreError with the code that says what to do about it and a message naming the path, and
// changes nothing the store relies on (the previous record still loads).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "../expect.hpp"
#include "../files.hpp"
#include "../runtime/world.hpp"
#include "clickpipe/store/file_store.hpp"
#include "clickpipe/testing/flaky_file_system.hpp"

namespace clickpipe::test {
namespace {

namespace fs = std::filesystem;

PipeRecord record(const std::string& id, std::uint64_t changes) {
  PipeRecord r;
  r.id = id;
  r.lifecycle = Lifecycle(Mode::CdcOnly);
  r.cdc_changes = changes;
  return r;
}

// One injected error and what it must become.
struct Fault {
  const char* operation;
  int error;
  StoreErrorCode code;
  std::string path;  // what the message must name
};

std::string describe(const Fault& f) {
  return std::string(f.operation) + " failing with " + std::strerror(f.error);
}

// Runs `f`, which must throw a StoreError with `code` and a message naming `path`.
void expect_store_error(const std::function<void()>& f, StoreErrorCode code,
                        const std::string& path, const std::string& what) {
  const auto e = expect_throws<StoreError>(f, what);
  if (!e) return;
  EXPECT_EQ(to_string(e->code()), to_string(code)) << what << ": " << e->what();
  EXPECT_EQ(e->transient(), code == StoreErrorCode::Unavailable) << what;
  EXPECT_NE(std::string(e->what()).find(path), std::string::npos) << what << ": " << e->what();
}

// A directory holding one saved record, "a" with 1 change, and a FlakyFileSystem over it.
struct Saved {
  TempDirGuard dir;
  std::shared_ptr<testing::FlakyFileSystem> flaky = std::make_shared<testing::FlakyFileSystem>();
  std::string a_json;
  std::string a_tmp;

  Saved() {
    FileStore::open(dir.path, flaky)->save(record("a", 1));
    a_json = (dir.root / "a.json").string();
    a_tmp = a_json + ".tmp";
  }

  // The record as first saved is what a fresh, fault-free store loads.
  void expect_unchanged(const std::string& what) {
    flaky->heal();
    const LoadResult loaded = FileStore::open(dir.path)->load_all();
    EXPECT_TRUE(loaded.broken.empty()) << what;
    ASSERT_EQ(loaded.records.size(), 1u) << what;
    EXPECT_EQ(loaded.records[0], record("a", 1)) << what;
    EXPECT_FALSE(fs::exists(a_tmp)) << what << ": no temp file left behind";
  }
};

TEST(FileStoreFaults, OpeningFailsWithACodeAndLeavesTheGenerationAsItWas) {
  Saved s;
  const std::string gen = s.dir.path + "/GENERATION";
  for (const Fault& f : {
           Fault{"create_dir", EACCES, StoreErrorCode::Refused, s.dir.path},
           Fault{"create_dir", ENOSPC, StoreErrorCode::Unavailable, s.dir.path},
           Fault{"inspect", EIO, StoreErrorCode::Unavailable, s.dir.path},
           Fault{"inspect", EACCES, StoreErrorCode::Refused, s.dir.path},
           Fault{"lock", EWOULDBLOCK, StoreErrorCode::Locked, s.dir.path},
           Fault{"lock", EROFS, StoreErrorCode::Refused, s.dir.path + "/LOCK"},
           Fault{"read_file", EIO, StoreErrorCode::Unavailable, gen},
           Fault{"read_file", EACCES, StoreErrorCode::Refused, gen},
           Fault{"write_file", ENOSPC, StoreErrorCode::Unavailable, gen + ".tmp"},
           Fault{"fsync_file", EIO, StoreErrorCode::Unavailable, gen + ".tmp"},
           Fault{"rename", EIO, StoreErrorCode::Unavailable, gen + ".tmp"},
       }) {
    const std::string before = slurp(gen);
    s.flaky->fail(f.operation, f.error);
    expect_store_error([&] { FileStore::open(s.dir.path, s.flaky); }, f.code, f.path, describe(f));
    EXPECT_EQ(slurp(gen), before) << describe(f);
    EXPECT_FALSE(fs::exists(gen + ".tmp")) << describe(f);
    s.expect_unchanged(describe(f));  // which also shows the lock was let go
  }
}

TEST(FileStoreFaults, ADirectoryThatCannotExistIsNotFound) {
  TempDirGuard dir;
  const std::string store = dir.path + "/no/such/parent";
  expect_store_error([&] { FileStore::open(store); }, StoreErrorCode::NotFound, store, "open");
}

TEST(FileStoreFaults, ADirectoryFsyncFailingAtOpenIsFailedAndOpeningAgainWorks) {
  Saved s;
  s.flaky->fail("fsync_dir", EIO);
  expect_store_error([&] { FileStore::open(s.dir.path, s.flaky); }, StoreErrorCode::Failed,
                     s.dir.path, "open");
  s.expect_unchanged("fsync_dir at open");
}

TEST(FileStoreFaults, ASaveThatFailsLeavesTheOldRecordAndTheNextSaveWorks) {
  Saved s;
  auto store = FileStore::open(s.dir.path, s.flaky);
  const std::string gen = s.dir.path + "/GENERATION";
  for (const Fault& f : {
           Fault{"read_file", EIO, StoreErrorCode::Unavailable, gen},
           Fault{"write_file", ENOSPC, StoreErrorCode::Unavailable, s.a_tmp},
           Fault{"write_file", EACCES, StoreErrorCode::Refused, s.a_tmp},
           Fault{"write_file", EROFS, StoreErrorCode::Refused, s.a_tmp},
           Fault{"write_file", ENAMETOOLONG, StoreErrorCode::Refused, s.a_tmp},
           Fault{"write_file", ENOENT, StoreErrorCode::NotFound, s.a_tmp},
           Fault{"fsync_file", EIO, StoreErrorCode::Unavailable, s.a_tmp},
           Fault{"rename", EIO, StoreErrorCode::Unavailable, " to " + s.a_json},
           Fault{"rename", EPERM, StoreErrorCode::Refused, " to " + s.a_json},
           // A directory where the record should be: no wait heals it, so it is not retried.
           Fault{"rename", EISDIR, StoreErrorCode::Refused, " to " + s.a_json},
           Fault{"write_file", ENOTDIR, StoreErrorCode::Refused, s.a_tmp},
           // Whether a stale temp file is in the way cannot be told.
           Fault{"inspect", EIO, StoreErrorCode::Unavailable, s.a_tmp},
       }) {
    s.flaky->fail(f.operation, f.error);
    expect_store_error([&] { store->save(record("a", 2)); }, f.code, f.path, describe(f));
    EXPECT_EQ(store->load_all().records.at(0), record("a", 1)) << describe(f);
    EXPECT_FALSE(fs::exists(s.a_tmp)) << describe(f) << ": the doubtful temp file is gone";
  }
  store->save(record("a", 2));
  EXPECT_EQ(store->load_all().records.at(0), record("a", 2));
}

TEST(FileStoreFaults, AFailedDirectoryFsyncPoisonsEveryLaterWriteUntilReopened) {
  Saved s;
  auto store = FileStore::open(s.dir.path, s.flaky);
  s.flaky->fail("fsync_dir", EIO);
  expect_store_error([&] { store->save(record("a", 2)); }, StoreErrorCode::Failed, s.dir.path,
                     "the save whose fsync failed");
  // The disk is fine again, but what is on it is unknown: nothing is written until reopened.
  for (int i = 0; i < 3; ++i) {
    const auto e = expect_throws<StoreError>([&] { store->save(record("a", 3)); }, "later save");
    ASSERT_TRUE(e);
    EXPECT_EQ(to_string(e->code()), to_string(StoreErrorCode::Failed));
    EXPECT_NE(std::string(e->what()).find("reopen the store"), std::string::npos) << e->what();
  }
  expect_store_error([&] { store->remove("a"); }, StoreErrorCode::Failed, s.dir.path, "remove");
  store.reset();
  auto reopened = FileStore::open(s.dir.path, s.flaky);
  EXPECT_NO_THROW(reopened->save(record("a", 3)));
  EXPECT_EQ(reopened->load_all().records.at(0), record("a", 3));
}

TEST(FileStoreFaults, AFailedRemoveKeepsTheRecordAndAFailedFsyncAfterItPoisons) {
  Saved s;
  auto store = FileStore::open(s.dir.path, s.flaky);
  s.flaky->fail("remove", EACCES);
  expect_store_error([&] { store->remove("a"); }, StoreErrorCode::Refused, s.a_json, "remove");
  EXPECT_TRUE(store->holds("a"));
  store.reset();
  s.expect_unchanged("remove");

  store = FileStore::open(s.dir.path, s.flaky);
  s.flaky->fail("fsync_dir", EIO);
  expect_store_error([&] { store->remove("a"); }, StoreErrorCode::Failed, s.dir.path,
                     "fsync after remove");
  expect_store_error([&] { store->save(record("a", 2)); }, StoreErrorCode::Failed, s.dir.path,
                     "save after a poisoned remove");
}

TEST(FileStoreFaults, ADirectoryThatCannotBeListedFailsTheLoad) {
  Saved s;
  auto store = FileStore::open(s.dir.path, s.flaky);
  for (const Fault& f : {
           Fault{"list_dir", EIO, StoreErrorCode::Unavailable, s.dir.path},
           Fault{"list_dir", EACCES, StoreErrorCode::Refused, s.dir.path},
           Fault{"list_dir", ENOENT, StoreErrorCode::NotFound, s.dir.path},
       }) {
    s.flaky->fail(f.operation, f.error);
    expect_store_error([&] { store->load_all(); }, f.code, f.path, describe(f));
  }
  store.reset();
  s.expect_unchanged("list_dir");
}

TEST(FileStoreFaults, ARecordThatCannotBeReadIsReportedByNameAndTheRestLoad) {
  Saved s;
  auto store = FileStore::open(s.dir.path, s.flaky);
  store->save(record("b", 5));
  s.flaky->fail("read_file", EIO);  // the first record read: a.json
  const LoadResult loaded = store->load_all();
  ASSERT_EQ(loaded.broken.size(), 1u);
  EXPECT_EQ(loaded.broken[0].name, "a.json");
  EXPECT_NE(loaded.broken[0].reason.find(std::strerror(EIO)), std::string::npos)
      << loaded.broken[0].reason;
  ASSERT_EQ(loaded.records.size(), 1u);
  EXPECT_EQ(loaded.records[0].id, "b");
  EXPECT_EQ(store->load_all().records.size(), 2u) << "nothing was lost";
}

TEST(FileStoreFaults, HoldsThrowsWhenItCannotTell) {
  Saved s;
  auto store = FileStore::open(s.dir.path, s.flaky);
  for (const Fault& f : {
           Fault{"stat", EIO, StoreErrorCode::Unavailable, s.a_json},
           Fault{"stat", EACCES, StoreErrorCode::Refused, s.a_json},
       }) {
    s.flaky->fail(f.operation, f.error);
    expect_store_error([&] { store->holds("a"); }, f.code, f.path, describe(f));
  }
  EXPECT_TRUE(store->holds("a"));
  EXPECT_FALSE(store->holds("b"));
}

TEST(StoreErrorCodes, EachHasANameAndOnlyUnavailableIsTransient) {
  EXPECT_EQ(to_string(StoreErrorCode::Unavailable), "unavailable");
  EXPECT_EQ(to_string(StoreErrorCode::Failed), "failed");
  EXPECT_EQ(to_string(StoreErrorCode::Corrupt), "corrupt");
  EXPECT_EQ(to_string(StoreErrorCode::AlreadyExists), "already_exists");
  EXPECT_EQ(to_string(StoreErrorCode::NotFound), "not_found");
  EXPECT_EQ(to_string(StoreErrorCode::Locked), "locked");
  EXPECT_EQ(to_string(StoreErrorCode::Refused), "refused");
  EXPECT_TRUE(StoreError(StoreErrorCode::Unavailable, "x").transient());
  EXPECT_FALSE(StoreError(StoreErrorCode::Failed, "x").transient());
}

}  // namespace
}  // namespace clickpipe::test
