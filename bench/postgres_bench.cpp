// The PostgreSQL source against the standard tools, on the same server and data in one run:
//   1. snapshot rows/s read the way the reference snapshot copier reads: ctid partitions
//      (plan_partitions), N threads with a connection each taking the next partition, COPY text
//      under one exported snapshot, lines counted but not decoded (they go on to ClickHouse as
//      they are) vs `psql -c "\copy t TO '/dev/null'"`
//   2. COPY text vs binary over one connection, bytes and rows only (no decoding): why text
//   3. CDC changes/s: LogicalStream decoding pgoutput vs `pg_recvlogical --plugin=pgoutput`
//      draining the same changes to /dev/null. Both clocks run from the consumer's start until
//      the server shows its slot confirmed up to the WAL position read after the changes.
// Each comparison runs kRounds rounds, the variants' order reversed every other round; medians
// are printed, and every read is counted (the program fails when a count is wrong).
// Needs CLICKPIPE_PG_* (bench/postgres_bench.sh starts a throwaway server and sets them).
//
//   clickpipe_bench_postgres [rows] [changes]
#include <fmt/format.h>
#include <libpq-fe.h>
#include <unistd.h>
#include <clickpipe/postgres/catalog.hpp>
#include <clickpipe/postgres/replication.hpp>
#include <clickpipe/postgres/snapshot.hpp>
#include <clickpipe/postgres/stream.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "postgres_common.hpp"
#include "servers.hpp"

using namespace clickpipe;
using namespace clickpipe::postgres;
using bench::must;
using bench::since;
using bench::Steady;

namespace {

ConnectionSettings settings() {
  try {
    return test::postgres_settings();
  } catch (const InvalidField& e) {
    fmt::print(stderr, "{}; run bench/postgres_bench.sh\n", e.what());
    std::exit(2);
  }
}

constexpr int kRounds = 3;

std::string psql_target() {
  const auto s = settings();
  return fmt::format("-h {} -p {} -U {} -d {}", s.host, s.port, s.user, s.dbname);
}

std::pair<std::uint64_t, std::uint64_t> raw_copy(Connection& c, const std::string& sql) {
  c.exec(sql);
  std::uint64_t bytes = 0, messages = 0;
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(c.raw(), &buf, 0);
    if (n < 0) break;
    bytes += static_cast<std::uint64_t>(n);
    ++messages;
    PQfreemem(buf);
  }
  while (PGresult* r = PQgetResult(c.raw())) PQclear(r);
  return {bytes, messages};
}

// The shell tools get the password through the environment (never the command line), and the
// session settings clickpipe pins, so that they print values in the same form.
void tool_environment() {
  setenv("PGPASSWORD", settings().password.c_str(), 1);
  setenv("PGOPTIONS", std::string(pinned_options()).c_str(), 1);
}

// psql's \copy into /dev/null, the snapshot's baseline; its "COPY n" must name every row.
double psql_copy(const std::string& table, long rows) {
  const std::string cmd =
      fmt::format("psql {} -X -c \"\\copy {} TO '/dev/null'\"", psql_target(), table);
  tool_environment();
  const bench::Ran r = bench::run_captured(cmd);
  unsetenv("PGPASSWORD");
  must(r.status == 0 && r.out.find(fmt::format("COPY {}\n", rows)) != std::string::npos,
       fmt::format("psql \\copy printed '{}', not COPY {}", r.out, rows));
  return r.seconds;
}

struct Read {
  std::uint64_t rows = 0;
  std::uint64_t bytes = 0;
};

// Reads every partition as the reference snapshot copier does, minus ClickHouse: one exported
// snapshot, `threads` threads with a connection each taking the next partition until none is
// left, COPY text lines taken as they come.
Read read_partitions(const TableDefinition& def, const std::vector<Partition>& parts,
                     std::size_t threads) {
  Connection holder = Connection::open(settings());
  holder.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  const std::string snapshot(holder.exec("SELECT pg_export_snapshot()").value(0, 0));
  std::atomic<std::size_t> next{0};
  std::atomic<std::uint64_t> rows{0}, bytes{0};
  std::mutex mu;
  std::string error;
  std::vector<std::thread> pool;
  for (std::size_t i = 0; i < threads; ++i) {
    pool.emplace_back([&] {
      try {
        Connection conn = Connection::open(settings());
        for (std::size_t p = next++; p < parts.size(); p = next++) {
          CopyOut copy(conn, def, parts[p], snapshot);
          std::uint64_t b = 0;
          while (auto line = copy.next()) b += line->size() + 1;
          rows += copy.rows();
          bytes += b;
        }
      } catch (const std::exception& e) {
        std::lock_guard lk(mu);
        error = e.what();
      }
    });
  }
  for (auto& t : pool) t.join();
  must(error.empty(), "reading the partitions: " + error);
  holder.exec("COMMIT");
  return {rows, bytes};
}

// LogicalStream from `start`, decoding and confirming each batch, until the server shows `slot`
// confirmed up to `end`; every one of `changes` must have been decoded. Returns seconds.
double stream_until(Connection& poll, const std::string& slot, const std::string& pub, Lsn start,
                    Lsn end, long changes) {
  std::atomic<bool> stop{false}, ended{false};
  std::uint64_t seen = 0;
  std::string error;
  const auto t0 = Steady::now();
  std::thread consumer([&] {
    try {
      LogicalStream stream(settings(), slot, pub, start);
      while (!stop) {
        CdcBatch b = stream.pull(100000, std::chrono::milliseconds(200), {});
        seen += b.changes.size();
        stream.confirm(b.end);
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
    ended = true;
  });
  const double s = bench::seconds_until_confirmed(poll, slot, end, t0, [&] {
    if (ended && !error.empty()) fmt::print(stderr, "LogicalStream: {}\n", error);
    return ended.load();
  });
  stop = true;
  consumer.join();
  must(error.empty(), "LogicalStream: " + error);
  must(seen == static_cast<std::uint64_t>(changes),
       fmt::format("LogicalStream decoded {} of {} changes", seen, changes));
  return s;
}

// pg_recvlogical up to `end`, timed to the same condition as stream_until.
double recvlogical_until(Connection& poll, const std::string& slot, const std::string& pub,
                         Lsn end) {
  const std::string cmd = bench::recvlogical_command(psql_target(), slot, pub, end);
  tool_environment();
  const auto t0 = Steady::now();
  auto exited = bench::in_background(cmd);
  const double s = bench::seconds_until_confirmed(poll, slot, end, t0, [&] {
    return exited.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  });
  const int rc = exited.get();
  unsetenv("PGPASSWORD");
  must(rc == 0, fmt::format("pg_recvlogical exited with {}", rc));
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // figures appear as they are measured
  const long rows = argc > 1 ? std::atol(argv[1]) : 1000000;
  const long changes = argc > 2 ? std::atol(argv[2]) : 200000;
  Connection c = Connection::open(settings());
  const std::string t = "bench_t";
  c.exec("DROP TABLE IF EXISTS " + t);
  c.exec("CREATE TABLE " + t + " (id int8 PRIMARY KEY, v text, n numeric(12,2), at timestamptz)");
  c.exec(
      fmt::format("INSERT INTO {} SELECT g, md5(g::text), g / 7.0, now() - g * interval '1 s' "
                  "FROM generate_series(1, {}) g",
                  t, rows));
  c.exec("VACUUM ANALYZE " + t);
  const TableDefinition def = read_definitions(c, std::vector<TableRef>{{"public", t}}).at(0);
  fmt::print("PostgreSQL {} on {}:{}; table of {} rows (int8, text, numeric, timestamptz)\n",
             c.server_version(), settings().host, settings().port, rows);
  fmt::print("server settings: {}\n\n", bench::pg_server_settings(c));

  // 1. snapshot: psql, then 1 and 4 connections (reversed every other round)
  const auto parts = plan_partitions(c, def, 100000, 1000);
  const std::size_t connections[] = {1, 4};
  std::vector<double> psql_s, read_s[2];
  std::uint64_t text_bytes = 0;
  for (int round = 0; round < kRounds; ++round) {
    for (std::size_t v : bench::round_order(3, round)) {
      if (v == 0) {
        psql_s.push_back(psql_copy(t, rows));
        continue;
      }
      const auto t0 = Steady::now();
      const Read r = read_partitions(def, parts, connections[v - 1]);
      read_s[v - 1].push_back(since(t0));
      must(r.rows == static_cast<std::uint64_t>(rows),
           fmt::format("{} connection(s) read {} of {} rows", connections[v - 1], r.rows, rows));
      text_bytes = r.bytes;
    }
  }
  const double psql = bench::median(psql_s);
  fmt::print(
      "1. snapshot as the reference snapshot copier reads it: {} ctid partitions, COPY text "
      "under one exported snapshot, lines not decoded ({:.1f} MB); median of {} rounds, order "
      "reversed every other round\n",
      parts.size(), double(text_bytes) / 1e6, kRounds);
  fmt::print("   psql \\copy to /dev/null      {:>10.0f} rows/s ({:.2f} s)  baseline\n",
             double(rows) / psql, psql);
  for (std::size_t i = 0; i < 2; ++i) {
    const double s = bench::median(read_s[i]);
    fmt::print("   {} connection(s), one thread each {:>8.0f} rows/s ({:.2f} s)  ratio {:.2f}\n",
               connections[i], double(rows) / s, s, psql / s);
  }

  // 2. text vs binary, transfer only
  const char* formats[] = {"text", "binary"};
  std::vector<double> format_s[2];
  std::uint64_t format_bytes[2] = {0, 0}, format_msgs[2] = {0, 0};
  for (int round = 0; round < kRounds; ++round) {
    for (std::size_t v : bench::round_order(2, round)) {
      const auto t0 = Steady::now();
      auto [bytes, msgs] = raw_copy(c, fmt::format("COPY {} TO STDOUT (FORMAT {})", t, formats[v]));
      format_s[v].push_back(since(t0));
      format_bytes[v] = bytes;
      format_msgs[v] = msgs;
    }
  }
  must(format_msgs[0] == static_cast<std::uint64_t>(rows),
       fmt::format("COPY text sent {} rows of {}", format_msgs[0], rows));
  fmt::print("2. COPY over one connection, transfer only (median of {} rounds, order swapped)\n",
             kRounds);
  for (std::size_t v = 0; v < 2; ++v) {
    const double s = bench::median(format_s[v]);
    fmt::print("   {:<6}: {:.1f} MB in {:.2f} s ({:.0f} rows/s, {:.0f} MB/s), {} messages\n",
               formats[v], double(format_bytes[v]) / 1e6, s, double(rows) / s,
               double(format_bytes[v]) / 1e6 / s, format_msgs[v]);
  }

  // 3. CDC: each round, two new slots see the same changes; ours decodes, pg_recvlogical drains.
  const std::string pub = "bench_pub", ours = "bench_ours", theirs = "bench_theirs";
  for (const auto& slot : {ours, theirs}) drop_slot(c, slot);
  drop_publication(c, pub);
  ensure_publication(c, pub, std::vector<TableRef>{{"public", t}});
  Connection poll = Connection::open(settings());
  std::vector<double> ours_s, theirs_s;
  for (int round = 0; round < kRounds; ++round) {
    Lsn start;
    {
      Connection repl = Connection::open(settings(), true);
      start = create_slot(repl, c, ours).info.consistent_point;
      create_slot(repl, c, theirs);
    }
    c.exec(fmt::format("UPDATE {} SET v = v || 'x' WHERE id <= {}", t, changes));
    const Lsn end = *parse_lsn(c.exec("SELECT pg_current_wal_insert_lsn()::text").value(0, 0));
    for (std::size_t v : bench::round_order(2, round)) {
      if (v == 0) ours_s.push_back(stream_until(poll, ours, pub, start, end, changes));
      if (v == 1) theirs_s.push_back(recvlogical_until(poll, theirs, pub, end));
    }
    for (const auto& slot : {ours, theirs}) drop_slot(c, slot);
  }
  drop_publication(c, pub);
  const double o = bench::median(ours_s), r = bench::median(theirs_s);
  fmt::print(
      "3. CDC of {} changes in one transaction (median of {} rounds, order swapped each round; "
      "each clock stops when pg_replication_slots shows the consumer's slot confirmed up to the "
      "WAL insert position read after the changes, polled every 5 ms)\n",
      changes, kRounds);
  fmt::print("   pg_recvlogical to /dev/null  {:>10.0f} changes/s ({:.2f} s)  baseline\n",
             double(changes) / r, r);
  fmt::print("   LogicalStream, decoded       {:>10.0f} changes/s ({:.2f} s)  ratio {:.2f}\n",
             double(changes) / o, o, r / o);
  return 0;
}
