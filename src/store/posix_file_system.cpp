#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "clickpipe/store/file_system.hpp"

namespace clickpipe {
namespace {

constexpr mode_t kDirMode = 0700;
constexpr mode_t kFileMode = 0600;

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
  const int fd = ::open(path.c_str(), flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

// 0 when `fd` is a regular file; the errno read_file and lock promise otherwise.
int regular(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno;
  if (S_ISREG(st.st_mode)) return 0;
  return S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
}

// The largest file read whole: a record of 2^20 partitions (the most a table may plan) takes about
// 100 MiB.
constexpr std::size_t kMaxFileBytes = std::size_t{256} << 20;

class PosixFileSystem final : public FileSystem {
 public:
  int create_dir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), kDirMode) != 0) return errno == EEXIST ? 0 : errno;
    // The umask may have taken bits away from what was just made; put exactly 0700 back,
    // through a descriptor so that a symlink swapped in meanwhile is not followed.
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno;
    const int rc = ::fchmod(fd, kDirMode) == 0 ? 0 : errno;
    ::close(fd);
    return rc;
  }

  int inspect(const std::string& path, PathInfo& info) override {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return errno;
    info.type = S_ISREG(st.st_mode)   ? PathInfo::Type::Regular
                : S_ISDIR(st.st_mode) ? PathInfo::Type::Directory
                : S_ISLNK(st.st_mode) ? PathInfo::Type::Symlink
                                      : PathInfo::Type::Other;
    info.owner = st.st_uid;
    info.mode = st.st_mode & 07777;
    return 0;
  }

  int lock(const std::string& path, std::unique_ptr<FileLock>& held) override {
    const int fd =
        ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, kFileMode);
    if (fd < 0) return errno;
    int err = regular(fd);
    if (!err) err = private_mode(fd);
    if (!err && ::flock(fd, LOCK_EX | LOCK_NB) != 0) err = errno;
    if (err) {
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
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno;
    DIR* d = ::fdopendir(fd);
    if (!d) {
      const int err = errno;
      ::close(fd);
      return err;
    }
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
    ::closedir(d);  // closes fd too
    return err;
  }

  int fsync_dir(const std::string& dir) override { return fsync_path(dir, O_RDONLY | O_DIRECTORY); }

  int read_file(const std::string& path, std::string& data) override {
    // O_NONBLOCK: opening a FIFO planted here returns at once instead of waiting for a writer.
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return errno;
    if (int err = regular(fd)) {
      ::close(fd);
      return err;
    }
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
      if (data.size() + static_cast<std::size_t>(n) > kMaxFileBytes) {
        err = EFBIG;  // no record is this large: something planted, not worth the memory
        break;
      }
      data.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return err;
  }

  int stat(const std::string& path) override {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 ? 0 : errno;
  }

  int write_file(const std::string& path, std::string_view data) override {
    // O_EXCL with O_NOFOLLOW: a symlink (or anything else) already at `path` fails the open
    // rather than redirecting the write.
    const int fd =
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, kFileMode);
    if (fd < 0) return errno;
    if (::fchmod(fd, kFileMode) != 0) {  // the umask may have taken bits away
      const int err = errno;
      ::close(fd);
      return err;
    }
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

 private:
  // A lock file of this user's made by an older clickpipe (0644) becomes 0600; one of another
  // user's is left alone, for the store to refuse by name.
  static int private_mode(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return errno;
    if (st.st_uid != ::geteuid() || (st.st_mode & 07777) == kFileMode) return 0;
    return ::fchmod(fd, kFileMode) == 0 ? 0 : errno;
  }
};

}  // namespace

std::shared_ptr<FileSystem> posix_file_system() {
  static const auto fs = std::make_shared<PosixFileSystem>();
  return fs;
}

}  // namespace clickpipe
