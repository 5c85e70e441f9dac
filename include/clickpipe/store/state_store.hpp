// Where pipes are saved. The runtime saves a record before anyone sees what it says: a
// transition before listeners and status(), a partition before it counts as done, a CDC position
// before it is confirmed to the source.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "clickpipe/error.hpp"
#include "clickpipe/store/record.hpp"

namespace clickpipe {

// Why a store call failed. Only Unavailable may heal by itself; the others need someone to act.
enum class StoreErrorCode : std::uint8_t {
  Unavailable,    // a write, fsync or rename failed, nothing changed (full disk, EIO): retry
  Failed,         // the store refuses every later save (lost its lock, an fsync whose outcome is
                  // unknown): reopen it, which re-reads what is really on disk
  Corrupt,        // what is stored cannot be read back (bad checksum, truncated, unknown format)
  AlreadyExists,  // an id that is taken
  NotFound,       // no such record
  Locked,         // another process holds the store
  Refused,        // the operating system refuses access (permissions, a read-only file system)
  Fenced,         // this process no longer owns the pipe (its lease ran out or another worker
                  // took the pipe over): it must stop the pipe and write nothing more for it
};

std::string_view to_string(StoreErrorCode code) noexcept;

// A save or load that failed, with a code saying what to do about it. Not a TransientError: the
// runtime retries only what transient() says may heal, and surfaces the rest as the pipe's error.
class StoreError : public Error {
 public:
  StoreError(StoreErrorCode code, const std::string& message) : Error(message), code_(code) {}
  StoreErrorCode code() const noexcept { return code_; }
  bool transient() const noexcept { return code_ == StoreErrorCode::Unavailable; }

 private:
  StoreErrorCode code_;
};

struct LoadResult {
  std::vector<PipeRecord> records;
  std::vector<BrokenRecord> broken;
};

// Threading: save and remove may be called concurrently for different pipes; one pipe's calls
// never overlap (the pipe serializes them).
class StateStore {
 public:
  virtual ~StateStore() = default;
  virtual LoadResult load_all() = 0;
  // Durable when it returns; throws StoreError otherwise, leaving the previous record in place.
  virtual void save(const PipeRecord& record) = 0;
  virtual void remove(const std::string& id) = 0;
  // Whether a record (readable or broken) holds `id`: a new pipe may not take it.
  virtual bool holds(const std::string& id) = 0;
  // Called by the runtime before every attempt of an executor call (provisioning, setup, each
  // partition, swaps, removals, teardown) and before each CDC batch is applied: throws StoreError
  // (Fenced) when this process may no longer write for pipe `id`, so that a worker whose lease
  // ran out stops before it writes rather than at its next save. Must be cheap (no round trip).
  // Default: a store held by one process always may.
  virtual void check_writer(const std::string& id) { (void)id; }
};

}  // namespace clickpipe
