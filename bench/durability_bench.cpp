// Durability figures, each next to a baseline from the same run:
//   1. restart: a service over 1,000 saved Running pipes, until every one streams again,
//      vs only reading and parsing the 1,000 records
//   2. the cost of a checkpoint per CDC batch: changes/s with no store, a MemoryStore and a
//      FileStore (fsync of file and directory per batch)
//   3. first vs second pipe's Provisioning on one service
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
#include <thread>

#include "common.hpp"

using namespace std::chrono_literals;
using namespace clickpipe;
using bench::since;
using bench::Steady;
namespace fs = std::filesystem;

using bench::quiet;

namespace {

void restart(int pipes) {
  const fs::path dir =
      fs::temp_directory_path() / ("clickpipe-bench-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (int i = 0; i < pipes; ++i) {
    PipeRecord r;
    r.id = "pipe-" + std::to_string(i);
    r.tables = {TableRef{"public", "t"}};
    r.definitions = {bench::two_column_table("t")};
    r.settings.sync_interval = 1000ms;
    r.lifecycle = Lifecycle::restore(State::Running, Context{});
    r.confirmed = Lsn{1};
    std::ofstream(dir / (r.id + ".json")) << encode_record(r, 1);
  }
  auto t0 = Steady::now();
  { FileStore::open(dir.string())->load_all(); }
  const double read_s = since(t0);

  testing::MemoryWorld w;
  // CDC that only waits, shared by all: restored pipes cost only the runtime.
  auto idle = std::make_shared<testing::IdleCdcStreamer>();
  PipeService::Options o;
  o.logger = quiet();
  o.executors = [&](const std::string& id, Mode) {
    Executors ex = w.executors(id);
    ex.cdc = idle;
    return ex;
  };
  t0 = Steady::now();
  o.store = FileStore::open(dir.string());
  PipeService service(o);
  const double opened_s = since(t0);
  while (idle->starts() < pipes) std::this_thread::sleep_for(1ms);
  const double streaming_s = since(t0);
  service.shutdown();
  fs::remove_all(dir);
  fmt::print("1. restart with {} saved Running pipes\n", pipes);
  fmt::print(
      "   service open (load, restore, start) {:.3f} s; every pipe streaming again {:.3f} s\n",
      opened_s, streaming_s);
  fmt::print("   baseline: reading and parsing the records alone {:.3f} s (ratio {:.1f}x)\n\n",
             read_s, streaming_s / read_s);
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
  const double none = cdc_rate("none", changes);
  const double memory = cdc_rate("memory", changes);
  const double file = cdc_rate("file", changes);
  fmt::print("2. CDC of {} single-row transactions, a checkpoint per batch of 1,000\n", changes);
  fmt::print("   no store {:.0f} changes/s (baseline)\n", none);
  fmt::print("   MemoryStore {:.0f} changes/s (ratio {:.2f})\n", memory, memory / none);
  fmt::print("   FileStore {:.0f} changes/s (ratio {:.2f}; {:.2f} ms per checkpoint)\n\n", file,
             file / none, 1000.0 * (1000.0 / file - 1000.0 / none));
}

void provisioning() {
  testing::MemoryWorld w;
  w.service = std::make_shared<testing::MemoryService>(300ms);  // bringing the service up
  w.source->create_table(bench::two_column_table("t"));
  auto took = [&](const std::string& id) {
    PipeOptions o;
    o.logger = quiet();
    Pipe p(PipeConfig{id, Mode::SnapshotOnly, {TableRef{"public", "t"}}, Settings{}},
           w.executors(id), o);
    const auto t0 = Steady::now();
    p.start();
    p.wait_for(State::Setup, 30s);
    const double s = since(t0);
    p.wait_for(State::Completed, 30s);
    return s;
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
