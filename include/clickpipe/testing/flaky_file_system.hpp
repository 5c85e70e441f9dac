// A FileSystem for FileStore tests: real files, with errors injected on demand.
#pragma once

#include <cerrno>  // for callers: the errno values they inject
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clickpipe/store/file_system.hpp"

namespace clickpipe::testing {

// Thread-safe. fail("fsync_file", EIO, 2) makes the next two fsyncs of a file fail with EIO;
// times = -1 fails until heal(). Operations, named as the FileSystem calls: create_dir, inspect,
// lock, list_dir, fsync_dir, read_file, stat, write_file, fsync_file, rename, remove. A failed
// call does nothing.
class FlakyFileSystem final : public FileSystem {
 public:
  void fail(const std::string& operation, int error, int times = 1) {
    std::lock_guard lk(mu_);
    plan_[operation] = {error, times};
  }
  void heal() {
    std::lock_guard lk(mu_);
    plan_.clear();
  }
  int failures() const {
    std::lock_guard lk(mu_);
    return failures_;
  }

  int create_dir(const std::string& dir) override {
    if (int e = injected("create_dir")) return e;
    return real_->create_dir(dir);
  }
  int inspect(const std::string& path, PathInfo& info) override {
    if (int e = injected("inspect")) return e;
    return real_->inspect(path, info);
  }
  int lock(const std::string& path, std::unique_ptr<FileLock>& held) override {
    if (int e = injected("lock")) return e;
    return real_->lock(path, held);
  }
  int list_dir(const std::string& dir, std::vector<std::string>& names) override {
    if (int e = injected("list_dir")) return e;
    return real_->list_dir(dir, names);
  }
  int fsync_dir(const std::string& dir) override {
    if (int e = injected("fsync_dir")) return e;
    return real_->fsync_dir(dir);
  }
  int read_file(const std::string& path, std::string& data) override {
    if (int e = injected("read_file")) return e;
    return real_->read_file(path, data);
  }
  int stat(const std::string& path) override {
    if (int e = injected("stat")) return e;
    return real_->stat(path);
  }
  int write_file(const std::string& path, std::string_view data) override {
    if (int e = injected("write_file")) return e;
    return real_->write_file(path, data);
  }
  int fsync_file(const std::string& path) override {
    if (int e = injected("fsync_file")) return e;
    return real_->fsync_file(path);
  }
  int rename(const std::string& from, const std::string& to) override {
    if (int e = injected("rename")) return e;
    return real_->rename(from, to);
  }
  int remove(const std::string& path) override {
    if (int e = injected("remove")) return e;
    return real_->remove(path);
  }

 private:
  int injected(const std::string& op) {
    std::lock_guard lk(mu_);
    auto it = plan_.find(op);
    if (it == plan_.end() || it->second.second == 0) return 0;
    if (it->second.second > 0) --it->second.second;
    ++failures_;
    return it->second.first;
  }
  const std::shared_ptr<FileSystem> real_ = posix_file_system();
  mutable std::mutex mu_;
  std::map<std::string, std::pair<int, int>> plan_;  // op -> (errno, remaining; -1 forever)
  int failures_ = 0;
};

}  // namespace clickpipe::testing
