// A FileSystem for FileStore tests: real files, with errors injected on demand.
#pragma once

#include <cerrno>
#include <map>
#include <mutex>
#include <string>

#include "clickpipe/store/file_store.hpp"

namespace clickpipe::testing {

// Thread-safe. fail("fsync_file", EIO, 2) makes the next two fsyncs of a file fail with EIO.
// Operations: write_file, fsync_file, rename, fsync_dir, remove.
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
  int fsync_dir(const std::string& dir) override {
    if (int e = injected("fsync_dir")) return e;
    return real_->fsync_dir(dir);
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
  std::shared_ptr<FileSystem> real_ = posix_file_system();
  mutable std::mutex mu_;
  std::map<std::string, std::pair<int, int>> plan_;  // op -> (errno, remaining; -1 forever)
  int failures_ = 0;
};

}  // namespace clickpipe::testing
