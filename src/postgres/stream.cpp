#include "clickpipe/postgres/stream.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "clickpipe/postgres/catalog.hpp"
#include "spool.hpp"

namespace clickpipe::postgres {
namespace {

std::uint64_t be64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
void put64(char* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}
// Microseconds since 2000-01-01, PostgreSQL's epoch.
std::int64_t pg_now() {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  return us - 946684800LL * 1000000LL;
}

}  // namespace

LogicalStream::LogicalStream(const ConnectionSettings& settings, const std::string& slot,
                             const std::string& publication, Lsn from,
                             std::optional<std::vector<TableDefinition>> tables,
                             StreamLimits limits)
    : settings_(settings),
      conn_(Connection::open(settings, true)),
      limits_(std::move(limits)),
      confirmed_(from),
      server_end_(from),
      received_end_(from),
      last_status_(std::chrono::steady_clock::now()) {
  if (tables) {
    tracker_ = std::make_unique<SchemaTracker>(*tables, [this](std::uint32_t oid) {
      if (!catalog_) catalog_.emplace(Connection::open(settings_));
      return catalog_columns(*catalog_, oid);
    });
    assembler_.track(tracker_.get());
  }
  assembler_.spill_past(limits_.spill_bytes, limits_.spill_dir);
  // The publication name goes in a quoted literal inside the options.
  const std::string sql = "START_REPLICATION SLOT " + conn_.identifier(slot) + " LOGICAL " +
                          to_string(from) + " (proto_version '1', publication_names " +
                          conn_.literal(conn_.identifier(publication)) + ")";
  conn_.exec(sql);
}

LogicalStream::~LogicalStream() = default;

void LogicalStream::send_status(bool reply_requested) {
  char msg[34];
  msg[0] = 'r';
  put64(msg + 1, confirmed_.value);   // written
  put64(msg + 9, confirmed_.value);   // flushed
  put64(msg + 17, confirmed_.value);  // applied
  put64(msg + 25, static_cast<std::uint64_t>(pg_now()));
  msg[33] = reply_requested ? 1 : 0;
  if (PQputCopyData(conn_.raw(), msg, sizeof msg) != 1 || PQflush(conn_.raw()) != 0) {
    throw_pg_error("sending a standby status update: " + conn_.error_message(), "");
  }
  last_status_ = std::chrono::steady_clock::now();
}

void LogicalStream::keep_alive() {
  if (std::chrono::steady_clock::now() - last_status_ > std::chrono::seconds(10)) send_status();
}

void LogicalStream::confirm(Lsn flushed) {
  if (flushed <= confirmed_) return;
  confirmed_ = flushed;
  send_status();
}

void LogicalStream::handle(const char* data, int len) {
  if (len < 1) return;
  if (data[0] == 'k' && len >= 18) {  // keepalive: walEnd, sendTime, replyRequested
    const Lsn end{be64(data + 1)};
    if (end > server_end_) server_end_ = end;
    if (data[17]) send_status();
    return;
  }
  if (data[0] == 'w' && len >= 25) {  // XLogData: dataStart, walEnd, sendTime, message
    const Lsn end{be64(data + 9)};
    if (end > server_end_) server_end_ = end;
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(data + 25);
    const auto message = pgoutput::decode({bytes, static_cast<std::size_t>(len - 25)});
    if (auto txn = assembler_.feed(message)) {
      received_end_ = txn->end_lsn;
      // A spilled transaction counts whole: reading stops until it is handed out, so spilled
      // transactions do not queue up (each holds a file and its buffer).
      const std::size_t charge = txn->bytes + (txn->spilled ? txn->spilled->bytes() : 0);
      ready_bytes_ += charge;
      charges_.push_back(charge);
      ready_.push_back(std::move(*txn));
    }
    return;
  }
  char shown[8];
  std::snprintf(shown, sizeof shown, "0x%02X",
                static_cast<unsigned>(static_cast<unsigned char>(data[0])));
  // In hex: a raw byte could be invalid UTF-8 in a message that ends up in status JSON.
  throw PgFatalError(std::string("replication: unexpected message ") + shown, "");
}

bool LogicalStream::take_ready(CdcBatch& batch, std::size_t max_changes, std::size_t& bytes) {
  auto full = [&] { return batch.changes.size() >= max_changes || bytes >= limits_.batch_bytes; };
  while (!ready_.empty() && !full()) {
    pgoutput::Transaction& t = ready_.front();
    const bool fits = batch.changes.size() + t.size() <= max_changes &&
                      bytes + t.bytes <= limits_.batch_bytes && !t.spilled;
    // A transaction that does not fit waits for the next batch, unless it cannot fit any: then it
    // comes alone, in pieces.
    if (!fits && !batch.changes.empty()) return true;
    if (!draining_) {
      for (auto& sc : t.schema_changes) batch.schema_changes.push_back(std::move(sc));
      t.schema_changes.clear();
    }
    if (fits) {
      for (auto& c : t.changes) batch.changes.push_back(std::move(c));
      bytes += t.bytes;
    } else {
      draining_ = true;
      Change c;
      while (!full() && t.spilled && t.spilled->read(c)) {
        c.commit_lsn = t.commit_lsn;
        bytes += pgoutput::approximate_bytes(c);
        batch.changes.push_back(std::move(c));
      }
      if (t.spilled && batch.changes.size() < max_changes && bytes < limits_.batch_bytes) {
        t.spilled.reset();  // read to its end
      }
      if (t.spilled) return true;
      std::size_t taken = 0;
      while (taken < t.changes.size() && !full()) {
        bytes += pgoutput::approximate_bytes(t.changes[taken]);
        batch.changes.push_back(std::move(t.changes[taken++]));
      }
      t.changes.erase(t.changes.begin(), t.changes.begin() + static_cast<std::ptrdiff_t>(taken));
      if (!t.changes.empty()) return true;
    }
    // The whole transaction is in this batch or was in earlier ones: its end is now safe.
    draining_ = false;
    batch.end = t.end_lsn;
    // PostgreSQL counts microseconds from 2000-01-01 UTC, 946684800 s after the Unix epoch.
    batch.committed_at = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::microseconds(t.commit_time) + std::chrono::seconds(946684800)));
    ready_bytes_ -= std::min(ready_bytes_, charges_.front());
    charges_.pop_front();
    ready_.pop_front();
  }
  return full();
}

CdcBatch LogicalStream::pull(std::size_t max_changes, std::chrono::milliseconds wait,
                             std::stop_token stop) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  CdcBatch batch;
  batch.end = confirmed_;
  std::size_t bytes = 0;
  keep_alive();  // applying a batch can take long: keep the server from timing the stream out
  for (;;) {
    if (take_ready(batch, max_changes, bytes)) break;
    // Drain whatever has arrived without blocking, while what waits fits the memory budget (the
    // server waits meanwhile).
    while (ready_bytes_ < limits_.batch_bytes) {
      char* buf = nullptr;
      const int n = PQgetCopyData(conn_.raw(), &buf, 1);
      if (n == 0) break;  // nothing more right now
      if (n == -1) throw_pg_error("replication stream ended: " + conn_.error_message(), "");
      if (n == -2) throw_pg_error("replication stream failed: " + conn_.error_message(), "");
      try {
        handle(buf, n);
      } catch (...) {
        PQfreemem(buf);
        throw;
      }
      PQfreemem(buf);
    }
    if (take_ready(batch, max_changes, bytes) || draining_) break;
    const auto now = std::chrono::steady_clock::now();
    if (stop.stop_requested() || now >= deadline) break;
    if (!ready_.empty()) continue;  // more fits once the budget is free again
    // Keep the server informed even while idle (it would time the walsender out otherwise).
    if (now - last_status_ > std::chrono::seconds(10)) send_status();
    // Wait for the socket, in short slices so a stop is seen within one poll. poll(), not
    // select(): a descriptor past FD_SETSIZE (a process with many pipes) would overflow an fd_set.
    const int fd = PQsocket(conn_.raw());
    if (fd < 0) throw_pg_error("replication connection lost: " + conn_.error_message(), "");
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    const auto slice = std::min<std::chrono::milliseconds>(left, std::chrono::milliseconds(50));
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(slice.count()));
    if (ready < 0 && errno != EINTR) {
      throw_pg_error(
          "waiting for the replication stream: " + std::generic_category().message(errno), "");
    }
    if (ready > 0 && PQconsumeInput(conn_.raw()) == 0) {
      throw_pg_error("replication connection lost: " + conn_.error_message(), "");
    }
  }
  batch.source_head = server_end_;
  batch.partial = draining_;
  // Idle: nothing of ours pending or partly received, so the server's position is safe.
  if (batch.changes.empty() && ready_.empty() && !assembler_.in_transaction() && !draining_ &&
      server_end_ > batch.end) {
    batch.end = server_end_;
  }
  return batch;
}

}  // namespace clickpipe::postgres
