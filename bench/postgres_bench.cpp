// The PostgreSQL source against the standard tools, on the same server and data in one run:
//   1. snapshot rows/s: SnapshotReader (ctid partitions in parallel, COPY text decoded into
//      values) vs `psql -c "\copy t TO '/dev/null'"`
//   2. COPY text vs binary over one connection, bytes and rows only (no decoding): why text
//   3. CDC changes/s: LogicalStream decoding pgoutput vs `pg_recvlogical --plugin=pgoutput`
//      draining the same changes to /dev/null
// Needs CLICKPIPE_PG_* (bench/postgres_bench.sh starts a throwaway server and sets them).
//
//   clickpipe_bench_postgres [rows] [changes]
#include <fmt/format.h>
#include <libpq-fe.h>
#include <unistd.h>
#include <clickpipe/postgres/catalog.hpp>
#include <clickpipe/postgres/replication.hpp>
#include <clickpipe/postgres/snapshot.hpp>
#include <clickpipe/postgres/snapshot_reader.hpp>
#include <clickpipe/postgres/stream.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>

#include "common.hpp"

using namespace clickpipe;
using namespace clickpipe::postgres;
using bench::since;
using bench::Steady;

namespace {

ConnectionSettings settings() {
  ConnectionSettings s;
  auto need = [](const char* n) {
    const char* v = std::getenv(n);
    if (!v) {
      fmt::print(stderr, "{} is not set; run bench/postgres_bench.sh\n", n);
      std::exit(2);
    }
    return std::string(v);
  };
  s.host = need("CLICKPIPE_PG_HOST");
  s.port = need("CLICKPIPE_PG_PORT");
  s.dbname = need("CLICKPIPE_PG_DATABASE");
  s.user = need("CLICKPIPE_PG_USER");
  s.password = need("CLICKPIPE_PG_PASSWORD");
  return s;
}

// Runs a shell command with the password in the environment (never on the command line).
double timed_shell(const std::string& cmd) {
  setenv("PGPASSWORD", settings().password.c_str(), 1);
  const auto t0 = Steady::now();
  const int rc = std::system(cmd.c_str());
  const double s = since(t0);
  unsetenv("PGPASSWORD");
  if (rc != 0) fmt::print(stderr, "command failed ({}): {}\n", rc, cmd);
  return s;
}

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
  fmt::print("PostgreSQL {} on {}:{}; table of {} rows (int8, text, numeric, timestamptz)\n\n",
             c.server_version(), settings().host, settings().port, rows);

  // 1. snapshot
  const double psql_s =
      timed_shell(fmt::format("psql {} -q -c \"\\copy {} TO '/dev/null'\"", psql_target(), t));
  for (std::size_t conns : {1, 4}) {
    const auto parts = plan_partitions(c, def, 100000, 1000);
    SnapshotReader reader(settings(), conns);
    std::atomic<std::uint64_t> got{0};
    const auto t0 = Steady::now();
    reader.read(def, parts, "", [&](const Partition&, std::vector<Values>&& r) { got += r.size(); },
                {});
    const double s = since(t0);
    fmt::print(
        "1. snapshot, {} connection(s), {} partitions: {:.0f} rows/s ({:.2f} s) vs psql \\copy "
        "{:.0f} rows/s ({:.2f} s): ratio {:.2f}\n",
        conns, parts.size(), double(got) / s, s, double(rows) / psql_s, psql_s, psql_s / s);
  }

  // 2. text vs binary, transfer only
  for (const char* format : {"text", "binary"}) {
    const auto t0 = Steady::now();
    auto [bytes, msgs] = raw_copy(c, fmt::format("COPY {} TO STDOUT (FORMAT {})", t, format));
    const double s = since(t0);
    fmt::print("2. COPY {:<6}: {:.1f} MB in {:.2f} s ({:.0f} rows/s, {:.0f} MB/s), {} messages\n",
               format, double(bytes) / 1e6, s, double(rows) / s, double(bytes) / 1e6 / s, msgs);
  }

  // 3. CDC: two slots see the same changes; ours decodes, pg_recvlogical drains.
  const std::string pub = "bench_pub", ours = "bench_ours", theirs = "bench_theirs";
  for (const auto& slot : {ours, theirs}) drop_slot(c, slot);
  drop_publication(c, pub);
  ensure_publication(c, pub, std::vector<TableRef>{{"public", t}});
  Connection repl = Connection::open(settings(), true);
  const Lsn start = create_slot(repl, c, ours).info.consistent_point;
  create_slot(repl, c, theirs);
  c.exec(fmt::format("UPDATE {} SET v = v || 'x' WHERE id <= {}", t, changes));
  const Lsn end = *parse_lsn(c.exec("SELECT pg_current_wal_insert_lsn()::text").value(0, 0));

  const double recv_s = timed_shell(
      fmt::format("pg_recvlogical {} --slot={} --start --plugin=pgoutput -o proto_version=1 "
                  "-o publication_names={} --endpos={} -f /dev/null",
                  psql_target(), theirs, pub, to_string(end)));

  std::uint64_t seen = 0;
  const auto t0 = Steady::now();
  {
    LogicalStream stream(settings(), ours, pub, start);
    while (seen < static_cast<std::uint64_t>(changes) && since(t0) < 600) {
      CdcBatch b = stream.pull(100000, std::chrono::milliseconds(200), {});
      seen += b.changes.size();
      stream.confirm(b.end);
    }
  }
  const double ours_s = since(t0);
  fmt::print(
      "3. CDC of {} changes in one transaction: LogicalStream {:.0f} changes/s ({:.2f} s, {} "
      "decoded) vs pg_recvlogical {:.0f} changes/s ({:.2f} s): ratio {:.2f}\n",
      changes, double(seen) / ours_s, ours_s, seen, double(changes) / recv_s, recv_s,
      recv_s / ours_s);
  std::fflush(stdout);
  for (const auto& slot : {ours, theirs}) drop_slot(c, slot);
  drop_publication(c, pub);
  return 0;
}
