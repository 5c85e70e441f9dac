// The whole pipe, PostgreSQL -> ClickHouse, against the standard tools on the same servers and
// data in one run (bench/e2e_bench.sh starts throwaway servers and sets CLICKPIPE_PG_* / _CH_*,
// then runs it again with CLICKPIPE_CH_URL=chdb://DIR for ClickHouse 26 embedded):
//   1. initial load of N rows: clickpipe (ctid partitions in parallel, reconciled and not) vs
//      `psql -c "\copy t TO STDOUT" | curl -T - '<clickhouse>/?query=INSERT ... FORMAT
//      TabSeparated'`, and vs ClickHouse alone ingesting the same rows from a file (the ceiling).
//      Embedded, psql's output and the file go straight into the engine's streaming insert.
//      Then the count-back alone: the query the pipe runs after each insert, over one partition.
//   2. CDC of M changes end to end (decode, ClickHouse insert, reconcile, checkpoint, confirm) vs
//      `pg_recvlogical --plugin=pgoutput` draining the same changes to /dev/null; both clocks stop
//      when the server shows the consumer's slot confirmed up to the end of the changes
//   3. replication lag p50/p99 under a steady write load
//   4. pause latency p50/p99 (max below 100 pauses) with the write load going on
//   5. first vs second pipe: time from create to the end of Setup
//   and where the machine's CPU went during 1, 2 and the whole run.
// Every pipe checkpoints into a FileStore, as in production. Comparisons run in rounds with the
// order of the variants reversed every other round, medians printed; every variant's rows are
// counted in ClickHouse afterwards and a wrong count fails the program.
//
//   clickpipe_bench_e2e [rows] [changes]
#include <fmt/format.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <clickpipe/clickhouse/insert.hpp>
#include <clickpipe/clickhouse/layout.hpp>
#include <clickpipe/pg_to_clickhouse/executors.hpp>
#include <clickpipe/postgres/catalog.hpp>
#include <clickpipe/postgres/replication.hpp>
#include <clickpipe/runtime/pipe.hpp>
#include <clickpipe/store/file_store.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "clickhouse_common.hpp"
#include "common.hpp"
#include "cpu_split.hpp"
#include "e2e_support.hpp"
#include "postgres_common.hpp"
#include "servers.hpp"

using namespace clickpipe;
using namespace std::chrono_literals;
using bench::since;
using bench::Steady;

using bench::count_back_seconds;
using bench::delete_pipe;
using bench::expect_rows;
using bench::must;
using bench::quiet;
using bench::seconds_between;
using bench::setup_seconds;
using bench::SteadyWriter;

namespace {

// Odd, so that the last round runs in listed order and ends with the pipe kept for CDC.
constexpr int kLoadRounds = 3;
static_assert(kLoadRounds % 2 == 1);
constexpr int kCdcRounds = 3;

std::string need(const char* n) { return test::server_env(n); }

pg_to_clickhouse::Config config(const std::string& id) {
  try {
    return test::config_from_environment(id);
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

// The shell tools get the password through the environment, and the settings clickpipe pins, so
// psql prints values in the same form whatever the server's defaults.
void tool_environment() {
  setenv("PGPASSWORD", need("CLICKPIPE_PG_PASSWORD").c_str(), 1);
  setenv("PGOPTIONS", std::string(postgres::pinned_options()).c_str(), 1);
}

double timed_shell(const std::string& cmd) {
  tool_environment();
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
  tool_environment();
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

std::unique_ptr<Pipe> make_pipe(const pg_to_clickhouse::Config& cfg, std::vector<TableRef> tables,
                                Settings s, std::shared_ptr<StateStore> store) {
  PipeOptions o;
  o.logger = quiet();
  o.store = std::move(store);
  auto pipe =
      std::make_unique<Pipe>(PipeConfig{cfg.pipe_id, Mode::InitialLoadAndCdc, std::move(tables), s},
                             pg_to_clickhouse::make_executors(cfg), o);
  pipe->start();
  return pipe;
}

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
  // Every pipe checkpoints into one FileStore (fsync of the record and of its directory per
  // save), as a production service does.
  std::string store_dir =
      (std::filesystem::temp_directory_path() / "clickpipe-bench-store.XXXXXX").string();
  must(::mkdtemp(store_dir.data()) != nullptr, "a directory for the file store");
  std::shared_ptr<StateStore> store = FileStore::open(store_dir);
  fmt::print(
      "PostgreSQL {} and ClickHouse {} {} on 127.0.0.1, {} hardware threads; table of {} rows "
      "(int8, text, int4, numeric(12,2), timestamp)\n",
      pg.server_version(), version.to_string(), embedded ? "embedded (chDB)" : "over HTTP",
      std::thread::hardware_concurrency(), rows);
  fmt::print("PostgreSQL settings: {}\n", bench::pg_server_settings(pg));
  fmt::print("ClickHouse session settings changed from its defaults: {}\n",
             bench::ch_session_settings(ch));
  fmt::print("pipe records: FileStore in {}{}\n\n", store_dir, bench::tmpfs_warning(store_dir));
  const bench::CpuSplit cpu;
  const char* self_name =
      embedded ? "this process (the pipe, ClickHouse embedded)" : "this process (the pipe)";
  const bench::CpuTotals cpu_start = cpu.now();

  // 1. initial load. The shell baselines write into a plain MergeTree of the same column types.
  const TableDefinition def =
      postgres::read_definitions(pg, std::vector<TableRef>{{"public", t}}).at(0);
  const auto layout = clickhouse::layout_for(def, t, version);
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
  // Entries 0 and 1 are the baselines, then the variants; the order flips every other round.
  for (int round = 0; round < kLoadRounds; ++round) {
    for (std::size_t e : bench::round_order(2 + variants.size(), round)) {
      if (e == 0) {
        plain_table("bench_pipeline");
        const std::string copy =
            fmt::format("psql {} -q -c \"\\copy {} TO STDOUT\"", psql_target(), t);
        pipeline_s.push_back(
            embedded ? timed_stream(ch, "bench_pipeline", copy, true)
                     : timed_shell(fmt::format("{} | curl -sS --fail -H @{} -X POST -T - '{}' "
                                               ">/dev/null",
                                               copy, headers, insert_url("bench_pipeline"))));
        expect_rows(ch, "the baseline pipeline", "bench_pipeline", rows, false);
        continue;
      }
      if (e == 1) {
        plain_table("bench_file");
        file_s.push_back(embedded ? timed_stream(ch, "bench_file", file, false)
                                  : timed_shell(fmt::format(
                                        "curl -sS --fail -H @{} -X POST -T {} '{}' >/dev/null",
                                        headers, file, insert_url("bench_file"))));
        expect_rows(ch, "ClickHouse from a file", "bench_file", rows, false);
        continue;
      }
      Variant& v = variants[e - 2];
      if (round > 0 && v.parallel < 4) continue;  // once is enough to show the trend
      pg_to_clickhouse::Config cfg = config(fmt::format("bench_{}", round));
      cfg.reconcile = v.reconcile;
      s.partitions_in_parallel = v.parallel;
      ch.query("DROP TABLE IF EXISTS " + t);
      auto p = make_pipe(cfg, {TableRef{"public", t}}, s, store);
      must(p->wait_for(State::Running, 600s), "initial load");
      const PipeStatus st = p->status();
      v.seconds.push_back(seconds_between(st, State::Snapshot, State::Running));
      v.partitions = st.snapshot.at(0).partitions_total;
      expect_rows(ch, v.name, t, rows);
      if (round == kLoadRounds - 1 && &v == &variants.back()) {
        pipe = std::move(p);
      } else {
        delete_pipe(p, *store);
      }
    }
  }
  must(pipe != nullptr, "the last round ended with the pipe kept for CDC");
  const double count_back_s = count_back_seconds(ch, layout, file, s.rows_per_partition);
  std::remove(file.c_str());
  if (!embedded) std::remove(headers.c_str());
  for (const char* d : {"bench_pipeline", "bench_file"}) ch.query(std::string("DROP TABLE ") + d);
  const bench::CpuTotals cpu_loaded = cpu.now();
  const double base_s = bench::median(pipeline_s);
  fmt::print(
      "1. initial load of {} rows (median of {} rounds, the order of all entries reversed every "
      "other round; 1-2 in parallel: 1 run; every run's rows counted in ClickHouse)\n",
      rows, kLoadRounds);
  fmt::print("   {:<40} {:>10.0f} rows/s {:6.2f} s  (baseline; runs {:.0f} % apart)\n",
             embedded ? "psql \\copy | embedded insert" : "psql \\copy | curl",
             double(rows) / base_s, base_s, bench::spread_percent(pipeline_s));
  const double file_med = bench::median(file_s);
  fmt::print("   {:<40} {:>10.0f} rows/s {:6.2f} s  {:.2f}x (the ceiling; runs {:.0f} % apart)\n",
             "ClickHouse alone, from a file", double(rows) / file_med, file_med, base_s / file_med,
             bench::spread_percent(file_s));
  for (const Variant& v : variants) {
    const double med = bench::median(v.seconds);
    fmt::print("   {:<40} {:>10.0f} rows/s {:6.2f} s  {:.2f}x ({} partitions{})\n", v.name,
               double(rows) / med, med, base_s / med, v.partitions,
               v.seconds.size() > 1
                   ? fmt::format("; runs {:.0f} % apart", bench::spread_percent(v.seconds))
                   : std::string());
  }
  fmt::print(
      "   count-back of one partition's {} keys alone (the query after each insert): "
      "{:.3f} s (median of 3)\n",
      s.rows_per_partition, count_back_s);
  fmt::print("   CPU: {}\n", cpu.split(cpu_start, cpu_loaded, self_name));

  // 2. CDC. Each round: the pipe pauses, a second slot is made, the changes are committed; then
  // pg_recvlogical and the pipe consume them, in an order that flips each round.
  const std::string pipe_slot = pg_to_clickhouse::slot_name(pipe->id());
  const std::string publication = pg_to_clickhouse::publication_name(pipe->id());
  postgres::Connection slots = postgres::Connection::open(base.source);
  const long per_tx = std::max(1L, changes / 10);
  std::vector<double> recv_s, cdc_s;
  for (int round = 0; round < kCdcRounds; ++round) {
    must(pipe->pause().accepted() && pipe->wait_for(State::Paused, 60s), "pause");
    {
      postgres::Connection repl = postgres::Connection::open(base.source, true);
      postgres::create_slot(repl, pg, "bench_theirs");
    }
    for (long from = 1; from <= changes; from += per_tx) {
      pg.exec(fmt::format("UPDATE {} SET n = n + 1 WHERE id BETWEEN {} AND {}", t, from,
                          std::min(changes, from + per_tx - 1)));
    }
    const Lsn end = *parse_lsn(pg.exec("SELECT pg_current_wal_insert_lsn()::text").value(0, 0));
    for (std::size_t v : bench::round_order(2, round)) {
      if (v == 0) {
        const std::string cmd =
            bench::recvlogical_command(psql_target(), "bench_theirs", publication, end);
        tool_environment();
        const auto t0 = Steady::now();
        auto exited = bench::in_background(cmd);
        recv_s.push_back(bench::seconds_until_confirmed(slots, "bench_theirs", end, t0, [&] {
          return exited.wait_for(0s) == std::future_status::ready;
        }));
        must(exited.get() == 0, "pg_recvlogical");
      } else {
        const auto t0 = Steady::now();
        must(pipe->resume().accepted(), "resume");
        cdc_s.push_back(bench::seconds_until_confirmed(
            slots, pipe_slot, end, t0, [&] { return pipe->state() == State::Failed; }));
      }
    }
    postgres::drop_slot(pg, "bench_theirs");
    const std::string sum = ch.query("SELECT sum(n) FROM " + t + " FINAL WHERE _is_deleted = 0");
    const std::string want(pg.exec("SELECT sum(n) FROM " + t).value(0, 0));
    must(sum == want + "\n", "ClickHouse FINAL matches PostgreSQL after CDC");
    expect_rows(ch, "the pipe after CDC", t, rows);
  }
  const bench::CpuTotals cpu_cdc = cpu.now();
  const double recv_med = bench::median(recv_s), cdc_med = bench::median(cdc_s);
  fmt::print(
      "\n2. CDC of {} changes ({} transactions) per round, median of {} rounds, order swapped "
      "each round. Both clocks run from the consumer's start (pg_recvlogical launched, resume()) "
      "until pg_replication_slots shows its slot confirmed up to the WAL insert position read "
      "after the changes (polled every 5 ms)\n",
      changes, (changes + per_tx - 1) / per_tx, kCdcRounds);
  fmt::print("   pg_recvlogical to /dev/null {:>10.0f} changes/s {:6.2f} s  (baseline)\n",
             double(changes) / recv_med, recv_med);
  fmt::print("   clickpipe into ClickHouse   {:>10.0f} changes/s {:6.2f} s  {:.2f}x\n",
             double(changes) / cdc_med, cdc_med, recv_med / cdc_med);
  fmt::print("   CPU: {}\n", cpu.split(cpu_loaded, cpu_cdc, self_name));
  delete_pipe(pipe, *store);

  // 3-5. a small pipe streaming a steady insert load.
  Settings ls;
  ls.sync_interval = 200ms;
  const TimePoint first_created = std::chrono::system_clock::now();
  auto lag_pipe = make_pipe(config("bench_lag"), {TableRef{"public", "bench_lag"}}, ls, store);
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
      "\n3. replication lag, {} inserts/s, sync_interval {} ms: {} (commit to visible in "
      "ClickHouse, polled every 5 ms)\n",
      kRate, ls.sync_interval.count(), bench::tail(lags, 0, "ms"));

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
      "4. pause latency with {} inserts/s going on: {} (command to Paused, in-flight batch "
      "finished and saved)\n",
      kRate, bench::tail(pauses, 1, "ms"));
  {
    // Every row written arrives: counted once the pipe has caught up.
    const long written = static_cast<long>(writer.written().size());
    const auto t0 = Steady::now();
    while (
        std::atol(ch.query("SELECT count() FROM bench_lag FINAL WHERE _is_deleted = 0").c_str()) !=
            written &&
        since(t0) < 60) {
      std::this_thread::sleep_for(100ms);
    }
    expect_rows(ch, "the lag pipe", "bench_lag", written);
  }

  const TimePoint second_created = std::chrono::system_clock::now();
  auto second = make_pipe(config("bench_second"), {TableRef{"public", "bench_second"}}, ls, store);
  must(second->wait_for(State::Running, 60s), "second pipe");
  const double second_setup = setup_seconds(second->status(), second_created);
  fmt::print("5. create to end of Setup: first pipe {:.1f} ms, second pipe {:.1f} ms\n",
             first_setup * 1000, second_setup * 1000);
  for (auto* p : {&lag_pipe, &second}) delete_pipe(*p, *store);
  fmt::print("\nCPU over the whole run: {}\n", cpu.split(cpu_start, cpu.now(), self_name));
  store.reset();
  std::filesystem::remove_all(store_dir);
  return 0;
}
