// What the benchmarks that talk to PostgreSQL share: the server's settings as printed next to
// every figure, and the one condition on which every CDC clock stops.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <clickpipe/lsn.hpp>
#include <clickpipe/postgres/connection.hpp>
#include <clickpipe/postgres/replication.hpp>
#include <cstdlib>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <thread>

#include "common.hpp"

namespace clickpipe::bench {

// The server settings that move the figures (durability, WAL, memory), as one line.
inline std::string pg_server_settings(postgres::Connection& c) {
  const std::string list = std::string(
      c.exec("SELECT string_agg(n || '=' || current_setting(n), ', ') FROM unnest(ARRAY["
             "'fsync', 'synchronous_commit', 'full_page_writes', 'wal_level', 'shared_buffers', "
             "'max_wal_size', 'autovacuum']) AS n")
          .value(0, 0));
  const char* friendly = std::getenv("CLICKPIPE_PG_FRIENDLY");
  return list + ((friendly && std::string(friendly) == "1")
                     ? "; session defaults: PostgreSQL's own"
                     : "; session defaults: scripts/pg.sh's hostile set (clients pin their own)");
}

// Runs a shell command on another thread; the future holds its exit status.
inline std::future<int> in_background(std::string cmd) {
  return std::async(std::launch::async,
                    [cmd = std::move(cmd)] { return std::system(cmd.c_str()); });
}

// The clock of every CDC figure, for clickpipe and pg_recvlogical alike, stops here: when the
// server shows `slot`'s confirmed_flush_lsn at `end` or past it, i.e. the consumer has taken every
// change up to `end` and told the server so. Polls every 5 ms on `poll` (not the consumer's
// connection) and returns the seconds since `t0`. `consumer_ended` is asked between polls: a
// consumer that ended with its slot short of `end` fails the benchmark, as does the timeout.
inline double seconds_until_confirmed(postgres::Connection& poll, const std::string& slot, Lsn end,
                                      Steady::time_point t0,
                                      const std::function<bool()>& consumer_ended,
                                      double timeout_s = 600) {
  std::optional<Steady::time_point> ended;
  for (;;) {
    const auto s = postgres::slot_status(poll, slot);
    if (s && s->confirmed_flush >= end) return since(t0);
    // The last feedback may reach the server just after the process exits: allow one second.
    if (!ended && consumer_ended()) ended = Steady::now();
    if ((ended && Steady::now() - *ended > std::chrono::seconds(1)) || since(t0) > timeout_s) {
      fmt::print(stderr, "failed: slot {} confirmed {} of {} ({})\n", slot,
                 s ? to_string(s->confirmed_flush) : std::string("nothing"), to_string(end),
                 ended ? "its consumer ended" : "timed out");
      std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// pg_recvlogical reading `slot` with pgoutput up to `end`, into /dev/null. `target` holds the
// connection options (-h -p -U -d); the password comes from PGPASSWORD.
inline std::string recvlogical_command(const std::string& target, const std::string& slot,
                                       const std::string& publication, Lsn end) {
  return fmt::format(
      "pg_recvlogical {} --slot={} --start --plugin=pgoutput -o proto_version=1 "
      "-o publication_names={} --endpos={} -f /dev/null",
      target, slot, publication, to_string(end));
}

}  // namespace clickpipe::bench
