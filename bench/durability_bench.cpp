// Durability figures, each next to a baseline from the same run:
//   1. restart: a service over 1,000 saved Running pipes, until every one streams again,
//      vs only reading and parsing the 1,000 records
//   2. the cost of a checkpoint per CDC batch: changes/s with no store, a MemoryStore and a
//      FileStore (fsync of file and directory per batch)
//   3. first vs second pipe's Provisioning on one service
// 1 and 2 run kRounds rounds with the variants' order reversed every other round; medians
// printed. The stores write under the system's temporary directory (TMPDIR).
//
//   clickpipe_bench_durability [--quick]
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <clickpipe/clickpipe.hpp>
#include <clickpipe/runtime/pipe_service.hpp>
#include <clickpipe/store/file_store.hpp>
#include <clickpipe/store/memory_store.hpp>
#include <clickpipe/testing/memory_executors.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>
#include <utility>
#include <vector>

#include "common.hpp"

using namespace std::chrono_literals;
using namespace clickpipe;
using bench::since;
using bench::Steady;
namespace fs = std::filesystem;

using bench::quiet;

namespace {

constexpr int kRounds = 3;

// Reading and parsing the records alone, as a restart must at least do. Returns seconds.
double read_records(const fs::path& dir) {
  const auto t0 = Steady::now();
  { FileStore::open(dir.string())->load_all(); }
  return since(t0);
}

// A service over the saved pipes, until every one streams again. Returns {open, streaming}
// seconds.
std::pair<double, double> restart_service(const fs::path& dir, int pipes) {
  testing::MemoryWorld w;
  // CDC that only waits, shared by all: restored pipes cost only the runtime.
  auto idle = std::make_shared<testing::IdleCdcStreamer>();
  ServiceOptions o;
  o.logger = quiet();
  o.executors = [&](const std::string& id, Mode) {
    Executors ex = w.executors(id);
    ex.cdc = idle;
    return ex;
  };
  const auto t0 = Steady::now();
  o.store = FileStore::open(dir.string());
  PipeService service(o);
  const double opened_s = since(t0);
  while (idle->starts() < pipes) std::this_thread::sleep_for(1ms);
  const double streaming_s = since(t0);
  service.shutdown();
  return {opened_s, streaming_s};
}

void restart(int pipes) {
  const fs::path dir =
      fs::temp_directory_path() / ("clickpipe-bench-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all);  // the store refuses a directory others may write
  for (int i = 0; i < pipes; ++i) {
    PipeRecord r;
    r.id = "pipe_" + std::to_string(i);
    r.tables = {TableRef{"public", "t"}};
    r.definitions = {bench::two_column_table("t")};
    r.settings.sync_interval = 1000ms;
    r.lifecycle = Lifecycle::restore(State::Running, LifecycleContext{});
    r.confirmed = Lsn{1};
    const fs::path file = dir / (r.id + ".json");
    std::ofstream(file) << encode_record(r, 1);
    fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
  }
  std::vector<double> read_s, opened_s, streaming_s;
  for (int round = 0; round < kRounds; ++round) {
    for (std::size_t v : bench::round_order(2, round)) {
      if (v == 0) read_s.push_back(read_records(dir));
      if (v == 1) {
        const auto [opened, streaming] = restart_service(dir, pipes);
        opened_s.push_back(opened);
        streaming_s.push_back(streaming);
      }
    }
  }
  fs::remove_all(dir);
  const double read = bench::median(read_s), streaming = bench::median(streaming_s);
  fmt::print(
      "1. restart with {} saved Running pipes (median of {} rounds, order swapped each round)\n",
      pipes, kRounds);
  fmt::print(
      "   service open (load, restore, start) {:.3f} s; every pipe streaming again {:.3f} s\n",
      bench::median(opened_s), streaming);
  fmt::print("   baseline: reading and parsing the records alone {:.3f} s (ratio {:.1f}x)\n\n",
             read, streaming / read);
}

double cdc_rate(const char* kind, long changes) {
  testing::MemoryWorld w;
  w.service = std::make_shared<testing::MemoryService>(0ms);
  const TableRef t{"public", "t"};
  w.source->create_table(bench::two_column_table("t"));
  PipeOptions o;
  o.logger = quiet();
  const fs::path dir =
      fs::temp_directory_path() / ("clickpipe-bench-cp-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  if (std::strcmp(kind, "memory") == 0) o.store = std::make_shared<MemoryStore>();
  if (std::strcmp(kind, "file") == 0) o.store = FileStore::open(dir.string());
  Settings s;
  s.sync_interval = 50ms;
  s.pull_batch_size = 1000;
  Pipe pipe(PipeConfig{"cp", Mode::InitialLoadAndCdc, {t}, s}, w.executors("cp"), o);
  pipe.start();
  pipe.wait_for(State::Running, 30s);
  pipe.pause();
  pipe.wait_for(State::Paused, 30s);
  for (long i = 0; i < changes; ++i) {
    w.source->insert(t, {Datum::of(std::to_string(i)), Datum::of("v")});
  }
  const Lsn head = w.source->head();
  const auto t0 = Steady::now();
  pipe.resume();
  while (!(pipe.status().cdc.confirmed >= head)) std::this_thread::sleep_for(200us);
  const double secs = since(t0);
  pipe.shutdown();
  fs::remove_all(dir);
  return double(changes) / secs;
}

void checkpoint_cost(long changes) {
  const char* kinds[] = {"none", "memory", "file"};
  std::vector<double> rates[3];
  for (int round = 0; round < kRounds; ++round) {
    for (std::size_t v : bench::round_order(3, round))
      rates[v].push_back(cdc_rate(kinds[v], changes));
  }
  const double none = bench::median(rates[0]);
  const double memory = bench::median(rates[1]);
  const double file = bench::median(rates[2]);
  fmt::print(
      "2. CDC of {} single-row transactions, a checkpoint per batch of 1,000 (median of {} "
      "rounds, order reversed every other round)\n",
      changes, kRounds);
  fmt::print("   no store {:.0f} changes/s (baseline)\n", none);
  fmt::print("   MemoryStore {:.0f} changes/s (ratio {:.2f})\n", memory, memory / none);
  fmt::print(
      "   FileStore {:.0f} changes/s (ratio {:.2f}; {:.2f} ms per checkpoint), under {}{}\n\n",
      file, file / none, 1000.0 * (1000.0 / file - 1000.0 / none),
      fs::temp_directory_path().string(), bench::tmpfs_warning(fs::temp_directory_path().string()));
}

void provisioning() {
  testing::MemoryWorld w;
  w.service = std::make_shared<testing::MemoryService>(300ms);  // bringing the service up
  w.source->create_table(bench::two_column_table("t"));
  // Provisioning ends with the `provisioned` transition, timed by a listener: waiting to see Setup
  // could miss a Setup that ends at once.
  struct Provisioned final : TransitionListener {
    std::promise<Steady::time_point> at;
    void on_transition(const TransitionEvent& e) override {
      if (e.transition.trigger == Trigger::Provisioned) at.set_value(Steady::now());
    }
  };
  auto took = [&](const std::string& id) {
    PipeOptions o;
    o.logger = quiet();
    Pipe p(PipeConfig{id, Mode::SnapshotOnly, {TableRef{"public", "t"}}, Settings{}},
           w.executors(id), o);
    auto done = std::make_shared<Provisioned>();
    std::future<Steady::time_point> at = done->at.get_future();
    p.add_listener(done);
    const auto t0 = Steady::now();
    p.start();
    if (at.wait_for(30s) != std::future_status::ready || !p.wait_for(State::Completed, 30s)) {
      fmt::print(stderr, "pipe {} did not finish: {}\n", id, to_string(p.state()));
      std::exit(1);
    }
    return std::chrono::duration<double>(at.get() - t0).count();
  };
  const double first = took("first");
  const double second = took("second");
  fmt::print("3. Provisioning on one service (simulated bring-up 300 ms)\n");
  fmt::print("   first pipe {:.1f} ms, second pipe {:.2f} ms (ratio {:.0f}x)\n\n", first * 1000,
             second * 1000, first / second);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  spdlog::set_level(spdlog::level::off);
  fmt::print("clickpipe durability benchmark{}\n\n", quick ? " (quick)" : "");
  restart(quick ? 100 : 1000);
  checkpoint_cost(quick ? 20000 : 200000);
  provisioning();
  return 0;
}
