// Logical replication from a slot over the streaming protocol, in whole transactions.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>
#include <string>

#include "clickpipe/change.hpp"
#include "clickpipe/postgres/connection.hpp"
#include "clickpipe/postgres/pgoutput.hpp"
#include "clickpipe/postgres/schema_tracker.hpp"

namespace clickpipe::postgres {

// Memory bounds of a stream: what a transaction may hold before it is spilled to disk, and what
// one batch may carry.
struct StreamLimits {
  std::size_t spill_bytes = 32u << 20;  // of the open transaction's changes
  std::size_t batch_bytes = 32u << 20;  // of the changes in one batch
  std::string spill_dir;                // empty: the system's temporary directory (TMPDIR)
};

// Process-wide counts of spilled transactions and changes (tests prove the path ran).
struct SpillCounters {
  std::uint64_t transactions = 0;
  std::uint64_t changes = 0;
};
SpillCounters spill_counters() noexcept;

// Not thread-safe: one thread drives a stream.
class LogicalStream {
 public:
  // Opens a replication connection and starts streaming `slot` after `from`
  // (START_REPLICATION ... LOGICAL, proto_version 1, the publication). With `tables`, rows are
  // mapped into those definitions and followed through schema changes (SchemaTracker, reading
  // the catalog over a second, ordinary connection when a table's description changes), and
  // relations not among them are dropped; without, rows come in relation order.
  LogicalStream(const ConnectionSettings& settings, const std::string& slot,
                const std::string& publication, Lsn from,
                std::optional<std::vector<TableDefinition>> tables = std::nullopt,
                StreamLimits limits = {});
  ~LogicalStream();

  // Whole transactions, up to `max_changes` changes and limits.batch_bytes, waiting at most `wait`
  // and returning early once `stop` is requested. A transaction larger than that comes alone, in
  // several batches; `end` stays before it until its last one. `end` is safe to confirm once the
  // batch is applied: the end of its last whole transaction, or, with nothing of ours pending, the
  // server's position from its last keepalive (so an idle slot does not hold WAL forever).
  CdcBatch pull(std::size_t max_changes, std::chrono::milliseconds wait, std::stop_token stop);

  // Tells the server everything up to `flushed` is safe (a standby status update). Call only once
  // the destination committed it and it is saved.
  void confirm(Lsn flushed);
  // A standby status update now if none went out for 10 s: for callers busy elsewhere (copying a
  // partition) that would otherwise let the server time the stream out.
  void keep_alive();
  Lsn confirmed() const noexcept { return confirmed_; }

 private:
  void handle(const char* data, int len);
  void send_status(bool reply_requested = false);
  // Moves ready changes into `batch`; true once it is full.
  bool take_ready(CdcBatch& batch, std::size_t max_changes, std::size_t& bytes);

  ConnectionSettings settings_;
  Connection conn_;
  StreamLimits limits_;
  std::optional<Connection> catalog_;  // opened when a table's description changes
  std::unique_ptr<SchemaTracker> tracker_;
  pgoutput::Assembler assembler_;
  std::deque<pgoutput::Transaction> ready_;
  std::deque<std::size_t> charges_;  // what each ready transaction counts against the budget
  std::size_t ready_bytes_ = 0;
  bool draining_ = false;  // the front transaction is partly handed out
  Lsn confirmed_;
  Lsn server_end_;    // from the newest keepalive or data message
  Lsn received_end_;  // end of the last whole transaction received
  std::chrono::steady_clock::time_point last_status_;
};

}  // namespace clickpipe::postgres
