// A small world for runtime tests: an in-memory source with two tables, a destination, faults,
// a clock, and pipes over them with a recording listener.
#pragma once

#include <gtest/gtest.h>
#include <spdlog/logger.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <thread>
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

// Polls `done` until it holds; false after `timeout`.
template <typename F>
bool eventually(const F& done, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}
using testing::destination_name;

// Forwards every TableSetup call that must be implemented to `inner`, and keeps the interface's
// defaults for the optional hooks: tests derive from it to change one behaviour.
class ForwardingTableSetup : public TableSetup {
 public:
  explicit ForwardingTableSetup(std::shared_ptr<TableSetup> inner) : inner_(std::move(inner)) {}
  std::vector<TableDefinition> read_definitions(std::span<const TableRef> t,
                                                ExecContext& ctx) override {
    return inner_->read_definitions(t, ctx);
  }
  void create_tables(std::span<const TableDefinition> t, TableTarget target,
                     ExecContext& ctx) override {
    inner_->create_tables(t, target, ctx);
  }
  void swap_resync_tables(std::span<const TableDefinition> t, ExecContext& ctx) override {
    inner_->swap_resync_tables(t, ctx);
  }
  void remove_tables(std::span<const TableRef> t, ExecContext& ctx) override {
    inner_->remove_tables(t, ctx);
  }
  void teardown(ExecContext& ctx) override { inner_->teardown(ctx); }

 private:
  std::shared_ptr<TableSetup> inner_;
};

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

// A second pipe on the same source, streaming only `extra` (CDC only, with its own fault plan and
// no listener). Tests that show something does NOT happen wait on it rather than sleeping: once it
// has applied a row written after some change and pulled a few times more, a pipe that was
// streaming would have pulled that change too. Declare it after the World it watches.
class Witness {
 public:
  explicit Witness(World& w) : w_(w) {
    PipeOptions opts;
    opts.logger = quiet_logger();
    opts.clock = w.clock;
    pipe_ = std::make_unique<Pipe>(
        PipeConfig{"witness", Mode::CdcOnly, {w.extra}, World::fast_settings()},
        testing::with_faults(w.mem.executors("witness"), faults_), std::move(opts));
    pipe_->start();
  }

  // Writes a marker row to `extra`, waits until the witness has applied it, then until it has
  // pulled `pulls` more times (each an idle sync interval). False on timeout.
  bool saw_a_later_write(std::uint32_t pulls = 3, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    // Its slot exists once it has a confirmed position: a marker written earlier would be missed.
    if (!testing::wait_until(
            *pipe_, [](const PipeStatus& s) { return s.cdc.confirmed.has_value(); }, timeout)) {
      return false;
    }
    const Values marker = row(next_marker_++, "witness");
    w_.mem.source->insert(w_.extra, marker);
    const testing::Key key = testing::key_of(table_def(w_.extra.name), marker);
    auto poll = [&](const auto& done) {
      while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
      }
      return true;
    };
    if (!poll([&] { return w_.mem.destination->latest(destination_name(w_.extra), key); })) {
      return false;
    }
    const std::uint32_t seen = faults_->calls(testing::op::pull);
    return poll([&] { return faults_->calls(testing::op::pull) >= seen + pulls; });
  }

 private:
  World& w_;
  std::shared_ptr<testing::FaultPlan> faults_ = std::make_shared<testing::FaultPlan>();
  std::unique_ptr<Pipe> pipe_;
  int next_marker_ = 900000;
};

}  // namespace clickpipe::test
