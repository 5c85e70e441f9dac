#include "clickpipe/store/file_store.hpp"
#include "clickpipe/status.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

namespace clickpipe {
namespace {

constexpr const char* kSuffix = ".json";

// What a failed call that changed nothing means for the caller. Only what waiting can heal (space,
// I/O, resources) is Unavailable; anything else (permissions, a read-only file system, a file
// where a directory should be, a name too long) would be retried forever, so it is Refused.
StoreErrorCode code_of(int err) {
  switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EIO:
    case EAGAIN:
    case EINTR:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EBUSY:
    case ETIMEDOUT: return StoreErrorCode::Unavailable;
    case ENOENT: return StoreErrorCode::NotFound;
    default: return StoreErrorCode::Refused;
  }
}

[[noreturn]] void fail(int err, const std::string& what) {
  throw StoreError(code_of(err), what + ": " + std::strerror(err));
}

// Pipe ids become file names: anything but [A-Za-z0-9_-] and inner dots is %XX-encoded.
std::string encode_name(const std::string& id) {
  std::string out;
  for (std::size_t i = 0; i < id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(id[i]);
    if (std::isalnum(c) || c == '_' || c == '-' || (c == '.' && i > 0)) {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

bool is_record_name(const std::string& name) {
  const std::size_t n = std::strlen(kSuffix);
  return name.size() > n && name.compare(name.size() - n, std::string::npos, kSuffix) == 0;
}

// GENERATION holds a decimal number (an empty file counts as 0); trailing whitespace is allowed
// so that a file written by hand still reads.
std::optional<std::uint64_t> parse_generation(const std::string& text) {
  const std::size_t end = text.find_last_not_of(" \t\r\n");
  if (end == std::string::npos)
    return text.empty() ? std::optional<std::uint64_t>(0) : std::nullopt;
  std::uint64_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + end + 1, value);
  if (ec != std::errc() || ptr != text.data() + end + 1) return std::nullopt;
  return value;
}

std::string octal(std::uint32_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777u);
  return buf;
}

const char* type_name(PathInfo::Type t) {
  switch (t) {
    case PathInfo::Type::Regular: return "a regular file";
    case PathInfo::Type::Directory: return "a directory";
    case PathInfo::Type::Symlink: return "a symlink";
    case PathInfo::Type::Other: return "a FIFO, socket or device";
  }
  return "something else";
}

// Whoever can write the store can steer every pipe in it (pause, resync, plant a record), so
// it must be this user's alone: `path` must be `want`, not a symlink, owned by the effective
// user and not writable by group or others. Refused otherwise, naming the path and the fix.
// Returns false when there is nothing at `path`.
bool check_private(FileSystem& fs, const std::string& path, PathInfo::Type want) {
  PathInfo info;
  const int err = fs.inspect(path, info);
  if (err == ENOENT) return false;
  if (err) fail(err, "cannot inspect " + path);
  const bool dir = want == PathInfo::Type::Directory;
  const std::string what = dir ? "store directory " + path : path;
  if (info.type != want) {
    throw StoreError(StoreErrorCode::Refused,
                     what + " is " + type_name(info.type) + ", not " + type_name(want) +
                         (dir ? ": give the real directory's path"
                              : ", so the store did not write it: remove it"));
  }
  const std::uint32_t me = ::geteuid();
  if (info.owner != me) {
    throw StoreError(StoreErrorCode::Refused,
                     what + " belongs to uid " + std::to_string(info.owner) +
                         ", not to this process's user (uid " + std::to_string(me) + "): chown " +
                         std::to_string(me) + " " + path +
                         (dir ? ", or use a directory of this user's" : ", or remove it"));
  }
  if (info.mode & 022) {
    throw StoreError(
        StoreErrorCode::Refused,
        what + " is writable by group or others (mode " + octal(info.mode) +
            "), who could then steer the pipes stored there: chmod " + (dir ? "700 " : "600 ") +
            path +
            (dir ? " (a store made under umask 002: chmod -R go-w " + path + ")" : std::string()));
  }
  return true;
}

// A temp file left by a crash is removed before a new one is written (write_file creates it
// exclusively); unlinking it follows nothing. Anything but a regular file there was planted: it
// is refused and left alone, so nothing it points to is touched.
void clear_temp(FileSystem& fs, const std::string& tmp, const std::string& doing) {
  PathInfo info;
  const int err = fs.inspect(tmp, info);
  if (err == ENOENT) return;
  if (err) fail(err, doing + ": cannot inspect " + tmp);
  if (info.type != PathInfo::Type::Regular) {
    throw StoreError(StoreErrorCode::Refused,
                     doing + ": " + tmp + " is " + type_name(info.type) +
                         ", not a temp file the store wrote; it was left alone: remove it");
  }
  if (int e = fs.remove(tmp)) fail(e, doing + ": cannot remove the stale " + tmp);
}

// The generation saved in `path`: 0 when there is no such file yet.
std::uint64_t read_generation(FileSystem& fs, const std::string& path) {
  std::string text;
  const int err = fs.read_file(path, text);
  if (err == ENOENT) return 0;
  if (err) fail(err, "cannot read " + path);
  const auto generation = parse_generation(text);
  if (!generation) {
    throw StoreError(StoreErrorCode::Corrupt,
                     path + " is damaged: '" + capped_error(text, 40) + "' is not a generation");
  }
  return *generation;
}

std::string base_name(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::unique_ptr<FileStore> FileStore::open(const std::string& dir, std::shared_ptr<FileSystem> fs) {
  if (int err = fs->create_dir(dir)) fail(err, "cannot create store directory " + dir);
  check_private(*fs, dir, PathInfo::Type::Directory);
  const std::string lock_path = dir + "/LOCK";
  check_private(*fs, lock_path, PathInfo::Type::Regular);
  std::unique_ptr<FileLock> lock;
  if (int err = fs->lock(lock_path, lock)) {
    if (err != EWOULDBLOCK && err != EAGAIN) fail(err, "cannot lock " + lock_path);
    std::string holder;
    if (fs->read_file(lock_path, holder) != 0 || holder.empty()) holder = "unknown";
    throw StoreError(StoreErrorCode::Locked,
                     "store " + dir + " is in use by another process (pid " + holder + ")");
  }

  // Every record must be as private as the directory before any is believed.
  std::vector<std::string> names;
  if (int err = fs->list_dir(dir, names)) fail(err, "cannot list store directory " + dir);
  for (const auto& name : names) {
    if (is_record_name(name)) check_private(*fs, dir + "/" + name, PathInfo::Type::Regular);
  }

  // A new generation for this writer, saved durably before any record is written with it.
  const std::string path = dir + "/GENERATION";
  check_private(*fs, path, PathInfo::Type::Regular);
  const std::uint64_t generation = read_generation(*fs, path) + 1;
  const std::string tmp = path + ".tmp";
  const std::string doing = "recording generation " + std::to_string(generation) + " in " + dir;
  clear_temp(*fs, tmp, doing);
  if (int err = fs->write_file(tmp, std::to_string(generation))) {
    fs->remove(tmp);
    fail(err, doing + ": cannot write " + tmp);
  }
  if (int err = fs->fsync_file(tmp)) {
    fs->remove(tmp);
    fail(err, doing + ": cannot fsync " + tmp);
  }
  if (int err = fs->rename(tmp, path)) {
    fs->remove(tmp);
    fail(err, doing + ": cannot rename " + tmp + " to " + path);
  }
  if (int err = fs->fsync_dir(dir)) {
    // No record carries the new generation yet, so opening again is safe either way.
    throw StoreError(StoreErrorCode::Failed, doing + ": fsync of " + dir + " failed (" +
                                                 std::strerror(err) +
                                                 "): what is on disk is unknown; open it again");
  }
  return std::unique_ptr<FileStore>(new FileStore(dir, std::move(fs), std::move(lock), generation));
}

FileStore::FileStore(std::string dir, std::shared_ptr<FileSystem> fs,
                     std::unique_ptr<FileLock> lock, std::uint64_t generation)
    : dir_(std::move(dir)), fs_(std::move(fs)), lock_(std::move(lock)), generation_(generation) {}

FileStore::~FileStore() = default;  // dropping lock_ lets another process open the directory

std::string FileStore::path_of(const std::string& id) const {
  return dir_ + "/" + encode_name(id) + kSuffix;
}

LoadResult FileStore::load_all() {
  std::vector<std::string> names;
  if (int err = fs_->list_dir(dir_, names)) fail(err, "cannot list store directory " + dir_);
  names.erase(std::remove_if(names.begin(), names.end(),
                             [](const std::string& n) { return !is_record_name(n); }),
              names.end());
  std::sort(names.begin(), names.end());
  LoadResult out;
  for (const auto& name : names) {
    // One record that cannot be used is reported and keeps its id taken; the others still load.
    try {
      out.records.push_back(read_record_file(*fs_, dir_ + "/" + name));
    } catch (const StoreError& e) {
      out.broken.push_back({name, e.what()});
    }
  }
  return out;
}

void FileStore::check_writable() {
  if (poisoned_.empty()) {
    const std::string path = dir_ + "/GENERATION";
    const std::uint64_t newest = read_generation(*fs_, path);
    if (newest > generation_) {
      poisoned_ = "a newer writer (generation " + std::to_string(newest) +
                  ") took over this store; this one is " + std::to_string(generation_);
    }
  }
  if (!poisoned_.empty()) {
    throw StoreError(StoreErrorCode::Failed, "store " + dir_ + " refuses writes: " + poisoned_);
  }
}

void FileStore::poison(int err, const std::string& doing) {
  poisoned_ = "fsync of " + dir_ + " failed (" + std::strerror(err) +
              "): what is on disk is unknown; reopen the store";
  throw StoreError(StoreErrorCode::Failed, doing + ": " + poisoned_);
}

void FileStore::save(const PipeRecord& record) {
  std::string data;
  try {
    data = encode_record(record, generation_);
  } catch (const std::exception& e) {  // InvalidField, or JSON the writer cannot make
    throw StoreError(StoreErrorCode::Refused, "saving pipe " + record.id + ": " + e.what());
  }
  std::lock_guard lk(mu_);
  check_writable();
  const std::string path = path_of(record.id);
  const std::string tmp = path + ".tmp";
  const std::string doing = "saving pipe " + record.id;
  clear_temp(*fs_, tmp, doing);
  if (int err = fs_->write_file(tmp, data)) {
    fs_->remove(tmp);
    fail(err, doing + ": cannot write " + tmp);
  }
  if (int err = fs_->fsync_file(tmp)) {
    // After a failed fsync the written pages may be gone while reads still show them: this temp
    // file is never trusted; the next save writes a new one.
    fs_->remove(tmp);
    fail(err, doing + ": cannot fsync " + tmp);
  }
  if (int err = fs_->rename(tmp, path)) {
    fs_->remove(tmp);
    fail(err, doing + ": cannot rename " + tmp + " to " + path);
  }
  if (int err = fs_->fsync_dir(dir_)) poison(err, doing);
}

void FileStore::remove(const std::string& id) {
  std::lock_guard lk(mu_);
  check_writable();
  const std::string path = path_of(id);
  if (int err = fs_->remove(path)) fail(err, "removing pipe " + id + ": cannot remove " + path);
  if (int err = fs_->fsync_dir(dir_)) poison(err, "removing pipe " + id);
}

bool FileStore::holds(const std::string& id) {
  const std::string path = path_of(id);
  const int err = fs_->stat(path);
  if (err == ENOENT) return false;
  if (err) fail(err, "cannot tell whether " + path + " exists");
  return true;
}

PipeRecord read_record_file(FileSystem& fs, const std::string& path) {
  if (!check_private(fs, path, PathInfo::Type::Regular))
    throw StoreError(StoreErrorCode::NotFound, path + " does not exist");
  std::string text;
  if (int err = fs.read_file(path, text)) fail(err, "cannot read " + path);
  PipeRecord r;
  try {
    r = decode_record(text);
  } catch (const std::exception& e) {  // InvalidField naming the field, or worse
    throw StoreError(StoreErrorCode::Corrupt, path + " is corrupt: " + e.what());
  }
  // Named by the file it belongs in: encoded, the id is safe to print; raw, it may hold anything.
  const std::string belongs = encode_name(r.id) + kSuffix;
  if (belongs != base_name(path)) {
    throw StoreError(StoreErrorCode::Corrupt,
                     path + " is corrupt: record.id: it holds the pipe of " + belongs);
  }
  return r;
}

}  // namespace clickpipe
