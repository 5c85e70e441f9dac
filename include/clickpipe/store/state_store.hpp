// Where pipes are saved. The runtime saves a record before anyone sees what it says: a
// transition before listeners and status(), a partition before it counts as done, a CDC position
// before it is confirmed to the source.
#pragma once

#include <string>
#include <vector>

#include "clickpipe/error.hpp"
#include "clickpipe/store/record.hpp"

namespace clickpipe {

// A save or load that failed. Transient ones (a full disk, a failed write) may work later: the
// pipe stops advancing and retries. Fatal ones (the store lost its lock, a failed directory
// fsync whose outcome is unknown) refuse every later save until the store is opened again.
class StoreError : public TransientError {
 public:
  StoreError(const std::string& message, bool fatal) : TransientError(message), fatal_(fatal) {}
  bool fatal() const noexcept { return fatal_; }

 private:
  bool fatal_;
};

// A record that could not be read: reported by name, never dropped, never overwritten.
struct BrokenRecord {
  std::string name;    // the pipe id where known, else the file name
  std::string reason;  // "checksum mismatch", "format version 3 is newer than 2", ...
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
};

}  // namespace clickpipe
