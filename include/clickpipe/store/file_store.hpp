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
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "clickpipe/store/state_store.hpp"

namespace clickpipe {

// The file operations the store uses, overridable for fault injection (as RocksDB's FileSystem).
// Each returns 0 or an errno value.
class FileSystem {
 public:
  virtual ~FileSystem() = default;
  virtual int write_file(const std::string& path, std::string_view data) = 0;  // create/truncate
  virtual int fsync_file(const std::string& path) = 0;
  virtual int rename(const std::string& from, const std::string& to) = 0;
  virtual int fsync_dir(const std::string& dir) = 0;
  virtual int remove(const std::string& path) = 0;
};

std::shared_ptr<FileSystem> posix_file_system();

class FileStore final : public StateStore {
 public:
  // Throws StoreError when the directory cannot be used or another process holds it.
  static std::unique_ptr<FileStore> open(const std::string& dir,
                                         std::shared_ptr<FileSystem> fs = posix_file_system());
  ~FileStore() override;

  LoadResult load_all() override;
  void save(const PipeRecord& record) override;
  void remove(const std::string& id) override;
  bool holds(const std::string& id) override;

  std::uint64_t generation() const noexcept { return generation_; }
  const std::string& directory() const noexcept { return dir_; }
  std::string path_of(const std::string& id) const;

 private:
  FileStore(std::string dir, std::shared_ptr<FileSystem> fs, int lock_fd, std::uint64_t generation);
  void check_generation();

  const std::string dir_;
  const std::shared_ptr<FileSystem> fs_;
  const int lock_fd_;
  const std::uint64_t generation_;
  std::mutex mu_;
  std::string poisoned_;  // why every save now fails, once a directory fsync failed
};

// The JSON form of a record file, exposed for tools and tests.
std::string encode_record(const PipeRecord& record, std::uint64_t generation);
// Throws InvalidField / StoreError with a reason; upgrades older format versions.
PipeRecord decode_record(std::string_view text, std::uint64_t* generation = nullptr);

}  // namespace clickpipe
