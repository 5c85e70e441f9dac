// A StateStore in a directory: one JSON file per pipe, written durably.
//
// Each save writes `<id>.json.tmp`, fsyncs it, renames it over `<id>.json` and fsyncs the
// directory, so a crash at any instant leaves the old record or the new one, whole. Each record
// carries a checksum (a torn or altered file is reported by name at load, never dropped or
// overwritten) and the generation of the process that wrote it. Opening the directory takes an
// exclusive lock (a second process gets a clear error) and a new generation; a save by a writer
// whose generation is no longer the newest is refused.
//
// A failed fsync is never retried as if it had worked: the temp file is thrown away and the
// next save writes a new one; a failed fsync of the directory, after which it is unknown what is
// on disk, poisons the store (every later save fails) until it is opened again.
//
// The store is private to the process's effective user: what it creates is 0700 (directories)
// and 0600 (files) whatever the umask, and opening refuses a directory, LOCK, GENERATION or
// record that is a symlink or not what it should be, belongs to another user, or that group or
// others may write; the message names the path and the fix (chmod, chown or remove it). A save
// refuses a temp path holding anything but a stale temp file of its own, and never follows it.
//
// Errors are StoreErrors naming the path: Unavailable when a write, fsync or rename failed and
// the old record stands (ENOSPC, EIO and other errors waiting can heal); Refused for the rest
// (EACCES, EPERM, EROFS, ENAMETOOLONG, a directory where a file should be, a store that is not
// private, ...); NotFound when the directory is gone; Failed once poisoned or overtaken by a
// newer writer; Locked when another process holds the store; Corrupt when GENERATION cannot be
// read as a number.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "clickpipe/store/file_system.hpp"
#include "clickpipe/store/state_store.hpp"

namespace clickpipe {

class FileStore final : public StateStore {
 public:
  // Throws StoreError when the directory cannot be used or another process holds it.
  static std::unique_ptr<FileStore> open(const std::string& dir,
                                         std::shared_ptr<FileSystem> fs = posix_file_system());
  ~FileStore() override;

  // A record that read_record_file refuses is reported in `broken` with its message; only a
  // directory that cannot be listed throws.
  LoadResult load_all() override;
  void save(const PipeRecord& record) override;
  void remove(const std::string& id) override;
  // Throws StoreError when it cannot be told (a stat failing other than with ENOENT).
  bool holds(const std::string& id) override;

  std::uint64_t generation() const noexcept { return generation_; }
  const std::string& directory() const noexcept { return dir_; }
  std::string path_of(const std::string& id) const;

 private:
  FileStore(std::string dir, std::shared_ptr<FileSystem> fs, std::unique_ptr<FileLock> lock,
            std::uint64_t generation);
  void check_writable();                                        // under mu_
  [[noreturn]] void poison(int err, const std::string& doing);  // under mu_

  const std::string dir_;
  const std::shared_ptr<FileSystem> fs_;
  const std::unique_ptr<FileLock> lock_;
  const std::uint64_t generation_;
  std::mutex mu_;
  std::string poisoned_;  // why every save now fails: a failed directory fsync or a newer writer
};

// The JSON form of a record file, exposed for tools and tests. Throws InvalidField for a
// partition bound that is not a block number (so that save refuses what load would).
std::string encode_record(const PipeRecord& record, std::uint64_t generation);
// Throws InvalidField naming what is wrong; upgrades older format versions. Every field is
// range-checked, since the checksum proves no author: partition bounds must be block numbers (up
// to 10 decimal digits, or empty), partitions numbered in order, done partitions ascending and
// planned, names non-empty and without NUL, lists and counts bounded, times representable, the
// settings valid. Messages longer than 4,096 bytes are cut.
PipeRecord decode_record(std::string_view text, std::uint64_t* generation = nullptr);

// One record file of a store, read as load_all reads it. Throws StoreError naming the path:
// Refused unless it is a regular file of this user's that group and others cannot write (it is
// not opened otherwise), NotFound when there is none, Corrupt (naming the field too) when it
// does not decode or holds a pipe whose id belongs in another file, and the read's own code
// when it cannot be read.
PipeRecord read_record_file(FileSystem& fs, const std::string& path);

}  // namespace clickpipe
