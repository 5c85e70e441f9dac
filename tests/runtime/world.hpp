// A small world for runtime tests: an in-memory source with two tables, a destination, faults,
// a clock, and pipes over them with a recording listener.
#pragma once

#include <gtest/gtest.h>
#include <spdlog/logger.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "../print.hpp"
#include "clickpipe/clickpipe.hpp"
#include "clickpipe/runtime/pipe.hpp"
#include "clickpipe/testing/faults.hpp"
#include "clickpipe/testing/helpers.hpp"
#include "clickpipe/testing/manual_clock.hpp"
#include "clickpipe/testing/memory_executors.hpp"

namespace clickpipe::test {

using namespace std::chrono_literals;
using testing::destination_name;

inline TableDefinition table_def(const std::string& name) {
  return TableDefinition{
      TableRef{"public", name},
      {Column{"id", "int8", 20, -1, false, 0}, Column{"v", "text", 25, -1, true, 0}},
      {"id"}};
}

inline Values row(int id, const std::string& v) {
  return {Datum::of(std::to_string(id)), Datum::of(v)};
}

inline std::shared_ptr<spdlog::logger> quiet_logger() {
  return std::make_shared<spdlog::logger>("test");  // no sinks: discards everything
}

// A fresh directory under the system temp dir, removed again at the end of the test.
struct TempDirGuard {
  std::filesystem::path root;
  std::string path;
  TempDirGuard() {
    static std::atomic<int> counter{0};
    root = std::filesystem::temp_directory_path() /
           ("clickpipe-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(root);
    path = root.string();
  }
  ~TempDirGuard() { std::filesystem::remove_all(root); }
};

struct World {
  testing::MemoryWorld mem;
  std::shared_ptr<testing::FaultPlan> faults = std::make_shared<testing::FaultPlan>();
  std::shared_ptr<testing::ManualClock> clock = std::make_shared<testing::ManualClock>(true);
  std::shared_ptr<testing::RecordingListener> listener =
      std::make_shared<testing::RecordingListener>();
  TableRef orders{"public", "orders"};
  TableRef users{"public", "users"};
  TableRef extra{"public", "extra"};
  std::vector<std::unique_ptr<Pipe>> pipes;

  explicit World(int rows = 250) {
    for (const auto& t : {orders, users, extra}) mem.source->create_table(table_def(t.name));
    fill(orders, 0, rows);
    fill(users, 0, rows / 2);
    fill(extra, 0, 40);
  }

  ~World() {
    faults->release();  // let blocked executors go so pipes can shut down
    pipes.clear();
  }

  void fill(const TableRef& t, int from, int to) {
    std::vector<Values> rows;
    for (int i = from; i < to; ++i) rows.push_back(row(i, t.name + "-" + std::to_string(i)));
    mem.source->insert_many(t, std::move(rows));
  }

  static Settings fast_settings() {
    Settings s;
    s.sync_interval = 20ms;
    s.pull_batch_size = 100;
    s.rows_per_partition = 50;
    s.partitions_in_parallel = 2;
    s.tables_in_parallel = 2;
    testing::fast_retries(s, 100ms, 1000ms, 0.0);
    return s;
  }

  PipeConfig config(const std::string& id, Mode mode = Mode::InitialLoadAndCdc) const {
    return PipeConfig{id, mode, {orders, users}, fast_settings()};
  }

  Pipe& make(PipeConfig cfg, std::shared_ptr<HealthPolicy> health = nullptr) {
    const std::string id = cfg.id;
    PipeOptions opts;
    opts.logger = quiet_logger();
    opts.clock = clock;
    opts.health = std::move(health);
    opts.seed = 42;
    pipes.push_back(std::make_unique<Pipe>(
        std::move(cfg), testing::with_faults(mem.executors(id), faults), std::move(opts)));
    pipes.back()->add_listener(listener);
    return *pipes.back();
  }

  Pipe& started(PipeConfig cfg) {
    Pipe& p = make(std::move(cfg));
    p.start();
    return p;
  }

  // The listener's log from entry `first` on, once it has at least `total` entries.
  std::vector<std::string> log_from(std::size_t first, std::size_t total) const {
    listener->wait_for_entries(total);
    const std::vector<std::string> log = listener->log();
    if (log.size() < first) return {};
    return std::vector<std::string>(log.begin() + static_cast<std::ptrdiff_t>(first), log.end());
  }

  bool in_sync(const TableRef& t) const {
    return mem.source->rows(t) == mem.destination->final_rows(destination_name(t));
  }

  // Waits until CDC has caught up with the source for `t`.
  bool wait_in_sync(const TableRef& t, std::chrono::milliseconds timeout = 10s) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!in_sync(t)) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(2ms);
    }
    return true;
  }
};

}  // namespace clickpipe::test
