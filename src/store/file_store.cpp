#include "clickpipe/store/file_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "clickpipe/store/memory_store.hpp"

namespace clickpipe {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

class PosixFileSystem final : public FileSystem {
 public:
  int write_file(const std::string& path, std::string_view data) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    std::size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        ::close(fd);
        return err;
      }
      off += static_cast<std::size_t>(n);
    }
    return ::close(fd) == 0 ? 0 : errno;
  }
  int fsync_file(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    const int rc = ::fsync(fd) == 0 ? 0 : errno;
    ::close(fd);
    return rc;
  }
  int rename(const std::string& from, const std::string& to) override {
    return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
  }
  int fsync_dir(const std::string& dir) override {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    const int rc = ::fsync(fd) == 0 ? 0 : errno;
    ::close(fd);
    return rc;
  }
  int remove(const std::string& path) override {
    return ::unlink(path.c_str()) == 0 || errno == ENOENT ? 0 : errno;
  }
};

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  out = s.str();
  return true;
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

constexpr const char* kSuffix = ".json";

}  // namespace

std::shared_ptr<FileSystem> posix_file_system() {
  static const auto fs = std::make_shared<PosixFileSystem>();
  return fs;
}

std::unique_ptr<FileStore> FileStore::open(const std::string& dir, std::shared_ptr<FileSystem> fs) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    throw StoreError("cannot create store directory " + dir + ": " + errno_text(errno), true);
  }
  const std::string lock_path = dir + "/LOCK";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw StoreError("cannot open " + lock_path + ": " + errno_text(errno), true);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    std::string holder;
    read_file(lock_path, holder);
    ::close(fd);
    throw StoreError("store " + dir + " is in use by another process (pid " +
                         (holder.empty() ? std::string("unknown") : holder) + ")",
                     true);
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The pid is only for the error message of a second process; the lock is what counts.
  }

  // A new generation for this writer, saved durably before any record is written with it.
  std::string text;
  std::uint64_t generation = 0;
  if (read_file(dir + "/GENERATION", text) && !text.empty()) {
    try {
      generation = std::stoull(text);
    } catch (const std::exception&) {
      ::close(fd);
      throw StoreError(dir + "/GENERATION is damaged: '" + text + "'", true);
    }
  }
  ++generation;
  const std::string tmp = dir + "/GENERATION.tmp";
  int err = fs->write_file(tmp, std::to_string(generation));
  if (!err) err = fs->fsync_file(tmp);
  if (!err) err = fs->rename(tmp, dir + "/GENERATION");
  if (!err) err = fs->fsync_dir(dir);
  if (err) {
    ::close(fd);
    throw StoreError("cannot record a new generation in " + dir + ": " + errno_text(err), true);
  }
  return std::unique_ptr<FileStore>(new FileStore(dir, std::move(fs), fd, generation));
}

FileStore::FileStore(std::string dir, std::shared_ptr<FileSystem> fs, int lock_fd,
                     std::uint64_t generation)
    : dir_(std::move(dir)), fs_(std::move(fs)), lock_fd_(lock_fd), generation_(generation) {}

FileStore::~FileStore() { ::close(lock_fd_); }  // closing releases the lock

std::string FileStore::path_of(const std::string& id) const {
  return dir_ + "/" + encode_name(id) + kSuffix;
}

LoadResult FileStore::load_all() {
  LoadResult out;
  DIR* d = ::opendir(dir_.c_str());
  if (!d) throw StoreError("cannot read store directory " + dir_ + ": " + errno_text(errno), true);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > std::strlen(kSuffix) &&
        name.compare(name.size() - std::strlen(kSuffix), std::string::npos, kSuffix) == 0) {
      names.push_back(name);
    }
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    std::string text;
    if (!read_file(dir_ + "/" + name, text)) {
      out.broken.push_back({name, "cannot be read"});
      continue;
    }
    try {
      PipeRecord r = decode_record(text);
      if (encode_name(r.id) + kSuffix != name) {
        out.broken.push_back({name, "holds pipe '" + r.id + "', which belongs in another file"});
        continue;
      }
      out.records.push_back(std::move(r));
    } catch (const std::exception& e) {
      out.broken.push_back({name, e.what()});
    }
  }
  return out;
}

void FileStore::check_generation() {
  std::string text;
  if (read_file(dir_ + "/GENERATION", text) && !text.empty()) {
    std::uint64_t newest = 0;
    try {
      newest = std::stoull(text);
    } catch (const std::exception&) {
      newest = 0;
    }
    if (newest > generation_) {
      poisoned_ = "a newer writer (generation " + text + ") took over this store; this one is " +
                  std::to_string(generation_);
    }
  }
}

void FileStore::save(const PipeRecord& record) {
  const std::string data = encode_record(record, generation_);
  std::lock_guard lk(mu_);
  check_generation();
  if (!poisoned_.empty()) throw StoreError("store refuses writes: " + poisoned_, true);
  const std::string path = path_of(record.id);
  const std::string tmp = path + ".tmp";
  if (int err = fs_->write_file(tmp, data)) {
    fs_->remove(tmp);
    throw StoreError("saving pipe " + record.id + ": write failed: " + errno_text(err), false);
  }
  if (int err = fs_->fsync_file(tmp)) {
    // After a failed fsync the written pages may be gone while reads still show them: this temp
    // file is never trusted; the next save writes a new one.
    fs_->remove(tmp);
    throw StoreError("saving pipe " + record.id + ": fsync failed: " + errno_text(err), false);
  }
  if (int err = fs_->rename(tmp, path)) {
    fs_->remove(tmp);
    throw StoreError("saving pipe " + record.id + ": rename failed: " + errno_text(err), false);
  }
  if (int err = fs_->fsync_dir(dir_)) {
    poisoned_ = "fsync of " + dir_ + " failed (" + errno_text(err) +
                "): what is on disk is unknown; reopen the store";
    throw StoreError("saving pipe " + record.id + ": " + poisoned_, true);
  }
}

void FileStore::remove(const std::string& id) {
  std::lock_guard lk(mu_);
  check_generation();
  if (!poisoned_.empty()) throw StoreError("store refuses writes: " + poisoned_, true);
  if (int err = fs_->remove(path_of(id))) {
    throw StoreError("removing pipe " + id + ": " + errno_text(err), false);
  }
  if (int err = fs_->fsync_dir(dir_)) {
    poisoned_ = "fsync of " + dir_ + " failed (" + errno_text(err) + ")";
    throw StoreError("removing pipe " + id + ": " + poisoned_, true);
  }
}

bool FileStore::holds(const std::string& id) {
  struct stat st {};
  return ::stat(path_of(id).c_str(), &st) == 0;
}

// ---- MemoryStore ----

LoadResult MemoryStore::load_all() {
  std::lock_guard lk(mu_);
  LoadResult out;
  for (const auto& [id, r] : records_) out.records.push_back(r);
  return out;
}

void MemoryStore::save(const PipeRecord& record) {
  std::lock_guard lk(mu_);
  records_[record.id] = record;
  ++saves_;
}

void MemoryStore::remove(const std::string& id) {
  std::lock_guard lk(mu_);
  records_.erase(id);
}

bool MemoryStore::holds(const std::string& id) {
  std::lock_guard lk(mu_);
  return records_.count(id) > 0;
}

std::size_t MemoryStore::saves() const {
  std::lock_guard lk(mu_);
  return saves_;
}

}  // namespace clickpipe
