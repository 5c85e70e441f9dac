// Logical replication from a slot over the streaming protocol, in whole transactions.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <set>
#include <stop_token>
#include <string>

#include "clickpipe/change.hpp"
#include "clickpipe/postgres/connection.hpp"
#include "clickpipe/postgres/pgoutput.hpp"

namespace clickpipe::postgres {

// Not thread-safe: one thread drives a stream.
class LogicalStream {
 public:
  // Opens a replication connection and starts streaming `slot` after `from`
  // (START_REPLICATION ... LOGICAL, proto_version 1, the publication).
  LogicalStream(const ConnectionSettings& settings, const std::string& slot,
                const std::string& publication, Lsn from);

  // Whole transactions, up to `max_changes` changes (a larger transaction comes whole), waiting at
  // most `wait` and returning early once `stop` is requested. `end` is safe to confirm once the
  // batch is applied: the end of its last transaction, or, with nothing of ours pending, the
  // server's position from its last keepalive (so an idle slot does not hold WAL forever).
  CdcBatch pull(std::size_t max_changes, std::chrono::milliseconds wait, std::stop_token stop);

  // Tells the server everything up to `flushed` is safe (a standby status update). Call only once
  // the destination committed it and it is saved.
  void confirm(Lsn flushed);
  Lsn confirmed() const noexcept { return confirmed_; }

 private:
  void handle(const char* data, int len, CdcBatch& batch, bool& have_end);
  void send_status(bool reply_requested = false);

  Connection conn_;
  pgoutput::Assembler assembler_;
  std::deque<pgoutput::Transaction> ready_;
  Lsn confirmed_;
  Lsn server_end_;    // from the newest keepalive or data message
  Lsn received_end_;  // end of the last whole transaction received
  std::chrono::steady_clock::time_point last_status_;
};

}  // namespace clickpipe::postgres
