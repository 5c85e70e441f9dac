// Every system call FileStore makes, behind an interface so tests can inject faults (as RocksDB's
// FileSystem). posix_file_system() is the real one; clickpipe::testing::FlakyFileSystem fails any
// operation by name.
//
// Error contract: each call returns 0 or an errno value (ENOSPC, EIO, EACCES, ...) and never
// throws; a value it produces goes to an out parameter, which means nothing unless 0 came back.
// A failed call may leave debris only where its comment says so; the store cleans that up.
//
// Threading: every call may be made from any thread, concurrently with any other; an
// implementation keeps no state between calls except a lock it hands out.
#pragma once

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

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Creates the directory `dir` (its parent must exist); one that already exists is fine.
  virtual int create_dir(const std::string& dir) = 0;
  // Takes an exclusive lock on `path`, creating the file, without waiting: EWOULDBLOCK when
  // another holder has it. The file then names this process (its pid), for that other's message.
  virtual int lock(const std::string& path, std::unique_ptr<FileLock>& held) = 0;
  // The entry names in `dir` (without "." and ".."), in no particular order.
  virtual int list_dir(const std::string& dir, std::vector<std::string>& names) = 0;
  virtual int fsync_dir(const std::string& dir) = 0;

  // The whole file: ENOENT when there is none.
  virtual int read_file(const std::string& path, std::string& data) = 0;
  // 0 when `path` exists, ENOENT when it does not, another errno when that cannot be told.
  virtual int stat(const std::string& path) = 0;
  // Creates or truncates `path` and writes `data`; a failure may leave part of it written.
  virtual int write_file(const std::string& path, std::string_view data) = 0;
  virtual int fsync_file(const std::string& path) = 0;
  virtual int rename(const std::string& from, const std::string& to) = 0;
  // A path that is already gone counts as removed.
  virtual int remove(const std::string& path) = 0;
};

std::shared_ptr<FileSystem> posix_file_system();

}  // namespace clickpipe
