// Runtime figures, each next to a baseline measured in the same run:
//   1. pause latency (pause() -> Paused) while CDC streams at full speed: p50 / p99 (max below
//      100 pauses)
//   2. rows/s of an initial load through a pipe vs a bare loop copying the same rows
//   3. changes/s of CDC through a pipe vs a bare loop reading and applying the same changes
//   4. memory and threads per idle pipe, with 10,000 pipes
// 2 and 3 run kRounds rounds, pipe and bare loop swapping places each round; medians printed.
// Every copy is counted at the destination and the program fails when a count is wrong.
//
//   clickpipe_bench_runtime [--quick]
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <clickpipe/clickpipe.hpp>
#include <clickpipe/testing/memory_executors.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"

using namespace std::chrono_literals;
using namespace clickpipe;
using Steady = std::chrono::steady_clock;

using bench::must;
using bench::quiet;

namespace {

constexpr int kRounds = 3;

Values row(long id) {
  return {Datum::of(std::to_string(id)), Datum::of("value-" + std::to_string(id))};
}

void fill(testing::MemorySource& src, const TableRef& t, long from, long to) {
  std::vector<Values> batch;
  for (long i = from; i < to; ++i) {
    batch.push_back(row(i));
    if (batch.size() == 10000) src.insert_many(t, std::exchange(batch, {}));
  }
  if (!batch.empty()) src.insert_many(t, std::move(batch));
}

double seconds_since(Steady::time_point t) {
  return std::chrono::duration<double>(Steady::now() - t).count();
}

Settings bench_settings() {
  Settings s;
  s.sync_interval = 50ms;
  s.pull_batch_size = 10000;
  s.rows_per_partition = 50000;
  s.partitions_in_parallel = 2;
  s.tables_in_parallel = 1;
  return s;
}

std::unique_ptr<Pipe> make_pipe(const testing::MemoryWorld& w, const std::string& id, Mode mode,
                                std::vector<TableRef> tables, Settings s = bench_settings()) {
  PipeOptions o;
  o.logger = quiet();
  return std::make_unique<Pipe>(PipeConfig{id, mode, std::move(tables), s}, w.executors(id), o);
}

void pause_latency(int rounds) {
  testing::MemoryWorld w;
  const TableRef t{"public", "t"};
  w.source->create_table(bench::two_column_table("t"));
  auto pipe = make_pipe(w, "pause", Mode::InitialLoadAndCdc, {t});
  pipe->start();
  pipe->wait_for(State::Running, 30s);
  std::atomic<bool> go{true};
  std::atomic<long> written{0};
  std::thread writer([&] {
    for (long i = 0; go; ++i) {
      w.source->insert(t, row(i));
      ++written;
    }
  });
  std::vector<double> ms;
  for (int i = 0; i < rounds; ++i) {
    std::this_thread::sleep_for(5ms);
    const auto t0 = Steady::now();
    pipe->pause();
    pipe->wait_for(State::Paused, 30s);
    ms.push_back(seconds_since(t0) * 1000);
    pipe->resume();
    pipe->wait_for(State::Running, 30s);
  }
  go = false;
  writer.join();
  fmt::print("1. pause latency while streaming ({} rounds, {} changes written meanwhile)\n", rounds,
             written.load());
  fmt::print("   {}\n", bench::tail(ms, 3, "ms"));
  fmt::print("   baseline: the sync interval a pull may wait is {} ms\n\n",
             bench_settings().sync_interval.count());
}

// The baseline: the same rows copied by hand (a consistent copy, then chunks) into an equal
// table. Returns seconds.
double bare_load(long rows) {
  testing::MemoryWorld w;
  const TableRef t{"public", "t"};
  w.source->create_table(bench::two_column_table("t"));
  fill(*w.source, t, 0, rows);
  testing::MemoryDestination bare;
  bare.create_table("bare", bench::two_column_table("t"));
  const auto t0 = Steady::now();
  const auto snap = w.source->snapshot({t});
  std::vector<std::pair<testing::Key, testing::VersionedRow>> chunk;
  for (const auto& [k, v] : snap->rows.at(t)) {
    chunk.emplace_back(k, testing::VersionedRow{v, 0, false});
    if (chunk.size() == testing::MemorySnapshotCopier::kChunkRows)
      bare.insert("bare", std::exchange(chunk, {}));
  }
  if (!chunk.empty()) bare.insert("bare", std::move(chunk));
  const double s = seconds_since(t0);
  const auto landed = bare.final_rows("bare").size();
  must(landed == static_cast<std::size_t>(rows),
       fmt::format("bare load: {} of {} rows landed", landed, rows));
  return s;
}

double pipe_load(long rows) {
  testing::MemoryWorld w;
  const TableRef t{"public", "t"};
  w.source->create_table(bench::two_column_table("t"));
  fill(*w.source, t, 0, rows);
  w.service = std::make_shared<testing::MemoryService>(0ms);  // no simulated bring-up here
  auto pipe = make_pipe(w, "load", Mode::SnapshotOnly, {t});
  const auto t0 = Steady::now();
  pipe->start();
  must(pipe->wait_for(State::Completed, 300s), "the pipe's load did not complete");
  const double s = seconds_since(t0);
  const auto landed = w.destination->final_rows(testing::destination_name(t)).size();
  must(landed == static_cast<std::size_t>(rows),
       fmt::format("pipe load: {} of {} rows landed", landed, rows));
  return s;
}

void load_throughput(long rows) {
  std::vector<double> pipe_s, bare_s;
  for (int round = 0; round < kRounds; ++round) {
    for (std::size_t v : bench::round_order(2, round)) {
      if (v == 0) pipe_s.push_back(pipe_load(rows));
      if (v == 1) bare_s.push_back(bare_load(rows));
    }
  }
  const double p = bench::median(pipe_s), b = bench::median(bare_s);
  fmt::print(
      "2. initial load of {} rows (in-memory executors, 2 partitions in parallel; median of {} "
      "rounds, order swapped each round; every row counted at the destination)\n",
      rows, kRounds);
  fmt::print("   pipe {:.0f} rows/s ({:.3f} s)   bare loop {:.0f} rows/s ({:.3f} s)\n",
             double(rows) / p, p, double(rows) / b, b);
  fmt::print("   ratio pipe/bare: {:.2f} (above 1 comes from the parallel partitions)\n\n", b / p);
}

// The baseline: read and apply with the same source and destination functions, no runtime.
double bare_cdc(long changes) {
  const TableRef t{"public", "t"};
  testing::MemoryWorld w;
  w.source->create_table(bench::two_column_table("t"));
  w.destination->create_table(testing::destination_name(t), bench::two_column_table("t"));
  w.source->create_slot("bare");
  for (long i = 0; i < changes; ++i) w.source->insert(t, row(i));
  const auto t0 = Steady::now();
  Lsn at{0};
  const Lsn head = w.source->head();
  while (at < head) {
    CdcBatch b = w.source->read_changes(at, {t}, 10000, 0ms, {});
    std::vector<std::pair<testing::Key, testing::VersionedRow>> rows;
    for (const Change& c : b.changes) {
      rows.emplace_back(testing::key_of(bench::two_column_table("t"), c.values),
                        testing::VersionedRow{c.values, c.version(), false});
    }
    w.destination->insert(testing::destination_name(t), std::move(rows));
    w.source->confirm("bare", b.end);
    at = b.end;
  }
  const double s = seconds_since(t0);
  const auto landed = w.destination->final_rows(testing::destination_name(t)).size();
  must(landed == static_cast<std::size_t>(changes),
       fmt::format("bare CDC: {} of {} rows landed", landed, changes));
  return s;
}

double pipe_cdc(long changes) {
  const TableRef t{"public", "t"};
  testing::MemoryWorld w;
  w.service = std::make_shared<testing::MemoryService>(0ms);
  w.source->create_table(bench::two_column_table("t"));
  auto pipe = make_pipe(w, "cdc", Mode::InitialLoadAndCdc, {t});
  pipe->start();
  must(pipe->wait_for(State::Running, 30s), "the pipe did not reach Running");
  pipe->pause();
  must(pipe->wait_for(State::Paused, 30s), "the pipe did not pause");
  for (long i = 0; i < changes; ++i) w.source->insert(t, row(i));
  const Lsn head = w.source->head();
  const auto t0 = Steady::now();
  pipe->resume();
  while (!(pipe->status().cdc.confirmed >= head)) std::this_thread::sleep_for(200us);
  const double s = seconds_since(t0);
  const auto landed = w.destination->final_rows(testing::destination_name(t)).size();
  must(landed == static_cast<std::size_t>(changes),
       fmt::format("pipe CDC: {} of {} rows landed", landed, changes));
  return s;
}

void cdc_throughput(long changes) {
  std::vector<double> pipe_s, bare_s;
  for (int round = 0; round < kRounds; ++round) {
    for (std::size_t v : bench::round_order(2, round)) {
      if (v == 0) pipe_s.push_back(pipe_cdc(changes));
      if (v == 1) bare_s.push_back(bare_cdc(changes));
    }
  }
  const double p = bench::median(pipe_s), b = bench::median(bare_s);
  fmt::print(
      "3. CDC of {} single-row transactions (batches of 10,000; median of {} rounds, order "
      "swapped each round; both stop at the source's head confirmed)\n",
      changes, kRounds);
  fmt::print("   pipe {:.0f} changes/s ({:.3f} s)   bare loop {:.0f} changes/s ({:.3f} s)\n",
             double(changes) / p, p, double(changes) / b, b);
  fmt::print("   ratio pipe/bare: {:.2f}\n\n", b / p);
}

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

// Executors that do nothing at all, shared by every pipe: the pipes' own cost is what is left.
struct Nothing final : Provisioner, TableSetup, SnapshotCopier, testing::IdleCdcStreamer {
  void provision(const PipeInfo&, ExecContext&) override {}
  std::vector<TableDefinition> read_definitions(std::span<const TableRef> t,
                                                ExecContext&) override {
    std::vector<TableDefinition> out;
    for (const auto& r : t) {
      out.emplace_back();
      out.back().table = r;
      out.back().primary_key = {"id"};
    }
    return out;
  }
  void create_tables(std::span<const TableDefinition>, TableTarget, ExecContext&) override {}
  void swap_resync_tables(std::span<const TableDefinition>, ExecContext&) override {}
  void remove_tables(std::span<const TableRef>, ExecContext&) override {}
  void teardown(ExecContext&) override {}
  std::optional<SlotInfo> begin(std::span<const TableDefinition>, bool, ExecContext&) override {
    return SlotInfo{"s", Lsn{1}};
  }
  std::vector<Partition> plan_partitions(const TableDefinition&, ExecContext&) override {
    return {Partition{0, "", "", 0}};
  }
  std::uint64_t copy_partition(const TableDefinition&, const Partition&, TableTarget,
                               ExecContext&) override {
    return 0;
  }
};

void idle_memory(int count) {
  auto nothing = std::make_shared<Nothing>();
  const Executors ex{nothing, nothing, nothing, nothing};
  std::vector<std::unique_ptr<Pipe>> pipes;
  pipes.reserve(static_cast<std::size_t>(count));
  const long before = rss_kib();
  const long threads_before = bench::threads_now();
  const auto t0 = Steady::now();
  const int wave = 100;
  for (int i = 0; i < count; i += wave) {
    const std::size_t first = pipes.size();
    for (int j = i; j < std::min(count, i + wave); ++j) {
      PipeOptions o;
      o.logger = quiet();
      pipes.push_back(std::make_unique<Pipe>(PipeConfig{fmt::format("p{}", j),
                                                        Mode::InitialLoadAndCdc,
                                                        {TableRef{"public", "t"}},
                                                        bench_settings()},
                                             ex, o));
      pipes.back()->start();
    }
    for (std::size_t k = first; k < pipes.size(); ++k) {
      pipes[k]->wait_for(State::Running, 30s);
      pipes[k]->pause();
    }
    for (std::size_t k = first; k < pipes.size(); ++k) pipes[k]->wait_for(State::Paused, 30s);
  }
  const double took = seconds_since(t0);
  // A worker ends right after its pipe reaches Paused: give the last ones a moment to exit.
  long threads_after = bench::threads_now();
  for (const auto until = Steady::now() + 5s;
       threads_after > threads_before && Steady::now() < until;
       threads_after = bench::threads_now()) {
    std::this_thread::sleep_for(10ms);
  }
  const long after = rss_kib();
  fmt::print(
      "4. {} idle (Paused) pipes, each driven there through the whole lifecycle in {:.1f} s\n",
      count, took);
  fmt::print("   RSS {} KiB before, {} KiB after: {:.1f} KiB per idle pipe\n", before, after,
             double(after - before) / count);
  fmt::print(
      "   threads of this process (/proc/self/task): {} before, {} with the pipes idle: {:+} for "
      "{} pipes\n\n",
      threads_before, threads_after, threads_after - threads_before, count);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  spdlog::set_level(spdlog::level::off);
  fmt::print("clickpipe runtime benchmark{}\n\n", quick ? " (quick)" : "");
  pause_latency(quick ? 20 : 200);
  load_throughput(quick ? 100000 : 1000000);
  cdc_throughput(quick ? 50000 : 500000);
  idle_memory(quick ? 1000 : 10000);
  return 0;
}
