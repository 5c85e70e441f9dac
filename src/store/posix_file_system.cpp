#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "clickpipe/store/file_system.hpp"

namespace clickpipe {
namespace {

class PosixLock final : public FileLock {
 public:
  explicit PosixLock(int fd) : fd_(fd) {}
  PosixLock(const PosixLock&) = delete;
  PosixLock& operator=(const PosixLock&) = delete;
  ~PosixLock() override { ::close(fd_); }  // closing the descriptor releases the flock

 private:
  const int fd_;
};

// fsync of whatever `path` names, opened with `flags`.
int fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

class PosixFileSystem final : public FileSystem {
 public:
  int create_dir(const std::string& dir) override {
    return ::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST ? 0 : errno;
  }

  int lock(const std::string& path, std::unique_ptr<FileLock>& held) override {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd);
      return err;
    }
    const std::string pid = std::to_string(::getpid());
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
      // The pid only goes into a second process's error message; the lock is what counts.
    }
    held = std::make_unique<PosixLock>(fd);
    return 0;
  }

  int list_dir(const std::string& dir, std::vector<std::string>& names) override {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return errno;
    names.clear();
    int err = 0;
    for (;;) {
      errno = 0;  // readdir returns null both at the end and on an error; only errno tells
      const dirent* e = ::readdir(d);
      if (!e) {
        err = errno;
        break;
      }
      const std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(d);
    return err;
  }

  int fsync_dir(const std::string& dir) override { return fsync_path(dir, O_RDONLY | O_DIRECTORY); }

  int read_file(const std::string& path, std::string& data) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    data.clear();
    char buf[16384];
    int err = 0;
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n == 0) break;
      if (n < 0) {
        if (errno == EINTR) continue;
        err = errno;
        break;
      }
      data.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return err;
  }

  int stat(const std::string& path) override {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? 0 : errno;
  }

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

  int fsync_file(const std::string& path) override { return fsync_path(path, O_RDONLY); }

  int rename(const std::string& from, const std::string& to) override {
    return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
  }

  int remove(const std::string& path) override {
    return ::unlink(path.c_str()) == 0 || errno == ENOENT ? 0 : errno;
  }
};

}  // namespace

std::shared_ptr<FileSystem> posix_file_system() {
  static const auto fs = std::make_shared<PosixFileSystem>();
  return fs;
}

}  // namespace clickpipe
