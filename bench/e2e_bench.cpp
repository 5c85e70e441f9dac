// The whole pipe, PostgreSQL -> ClickHouse, against the standard tools on the same servers and
// data in one run (bench/e2e_bench.sh starts throwaway servers and sets CLICKPIPE_PG_* / _CH_*,
// then runs it again with CLICKPIPE_CH_URL=chdb://DIR for ClickHouse 26 embedded):
//   1. initial load of N rows: clickpipe (ctid partitions in parallel, reconciled and not) vs
//      `psql -c "\copy t TO STDOUT" | curl -T - '<clickhouse>/?query=INSERT ... FORMAT
//      TabSeparated'`, and vs ClickHouse alone ingesting the same rows from a file (the ceiling).
//      Embedded, psql's output and the file go straight into the engine's streaming insert.
//   2. CDC of M changes end to end (decode, ClickHouse insert, reconcile, checkpoint, confirm) vs
//      `pg_recvlogical --plugin=pgoutput` draining the same changes to /dev/null
//   3. replication lag p50/p99 under a steady write load
//   4. pause latency p50/p99 with the write load going on
//   5. first vs second pipe: time from create to the end of Setup
//
//   clickpipe_bench_e2e [rows] [changes]
#include <fmt/format.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <clickpipe/clickhouse/schema.hpp>
#include <clickpipe/pg_to_clickhouse/executors.hpp>
#include <clickpipe/postgres/catalog.hpp>
#include <clickpipe/postgres/replication.hpp>
#include <clickpipe/store/memory_store.hpp>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"

using namespace clickpipe;
using namespace std::chrono_literals;
using bench::since;
using bench::Steady;

using bench::quiet;

namespace {

std::string need(const char* n) { return bench::need(n, "bench/e2e_bench.sh"); }

pg_to_clickhouse::Config config(const std::string& id) {
  try {
    return pg_to_clickhouse::config_from_environment(id);
  } catch (const InvalidField& e) {
    fmt::print(stderr, "{}; run bench/e2e_bench.sh\n", e.what());
    std::exit(2);
  }
}

// Passwords reach the shell tools through the environment and a 0600 header file, never argv.
std::string curl_headers_file() {
  const std::string path = "/tmp/clickpipe-bench-headers";
  ::umask(077);
  std::ofstream(path, std::ios::trunc)
      << "X-ClickHouse-User: " << need("CLICKPIPE_CH_USER")
      << "\nX-ClickHouse-Key: " << need("CLICKPIPE_CH_PASSWORD") << "\n";
  return path;
}

void must(bool ok, const char* what) {
  if (!ok) {
    fmt::print(stderr, "failed: {}\n", what);
    std::exit(1);
  }
}

double timed_shell(const std::string& cmd) {
  setenv("PGPASSWORD", need("CLICKPIPE_PG_PASSWORD").c_str(), 1);
  // psql prints in the settings clickpipe pins too, whatever the server's defaults.
  setenv("PGOPTIONS", std::string(postgres::pinned_options()).c_str(), 1);
  const auto t0 = Steady::now();
  std::string quoted;  // the command in single quotes for bash -c
  for (char c : cmd) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  const int rc = std::system(("bash -o pipefail -c '" + quoted + "'").c_str());
  const double s = since(t0);
  if (rc != 0) {
    fmt::print(stderr, "command failed ({}): {}\n", rc, cmd);
    std::exit(1);
  }
  return s;
}

std::string psql_target() {
  return fmt::format("-h {} -p {} -U {} -d {}", need("CLICKPIPE_PG_HOST"),
                     need("CLICKPIPE_PG_PORT"), need("CLICKPIPE_PG_USER"),
                     need("CLICKPIPE_PG_DATABASE"));
}

// Embedded: what a command prints, or a file, streamed into one insert of `table`.
double timed_stream(clickhouse::Client& ch, const std::string& table, const std::string& from,
                    bool command) {
  setenv("PGPASSWORD", need("CLICKPIPE_PG_PASSWORD").c_str(), 1);
  setenv("PGOPTIONS", std::string(postgres::pinned_options()).c_str(), 1);
  const auto t0 = Steady::now();
  FILE* in = command ? ::popen(from.c_str(), "r") : std::fopen(from.c_str(), "r");
  must(in != nullptr, "open the baseline's input");
  ch.insert_streamed("INSERT INTO " + table, [&](std::string& piece) {
    piece.resize(1 << 20);
    const std::size_t n = std::fread(piece.data(), 1, piece.size(), in);
    piece.resize(n);
    return n > 0;
  });
  must((command ? ::pclose(in) : std::fclose(in)) == 0, "the baseline's input");
  return since(t0);
}

std::string insert_url(const std::string& table) {
  return fmt::format("http://{}:{}/?query=INSERT%20INTO%20{}%20FORMAT%20TabSeparated",
                     need("CLICKPIPE_CH_HOST"), need("CLICKPIPE_CH_PORT"), table);
}

double seconds_between(const PipeStatus& st, State from, State to) {
  TimePoint a{}, b{};
  for (const auto& h : st.history) {
    if (h.to == from && a == TimePoint{}) a = h.at;
    if (h.to == to && a != TimePoint{} && b == TimePoint{}) b = h.at;
  }
  return std::chrono::duration<double>(b - a).count();
}

// From creating the pipe to the end of Setup (Provisioning and Setup both done).
double setup_seconds(const PipeStatus& st, TimePoint created) {
  for (const auto& h : st.history) {
    if (h.from == State::Setup) return std::chrono::duration<double>(h.at - created).count();
  }
  return 0;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

std::unique_ptr<Pipe> make_pipe(const pg_to_clickhouse::Config& cfg, std::vector<TableRef> tables,
                                Settings s) {
  PipeOptions o;
  o.logger = quiet();
  o.store = std::make_shared<MemoryStore>();
  auto pipe =
      std::make_unique<Pipe>(PipeConfig{cfg.pipe_id, Mode::InitialLoadAndCdc, std::move(tables), s},
                             pg_to_clickhouse::make_executors(cfg), o);
  pipe->start();
  return pipe;
}

// Inserts rows into `table` at about `per_second`, remembering when each id committed.
class SteadyWriter {
 public:
  SteadyWriter(const postgres::ConnectionSettings& s, std::string table, int per_second)
      : table_(std::move(table)), per_second_(per_second), thread_([this, s] { loop(s); }) {}
  ~SteadyWriter() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // (id, commit time) of everything written so far.
  std::vector<std::pair<long, Steady::time_point>> written() {
    std::lock_guard lk(mu_);
    return written_;
  }

 private:
  void loop(const postgres::ConnectionSettings& s) {
    postgres::Connection pg = postgres::Connection::open(s);
    long id = 1;
    const auto period = std::chrono::microseconds(1'000'000 / per_second_);
    auto next = Steady::now();
    while (!stop_) {
      pg.exec("INSERT INTO " + table_ + " VALUES ($1, 'lag')", {std::to_string(id)});
      {
        std::lock_guard lk(mu_);
        written_.emplace_back(id, Steady::now());
      }
      ++id;
      next += period;
      std::this_thread::sleep_until(next);
    }
  }
  std::string table_;
  int per_second_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::pair<long, Steady::time_point>> written_;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  spdlog::set_level(spdlog::level::off);
  const long rows = argc > 1 ? std::atol(argv[1]) : 2000000;
  const long changes = argc > 2 ? std::atol(argv[2]) : 1000000;
  pg_to_clickhouse::Config base = config("bench");
  postgres::Connection pg = postgres::Connection::open(base.source);
  pg.exec("SET client_min_messages = warning");
  clickhouse::Client ch(base.destination);
  const std::string t = "bench_load";
  for (const auto& slot :
       {"clickpipe_bench_0", "clickpipe_bench_1", "clickpipe_bench_2", "bench_theirs"})
    postgres::drop_slot(pg, slot);
  pg.exec("DROP TABLE IF EXISTS " + t + ", bench_lag, bench_second");
  pg.exec("CREATE TABLE " + t +
          " (id int8 PRIMARY KEY, v text, n int4, amount numeric(12,2), at timestamp)");
  pg.exec(
      fmt::format("INSERT INTO {} SELECT g, md5(g::text), g % 1000, g / 7.0, "
                  "'2026-01-01'::timestamp + g * interval '1.5 s' FROM generate_series(1, {}) g",
                  t, rows));
  pg.exec("VACUUM ANALYZE " + t);
  pg.exec("CREATE TABLE bench_lag (id int8 PRIMARY KEY, v text)");
  pg.exec("CREATE TABLE bench_second (id int8 PRIMARY KEY, v text)");
  for (const char* d : {"bench_load", "bench_pipeline", "bench_file", "bench_lag", "bench_second"})
    ch.query(std::string("DROP TABLE IF EXISTS ") + d);
  const auto version = ch.version();
  const bool embedded = base.destination.url.rfind("chdb://", 0) == 0;
  fmt::print(
      "PostgreSQL {} and ClickHouse {} {} on 127.0.0.1, {} hardware threads; table of {} rows "
      "(int8, text, int4, numeric(12,2), timestamp)\n\n",
      pg.server_version(), version.to_string(), embedded ? "embedded (chDB)" : "over HTTP",
      std::thread::hardware_concurrency(), rows);

  // 1. initial load. The shell baselines write into a plain MergeTree of the same column types.
  const TableDefinition def =
      postgres::read_definitions(pg, std::vector<TableRef>{{"public", t}}).at(0);
  const auto layout = clickhouse::layout_for(def, t, version);
  // Runs alternate, three rounds, medians reported: the machine's background work (merges,
  // checkpoints) shifts single runs by 30 % here.
  auto plain_table = [&](const char* d) {
    ch.query(std::string("DROP TABLE IF EXISTS ") + d);
    std::string sql = fmt::format("CREATE TABLE {} (", d);
    for (const auto& c : layout.columns) sql += clickhouse::quote(c.name) + " " + c.type + ", ";
    sql.resize(sql.size() - 2);
    ch.query(sql + ") ENGINE = MergeTree ORDER BY id");
  };
  const std::string headers = embedded ? "" : curl_headers_file();
  const std::string file = "/tmp/clickpipe-bench-rows.tsv";
  timed_shell(fmt::format("psql {} -q -c \"\\copy {} TO '{}'\"", psql_target(), t, file));
  struct Variant {
    const char* name;
    std::size_t parallel;
    bool reconcile;
    std::vector<double> seconds;
    std::uint32_t partitions = 0;
  };
  // The last one's pipe is kept for CDC.
  std::vector<Variant> variants = {{"clickpipe, 1 at a time", 1, true, {}},
                                   {"clickpipe, 2 in parallel", 2, true, {}},
                                   {"clickpipe, 4 in parallel, no reconcile", 4, false, {}},
                                   {"clickpipe, 4 in parallel", 4, true, {}}};
  std::vector<double> pipeline_s, file_s;
  Settings s;
  s.rows_per_partition = 500000;
  s.sync_interval = 1000ms;
  std::unique_ptr<Pipe> pipe;  // the last 4-way reconciled load, kept for CDC
  for (int round = 0; round < 3; ++round) {
    plain_table("bench_pipeline");
    const std::string copy = fmt::format("psql {} -q -c \"\\copy {} TO STDOUT\"", psql_target(), t);
    pipeline_s.push_back(embedded ? timed_stream(ch, "bench_pipeline", copy, true)
                                  : timed_shell(fmt::format(
                                        "{} | curl -sS --fail -H @{} -X POST -T - '{}' >/dev/null",
                                        copy, headers, insert_url("bench_pipeline"))));
    plain_table("bench_file");
    file_s.push_back(
        embedded ? timed_stream(ch, "bench_file", file, false)
                 : timed_shell(fmt::format("curl -sS --fail -H @{} -X POST -T {} '{}' >/dev/null",
                                           headers, file, insert_url("bench_file"))));
    for (Variant& v : variants) {
      if (round > 0 && v.parallel < 4) continue;  // once is enough to show the trend
      pg_to_clickhouse::Config cfg = config(fmt::format("bench_{}", round));
      cfg.reconcile = v.reconcile;
      s.partitions_in_parallel = v.parallel;
      if (pipe) must(pipe->remove().accepted() && pipe->wait_for(State::Terminated, 60s), "delete");
      pipe.reset();
      ch.query("DROP TABLE IF EXISTS " + t);
      auto p = make_pipe(cfg, {TableRef{"public", t}}, s);
      must(p->wait_for(State::Running, 600s), "initial load");
      const PipeStatus st = p->status();
      v.seconds.push_back(seconds_between(st, State::Snapshot, State::Running));
      v.partitions = st.snapshot.at(0).partitions_total;
      if (v.parallel == 4 && v.reconcile) {
        pipe = std::move(p);
      } else {
        must(p->remove().accepted() && p->wait_for(State::Terminated, 60s), "delete");
      }
    }
  }
  std::remove(file.c_str());
  if (!embedded) std::remove(headers.c_str());
  for (const char* d : {"bench_pipeline", "bench_file"}) ch.query(std::string("DROP TABLE ") + d);
  const double base_s = percentile(pipeline_s, 0.5);
  fmt::print("1. initial load of {} rows (median of 3 alternating runs; 1-2 in parallel: 1 run)\n",
             rows);
  fmt::print("   {:<40} {:>10.0f} rows/s {:6.2f} s  (baseline)\n",
             embedded ? "psql \\copy | embedded insert" : "psql \\copy | curl",
             double(rows) / base_s, base_s);
  const double file_med = percentile(file_s, 0.5);
  fmt::print("   {:<40} {:>10.0f} rows/s {:6.2f} s  {:.2f}x (the ceiling)\n",
             "ClickHouse alone, from a file", double(rows) / file_med, file_med, base_s / file_med);
  for (const Variant& v : variants) {
    const double med = percentile(v.seconds, 0.5);
    fmt::print("   {:<40} {:>10.0f} rows/s {:6.2f} s  {:.2f}x ({} partitions)\n", v.name,
               double(rows) / med, med, base_s / med, v.partitions);
  }

  // 2. CDC: the pipe is paused while the changes are made; a second slot sees the same changes.
  must(pipe->pause().accepted() && pipe->wait_for(State::Paused, 60s), "pause");
  {
    postgres::Connection repl = postgres::Connection::open(base.source, true);
    postgres::create_slot(repl, pg, "bench_theirs");
  }
  const long per_tx = std::max(1L, changes / 10);
  for (long from = 1; from <= changes; from += per_tx) {
    pg.exec(fmt::format("UPDATE {} SET n = n + 1 WHERE id BETWEEN {} AND {}", t, from,
                        std::min(changes, from + per_tx - 1)));
  }
  const Lsn end = *parse_lsn(pg.exec("SELECT pg_current_wal_insert_lsn()::text").value(0, 0));
  const double recv_s = timed_shell(
      fmt::format("pg_recvlogical {} --slot=bench_theirs --start --plugin=pgoutput "
                  "-o proto_version=1 -o publication_names=clickpipe_bench_2 --endpos={} "
                  "-f /dev/null",
                  psql_target(), to_string(end)));
  postgres::drop_slot(pg, "bench_theirs");
  const auto c0 = Steady::now();
  must(pipe->resume().accepted(), "resume");
  while (pipe->status().cdc.confirmed < end && since(c0) < 600) std::this_thread::sleep_for(2ms);
  const double cdc_s = since(c0);
  fmt::print("\n2. CDC of {} changes ({} transactions)\n", changes,
             (changes + per_tx - 1) / per_tx);
  fmt::print("   pg_recvlogical to /dev/null {:>10.0f} changes/s {:6.2f} s  (baseline)\n",
             double(changes) / recv_s, recv_s);
  fmt::print("   clickpipe into ClickHouse   {:>10.0f} changes/s {:6.2f} s  {:.2f}x\n",
             double(changes) / cdc_s, cdc_s, recv_s / cdc_s);
  {
    const std::string sum = ch.query("SELECT sum(n) FROM " + t + " FINAL WHERE _is_deleted = 0");
    const std::string want(pg.exec("SELECT sum(n) FROM " + t).value(0, 0));
    must(sum == want + "\n", "ClickHouse FINAL matches PostgreSQL after CDC");
  }
  must(pipe->remove().accepted() && pipe->wait_for(State::Terminated, 60s), "delete");

  // 3-5. a small pipe streaming a steady insert load.
  Settings ls;
  ls.sync_interval = 200ms;
  const TimePoint first_created = std::chrono::system_clock::now();
  auto lag_pipe = make_pipe(config("bench_lag"), {TableRef{"public", "bench_lag"}}, ls);
  must(lag_pipe->wait_for(State::Running, 60s), "lag pipe");
  const double first_setup = setup_seconds(lag_pipe->status(), first_created);
  constexpr int kRate = 1000;
  SteadyWriter writer(base.source, "bench_lag", kRate);
  std::vector<double> lags;
  {
    // Poll ClickHouse for the newest id and note when each written id first shows.
    clickhouse::Client poll(base.destination);
    std::size_t seen = 0;
    const auto t0 = Steady::now();
    while (since(t0) < 15) {
      const long max_id = std::atol(poll.query("SELECT max(id) FROM bench_lag").c_str());
      const auto now = Steady::now();
      const auto w = writer.written();
      while (seen < w.size() && w[seen].first <= max_id) {
        if (since(t0) > 2) {  // after the first batches
          lags.push_back(std::chrono::duration<double, std::milli>(now - w[seen].second).count());
        }
        ++seen;
      }
      std::this_thread::sleep_for(5ms);
    }
  }
  fmt::print(
      "\n3. replication lag, {} inserts/s, sync_interval {} ms: p50 {:.0f} ms, p99 {:.0f} "
      "ms ({} rows; commit to visible in ClickHouse, polled every 5 ms)\n",
      kRate, ls.sync_interval.count(), percentile(lags, 0.5), percentile(lags, 0.99), lags.size());

  std::vector<double> pauses;
  for (int i = 0; i < 20; ++i) {
    const auto t0 = Steady::now();
    must(lag_pipe->pause().accepted() && lag_pipe->wait_for(State::Paused, 60s), "pause");
    pauses.push_back(since(t0) * 1000);
    must(lag_pipe->resume().accepted() && lag_pipe->wait_for(State::Running, 60s), "resume");
    std::this_thread::sleep_for(100ms);
  }
  writer.stop();
  fmt::print(
      "4. pause latency with {} inserts/s going on: p50 {:.1f} ms, p99 {:.1f} ms (20 "
      "pauses; command to Paused, in-flight batch finished and saved)\n",
      kRate, percentile(pauses, 0.5), percentile(pauses, 0.99));

  const TimePoint second_created = std::chrono::system_clock::now();
  auto second = make_pipe(config("bench_second"), {TableRef{"public", "bench_second"}}, ls);
  must(second->wait_for(State::Running, 60s), "second pipe");
  const double second_setup = setup_seconds(second->status(), second_created);
  fmt::print("5. create to end of Setup: first pipe {:.1f} ms, second pipe {:.1f} ms\n",
             first_setup * 1000, second_setup * 1000);
  for (Pipe* p : {lag_pipe.get(), second.get()}) {
    must(p->remove().accepted() && p->wait_for(State::Terminated, 60s), "delete");
  }
  return 0;
}
