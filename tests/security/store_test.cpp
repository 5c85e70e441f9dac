// A private store (issue 14): what FileStore makes is 0700/0600 whatever the umask; a store or
// record someone else could write is refused, naming the path and the fix; a symlink planted
// where the next save writes is never followed; a record written on purpose with hostile values
// (SQL in a partition bound, indexes out of range or out of order, huge lists) is refused as
// Corrupt, naming the file and the field; nothing but a regular file is read as a record.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../expect.hpp"
#include "../files.hpp"
#include "../runtime/world.hpp"
#include "clickpipe/store/file_store.hpp"

namespace clickpipe::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The permission bits of `p` itself (a symlink is not followed).
unsigned mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

std::string octal(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode);
  return buf;
}

// Sets the process umask for the life of the object.
struct UmaskGuard {
  mode_t old;
  explicit UmaskGuard(mode_t m) : old(::umask(m)) {}
  ~UmaskGuard() { ::umask(old); }
};

// A record with a plan of three partitions (block ranges), one done.
PipeRecord planned(const std::string& id) {
  PipeRecord r;
  r.id = id;
  r.lifecycle = Lifecycle(Mode::InitialLoadAndCdc);
  r.tables = {{"public", "orders"}};
  r.definitions = {table_def("orders")};
  r.load = {TableLoadRecord{
      {"public", "orders"},
      {Partition{0, "", "100", 5}, Partition{1, "100", "200", 5}, Partition{2, "200", "", 5}},
      {1},
      5}};
  r.last_error = ErrorInfo{"boom", State::Snapshot, TimePoint(std::chrono::milliseconds(1)), false};
  return r;
}

// Rewrites the record file `file` with `edit` applied to its body and the checksum computed
// again, as someone who can write the store could: the checksum proves nothing about the author.
void forge(const fs::path& file, const std::function<void(json&)>& edit) {
  rewrite_record(file, [&](json& j) { edit(j.at("record")); });
}

// A store in a fresh directory holding the record `planned("a")`, closed again.
struct Saved {
  TempDirGuard dir;
  fs::path a_json;
  Saved() {
    FileStore::open(dir.path)->save(planned("a"));
    a_json = dir.root / "a.json";
  }
};

void expect_refused(const std::function<void()>& f, const std::vector<std::string>& named,
                    const std::string& what) {
  const auto e = expect_throws<StoreError>(f, what);
  if (!e) return;
  EXPECT_EQ(to_string(e->code()), to_string(StoreErrorCode::Refused)) << what << ": " << e->what();
  for (const auto& n : named)
    EXPECT_NE(std::string(e->what()).find(n), std::string::npos) << what << ": " << e->what();
}

// `forge` applied to a.json must make it Corrupt, named by file and `field`, both read alone
// and through load_all (which keeps the id taken and loads nothing from it).
void expect_corrupt(const std::function<void(json&)>& edit, const std::string& field) {
  Saved s;
  forge(s.a_json, edit);
  const auto e = expect_throws<StoreError>(
      [&] { read_record_file(*posix_file_system(), s.a_json.string()); }, field);
  if (e) {
    EXPECT_EQ(to_string(e->code()), to_string(StoreErrorCode::Corrupt)) << e->what();
    EXPECT_NE(std::string(e->what()).find(s.a_json.string()), std::string::npos) << e->what();
    EXPECT_NE(std::string(e->what()).find(field), std::string::npos) << e->what();
  }
  auto store = FileStore::open(s.dir.path);
  const LoadResult loaded = store->load_all();
  EXPECT_TRUE(loaded.records.empty()) << field;
  ASSERT_EQ(loaded.broken.size(), 1u) << field;
  EXPECT_EQ(loaded.broken[0].name, "a.json");
  EXPECT_NE(loaded.broken[0].reason.find(field), std::string::npos) << loaded.broken[0].reason;
  EXPECT_TRUE(store->holds("a"));
}

TEST(PrivateStore, IsMadeOwnerOnlyEvenUnderAPermissiveUmask) {
  UmaskGuard mask(0);
  TempDirGuard dir;
  auto store = FileStore::open(dir.path);
  store->save(planned("a"));
  EXPECT_EQ(octal(mode_of(dir.root)), "0700");
  for (const char* name : {"LOCK", "GENERATION", "a.json"})
    EXPECT_EQ(octal(mode_of(dir.root / name)), "0600") << name;
  store->save(planned("a"));  // a later save replaces the record with a new file
  EXPECT_EQ(octal(mode_of(dir.root / "a.json")), "0600") << "after a second save";
  store.reset();
  FileStore::open(dir.path);  // and a later open rewrites GENERATION
  EXPECT_EQ(octal(mode_of(dir.root / "GENERATION")), "0600") << "after reopening";
}

TEST(PrivateStore, ASymlinkAtTheTempPathIsNeverFollowed) {
  Saved s;
  TempDirGuard outside;
  fs::create_directories(outside.root);
  const fs::path target = outside.root / "precious";
  spit(target, "precious\n");
  const std::string before = slurp(s.a_json);
  fs::create_symlink(target, s.a_json.string() + ".tmp");

  auto store = FileStore::open(s.dir.path);
  PipeRecord changed = planned("a");
  changed.cdc_changes = 9;
  expect_refused([&] { store->save(changed); }, {s.a_json.string() + ".tmp", "symlink"},
                 "save over a planted symlink");
  EXPECT_EQ(slurp(target), "precious\n") << "the symlink's target was written through";
  EXPECT_EQ(slurp(s.a_json), before) << "the record stays as it was";
  EXPECT_TRUE(fs::is_symlink(s.a_json.string() + ".tmp")) << "left for someone to look at";

  // The file system itself never follows one, should it appear after the store looked.
  auto posix = posix_file_system();
  EXPECT_EQ(posix->write_file(s.a_json.string() + ".tmp", "x"), EEXIST);
  std::string read;
  EXPECT_EQ(posix->read_file(s.a_json.string() + ".tmp", read), ELOOP);
  EXPECT_EQ(slurp(target), "precious\n");

  fs::remove(s.a_json.string() + ".tmp");
  EXPECT_NO_THROW(store->save(changed)) << "saves work again once it is gone";
  EXPECT_EQ(store->load_all().records.at(0).cdc_changes, 9u);
}

TEST(PrivateStore, AStoreDirectoryOthersCanWriteIsRefusedNamingTheFix) {
  for (unsigned mode : {0777u, 0770u, 0702u}) {
    Saved s;
    fs::permissions(s.dir.root, static_cast<fs::perms>(mode));
    expect_refused([&] { FileStore::open(s.dir.path); },
                   {s.dir.path, "writable by group or others", "chmod 700 " + s.dir.path},
                   "store directory " + octal(mode));
  }
}

TEST(PrivateStore, ARecordOthersCanWriteIsRefusedNamingTheFix) {
  Saved s;
  fs::permissions(s.a_json, static_cast<fs::perms>(0666));
  expect_refused([&] { FileStore::open(s.dir.path); }, {s.a_json.string(), "chmod 600"},
                 "record 0666");
}

TEST(PrivateStore, AStoreDirectoryThatIsASymlinkIsRefused) {
  Saved s;
  TempDirGuard link;
  fs::create_symlink(s.dir.root, link.root);
  expect_refused([&] { FileStore::open(link.path); }, {link.path, "symlink"}, "symlinked store");
}

// The real file system, except that `foreign` is reported as owned by uid 65534 (nobody), as
// if chowned: a test that does not run as root still sees what open does with it.
class ForeignOwner final : public FileSystem {
 public:
  explicit ForeignOwner(std::string foreign) : foreign_(std::move(foreign)) {}
  int create_dir(const std::string& d) override { return real_->create_dir(d); }
  int inspect(const std::string& p, PathInfo& info) override {
    const int err = real_->inspect(p, info);
    if (!err && p == foreign_) info.owner = 65534;
    return err;
  }
  int lock(const std::string& p, std::unique_ptr<FileLock>& held) override {
    return real_->lock(p, held);
  }
  int list_dir(const std::string& d, std::vector<std::string>& n) override {
    return real_->list_dir(d, n);
  }
  int fsync_dir(const std::string& d) override { return real_->fsync_dir(d); }
  int read_file(const std::string& p, std::string& data) override {
    return real_->read_file(p, data);
  }
  int stat(const std::string& p) override { return real_->stat(p); }
  int write_file(const std::string& p, std::string_view data) override {
    return real_->write_file(p, data);
  }
  int fsync_file(const std::string& p) override { return real_->fsync_file(p); }
  int rename(const std::string& from, const std::string& to) override {
    return real_->rename(from, to);
  }
  int remove(const std::string& p) override { return real_->remove(p); }

 private:
  const std::string foreign_;
  const std::shared_ptr<FileSystem> real_ = posix_file_system();
};

TEST(PrivateStore, AStoreOwnedByAnotherUserIsRefused) {
  const std::string me = std::to_string(::geteuid());
  {
    Saved s;
    expect_refused([&] { FileStore::open(s.dir.path, std::make_shared<ForeignOwner>(s.dir.path)); },
                   {s.dir.path, "uid 65534", "chown " + me + " " + s.dir.path},
                   "foreign directory (seam)");
    expect_refused(
        [&] { FileStore::open(s.dir.path, std::make_shared<ForeignOwner>(s.a_json.string())); },
        {s.a_json.string(), "uid 65534"}, "foreign record (seam)");
  }
  if (::geteuid() != 0) return;  // the seam above stands in for chown, which needs root
  Saved s;
  ASSERT_EQ(::chown(s.dir.path.c_str(), 65534, 65534), 0);
  expect_refused([&] { FileStore::open(s.dir.path); },
                 {s.dir.path, "uid 65534", "chown 0 " + s.dir.path}, "chowned directory");
  ASSERT_EQ(::chown(s.dir.path.c_str(), 0, 0), 0);
  ASSERT_EQ(::chown(s.a_json.c_str(), 65534, 65534), 0);
  expect_refused([&] { FileStore::open(s.dir.path); }, {s.a_json.string(), "uid 65534"},
                 "chowned record");
}

// Puts a FIFO, a directory or a symlink to `target` at `path`.
void plant(const std::string& kind, const fs::path& path, const fs::path& target) {
  if (kind == "fifo") {
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  } else if (kind == "directory") {
    fs::create_directory(path);
  } else {
    fs::create_symlink(target, path);
  }
}

TEST(PrivateStore, OnlyARegularFileIsReadAsARecord) {
  // Each would once have been opened and read: a FIFO hung the load, a symlink read its target.
  for (const std::string kind : {"fifo", "directory", "symlink"}) {
    Saved s;
    const fs::path planted = s.dir.root / "b.json";
    plant(kind, planted, s.a_json);
    expect_refused([&] { FileStore::open(s.dir.path); }, {planted.string()}, kind + " at open");
    fs::remove(planted);

    // One planted after the store was opened is reported by name; the others still load.
    auto store = FileStore::open(s.dir.path);
    plant(kind, planted, s.a_json);
    const LoadResult loaded = store->load_all();
    ASSERT_EQ(loaded.records.size(), 1u) << kind;
    EXPECT_EQ(loaded.records[0].id, "a");
    ASSERT_EQ(loaded.broken.size(), 1u) << kind;
    EXPECT_EQ(loaded.broken[0].name, "b.json");
    EXPECT_NE(loaded.broken[0].reason.find(planted.string()), std::string::npos)
        << loaded.broken[0].reason;
    EXPECT_TRUE(store->holds("b")) << kind << ": its id stays taken";
  }
}

TEST(RecordValidation, SqlInAPartitionBoundIsCorruptNamingTheField) {
  expect_corrupt([](json& b) { b["load"][0]["partitions"][1]["end"] = "1); DROP TABLE x; --"; },
                 "record.load[0].partitions[1].end");
  expect_corrupt([](json& b) { b["load"][0]["partitions"][1]["begin"] = "1,0)'::tid OR true --"; },
                 "record.load[0].partitions[1].begin");
  expect_corrupt([](json& b) { b["load"][0]["partitions"][0]["end"] = "-1"; },
                 "record.load[0].partitions[0].end");
  expect_corrupt([](json& b) { b["load"][0]["partitions"][0]["end"] = "12345678901"; },
                 "record.load[0].partitions[0].end");
}

TEST(RecordValidation, ASaveRefusesABoundItWouldNotLoad) {
  Saved s;
  const std::string before = slurp(s.a_json);
  PipeRecord r = planned("a");
  r.load[0].partitions[0].end = "k5";
  auto store = FileStore::open(s.dir.path);
  expect_refused([&] { store->save(r); }, {"record.load[0].partitions[0].end"}, "save");
  EXPECT_EQ(slurp(s.a_json), before);
}

TEST(RecordValidation, DoneIndexesMustBePlannedAscendingAndUnique) {
  // Beyond the plan, in any spelling that a plain conversion to 32 bits would wrap into it.
  for (const json& bad : {json(3), json(4294967296ull), json(-1), json(1.5), json("1")}) {
    expect_corrupt([&](json& b) { b["load"][0]["done"] = json::array({bad}); },
                   "record.load[0].done[0]");
  }
  expect_corrupt([](json& b) { b["load"][0]["done"] = {1, 1}; }, "record.load[0].done[1]");
  expect_corrupt([](json& b) { b["load"][0]["done"] = {2, 0}; }, "record.load[0].done[1]");
}

TEST(RecordValidation, PartitionsMustBeNumberedInOrder) {
  expect_corrupt([](json& b) { b["load"][0]["partitions"][2]["index"] = 1; },
                 "record.load[0].partitions[2].index");
  expect_corrupt([](json& b) { b["load"][0]["partitions"][0]["index"] = 4294967296ull; },
                 "record.load[0].partitions[0].index");
}

TEST(RecordValidation, EveryOtherFieldIsRangeChecked) {
  expect_corrupt([](json& b) { b["id"] = ""; }, "record.id");
  expect_corrupt([](json& b) { b["tables"][0]["name"] = ""; }, "record.tables[0].name");
  expect_corrupt([](json& b) { b["tables"][0]["schema"] = std::string("pub\0lic", 7); },
                 "record.tables[0].schema");
  expect_corrupt([](json& b) { b["definitions"][0]["columns"][0]["name"] = ""; },
                 "record.definitions[0].columns[0].name");
  expect_corrupt([](json& b) { b["definitions"][0]["columns"][0]["array_dimensions"] = 1000000; },
                 "record.definitions[0].columns[0].array_dimensions");
  expect_corrupt([](json& b) { b["load"][0]["rows_done"] = -5; }, "record.load[0].rows_done");
  expect_corrupt([](json& b) { b["load"][0]["partitions"][0]["estimated_rows"] = 1ull << 60; },
                 "record.load[0].partitions[0].estimated_rows");
  expect_corrupt([](json& b) { b["cdc_changes"] = -1; }, "record.cdc_changes");
  expect_corrupt([](json& b) { b["since_ms"] = 9223372036854775807ll; }, "record.since_ms");
  expect_corrupt([](json& b) { b["settings"]["pull_batch_size"] = 0; },
                 "record.settings.pull_batch_size");
  expect_corrupt(
      [](json& b) {
        json h = json::array();
        for (int i = 0; i < 10001; ++i)
          h.push_back(
              {{"from", "Setup"}, {"trigger", "setup_done"}, {"to", "Snapshot"}, {"at_ms", 1}});
        b["history"] = h;
      },
      "record.history");
  expect_corrupt([](json& b) { b["id"] = "b"; }, "record.id");  // a.json holding pipe b
}

TEST(RecordValidation, AnOverlongErrorMessageIsCut) {
  Saved s;
  forge(s.a_json, [](json& b) { b["last_error"]["message"] = std::string(100000, 'x'); });
  const PipeRecord r = read_record_file(*posix_file_system(), s.a_json.string());
  ASSERT_TRUE(r.last_error);
  EXPECT_LE(r.last_error->message.size(), 4096u);
  EXPECT_EQ(r.last_error->message.rfind("xxx", 0), 0u);
}

// Text that is not UTF-8 in a saved error (a damaged file, a server's other encoding) is
// replaced, not a reason to refuse the record or to fail the next save.
TEST(RecordValidation, AnErrorThatIsNotUtf8IsCarriedAsReplacementCharacters) {
  Saved s;
  PipeRecord r = read_record_file(*posix_file_system(), s.a_json.string());
  r.last_error->message = "bad \xFF\xC0 bytes";
  const std::string text = encode_record(r, 1);
  const PipeRecord back = decode_record(text);
  EXPECT_EQ(back.last_error->message, "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");
  EXPECT_EQ(capped_error("bad \xFF\xC0 bytes"), back.last_error->message);
}

// A pipe saved by a version without today's limits still loads, its settings clamped to them.
TEST(RecordValidation, SettingsPastTodaysLimitsAreClampedOnLoad) {
  Saved s;
  forge(s.a_json, [](json& b) {
    b["settings"]["sync_interval_ms"] = 172800000;  // 48 h
    b["settings"]["max_partitions_per_table"] = 5000000;
    b["settings"]["cdc_retry"]["max_backoff_ms"] = 259200000;  // 72 h
  });
  const PipeRecord r = read_record_file(*posix_file_system(), s.a_json.string());
  EXPECT_EQ(r.settings.sync_interval, kMaxSettingDuration);
  EXPECT_EQ(r.settings.max_partitions_per_table, std::size_t{1} << 20);
  EXPECT_EQ(r.settings.cdc_retry.max_backoff, kMaxSettingDuration);
}

}  // namespace
}  // namespace clickpipe::test
