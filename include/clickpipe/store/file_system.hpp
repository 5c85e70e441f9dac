// Every system call FileStore makes, behind an interface so tests can inject faults (as RocksDB's
// FileSystem). posix_file_system() is the real one; clickpipe::testing::FlakyFileSystem fails any
// operation by name.
//
// Error contract: each call returns 0 or an errno value (ENOSPC, EIO, EACCES, ...) and never
// throws; a value it produces goes to an out parameter, which means nothing unless 0 came back.
// A failed call may leave debris only where its comment says so; the store cleans that up.
//
// Privacy: what an implementation creates is the process user's alone (directories 0700, files
// 0600, whatever the umask), and no call follows a symlink at the path it is given, so whoever
// plants one cannot steer a read or a write elsewhere.
//
// Threading: every call may be made from any thread, concurrently with any other; an
// implementation keeps no state between calls except a lock it hands out.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace clickpipe {

// An exclusive lock on a file, held while this object lives.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

// What a path itself is, as lstat(2) tells it: a symlink is described, never followed.
struct PathInfo {
  enum class Type : std::uint8_t { Regular, Directory, Symlink, Other };
  Type type = Type::Other;
  std::uint32_t owner = 0;  // uid
  std::uint32_t mode = 0;   // permission bits only, e.g. 0600
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Creates the directory `dir` (its parent must exist), 0700; one that already exists is fine
  // and keeps its mode (the caller inspects it).
  virtual int create_dir(const std::string& dir) = 0;
  // Fills `info` for `path` without following a symlink: ENOENT when there is none.
  virtual int inspect(const std::string& path, PathInfo& info) = 0;
  // Takes an exclusive lock on `path`, creating the file (0600), without waiting: EWOULDBLOCK
  // when another holder has it. The file then names this process (its pid), for that other's
  // message. ELOOP when `path` is a symlink, EISDIR or EINVAL when it is not a regular file.
  virtual int lock(const std::string& path, std::unique_ptr<FileLock>& held) = 0;
  // The entry names in `dir` (without "." and ".."), in no particular order.
  virtual int list_dir(const std::string& dir, std::vector<std::string>& names) = 0;
  virtual int fsync_dir(const std::string& dir) = 0;

  // The whole file: ENOENT when there is none, ELOOP for a symlink, EISDIR for a directory,
  // EINVAL for anything else that is not a regular file (a FIFO is never waited on), EFBIG for
  // a file larger than any record (the POSIX one stops at 256 MiB).
  virtual int read_file(const std::string& path, std::string& data) = 0;
  // 0 when `path` exists (a symlink, even a dangling one, counts), ENOENT when it does not,
  // another errno when that cannot be told.
  virtual int stat(const std::string& path) = 0;
  // Creates `path` (0600), which must not exist yet (EEXIST otherwise, a symlink included: it is
  // never followed), and writes `data`; a failure may leave the file, part written.
  virtual int write_file(const std::string& path, std::string_view data) = 0;
  virtual int fsync_file(const std::string& path) = 0;
  virtual int rename(const std::string& from, const std::string& to) = 0;
  // A path that is already gone counts as removed.
  virtual int remove(const std::string& path) = 0;
};

std::shared_ptr<FileSystem> posix_file_system();

}  // namespace clickpipe
