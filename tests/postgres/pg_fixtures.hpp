// What the PostgreSQL server tests share: connections to the test server, unique names, polling
// to a condition, and a table with a publication and a slot to stream from.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "../servers.hpp"
#include "clickpipe/postgres/connection.hpp"
#include "clickpipe/postgres/replication.hpp"
#include "clickpipe/postgres/stream.hpp"

namespace clickpipe::postgres::pgtest {

inline ConnectionSettings settings() { return test::postgres_settings(); }

inline Connection sql() { return Connection::open(settings()); }

// A unique name per test, so tests can share one server.
inline std::string unique(const std::string& base) {
  static std::atomic<int> n{0};
  return base + "_" + std::to_string(::getpid()) + "_" + std::to_string(n++);
}

// Polls `pred` until it holds or `timeout` passes; whether it held. For what the server does
// after answering (a walsender applying a standby status update), instead of sleeping.
inline bool eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// Whether the server's record of `slot` reaches `confirmed` within `timeout`.
inline bool slot_confirms(Connection& c, const std::string& slot, Lsn confirmed,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  return eventually(
      [&] {
        const auto st = slot_status(c, slot);
        return st && st->confirmed_flush == confirmed;
      },
      timeout);
}

// Streams until `want` changes arrived (or 10 s), confirming as it goes.
inline std::vector<Change> drain(LogicalStream& s, std::size_t want, Lsn* end = nullptr) {
  std::vector<Change> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
    CdcBatch b = s.pull(1000, std::chrono::milliseconds(200), {});
    for (auto& c : b.changes) out.push_back(std::move(c));
    if (end) *end = b.end;
  }
  return out;
}

// A table named with a space and capitals (so it must be quoted), with a column named `select`,
// published, and a slot created before any change to it.
struct Cdc {
  Connection c = sql();
  std::string name = unique("Cdc Items");
  std::string table = c.identifier(name);
  std::string slot = unique("cdc_slot");
  std::string publication = unique("cdc_pub");
  Lsn start;
  Cdc() {
    c.exec("CREATE TABLE " + table + " (id int8 PRIMARY KEY, v text, \"select\" text)");
    const std::vector<TableRef> refs{{"public", name}};
    ensure_publication(c, publication, refs);
    ensure_publication(c, publication, refs);  // idempotent
    Connection repl = Connection::open(settings(), true);
    start = create_slot(repl, c, slot).info.consistent_point;
  }
  ~Cdc() {
    // Best effort: a failed test may have left the slot busy, and a destructor must not throw.
    try {
      drop_slot(c, slot);
      drop_publication(c, publication);
    } catch (...) {
    }
  }
};

}  // namespace clickpipe::postgres::pgtest
