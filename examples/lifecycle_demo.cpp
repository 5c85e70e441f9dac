// The lifecycle of a pipe, run for real over the in-memory executors: 100,000 rows and a live
// change stream go through Provisioning -> Setup -> Snapshot -> Running, then pause, resume, a
// table addition and a resync. Ends by checking the destination equals the source (exit 1 if not).
//
//   lifecycle_demo [--latency-ms N]   N: simulated latency per partition copy (default 25)
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <clickpipe/clickpipe.hpp>
#include <clickpipe/json.hpp>
#include <clickpipe/testing/faults.hpp>
#include <clickpipe/testing/memory_executors.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using clickpipe::Datum;
using clickpipe::State;
using clickpipe::TableRef;
using clickpipe::Values;

namespace {

const auto kStart = std::chrono::steady_clock::now();

double elapsed() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - kStart).count();
}

struct PrintingListener : clickpipe::TransitionListener {
  void on_transition(const clickpipe::TransitionEvent& e) override {
    if (e.transition.kind == clickpipe::TransitionKind::Internal) return;
    fmt::print("[{:7.3f}s] {}\n", elapsed(), e.transition);
  }
  void on_retry(const std::string&, const clickpipe::RetryStatus& r) override {
    fmt::print("[{:7.3f}s] retrying {} (attempt {}): {}\n", elapsed(), r.operation, r.attempt,
               r.last_error);
  }
};

clickpipe::TableDefinition table(const std::string& name) {
  using clickpipe::Column;
  return {TableRef{"public", name},
          {Column{"id", "int8", 20, -1, false, 0}, Column{"payload", "text", 25, -1, true, 0},
           Column{"amount", "numeric", 1700, -1, true, 0}},
          {"id"}};
}

Values make_row(long id, std::mt19937_64& rng) {
  return {Datum::of(std::to_string(id)), Datum::of("payload-" + std::to_string(rng() % 100000)),
          Datum::of(std::to_string(rng() % 100000) + "." + std::to_string(rng() % 100))};
}

void fill(clickpipe::testing::MemorySource& src, const TableRef& t, long rows) {
  std::mt19937_64 rng(7);
  std::vector<Values> batch;
  for (long i = 0; i < rows; ++i) {
    batch.push_back(make_row(i, rng));
    if (batch.size() == 5000) src.insert_many(t, std::exchange(batch, {}));
  }
  if (!batch.empty()) src.insert_many(t, std::move(batch));
}

// Prints a bar per table while the pipe is in Snapshot (one line per update on a terminal,
// one line per quarter otherwise).
void show_snapshot_progress(const clickpipe::Pipe& pipe) {
  const bool tty = isatty(STDOUT_FILENO) != 0;
  std::map<std::string, int> shown;
  // Tables loaded before this Snapshot began (an addition copies only the new ones).
  std::set<std::string> loaded_before;
  for (const auto& t : pipe.status().snapshot) {
    if (t.planned && t.partitions_done == t.partitions_total)
      loaded_before.insert(t.table.qualified());
  }
  while (pipe.state() == State::Snapshot) {
    const clickpipe::PipeStatus s = pipe.status();
    std::string line;
    for (const auto& t : s.snapshot) {
      if (!t.planned || t.estimated_rows == 0 || loaded_before.count(t.table.qualified())) continue;
      const double f = std::min(1.0, double(t.rows_copied) / double(t.estimated_rows));
      const int width = 20;
      const int fill_to = static_cast<int>(f * width);
      const std::string bar = std::string(fill_to, '#') + std::string(width - fill_to, '.');
      const std::string name = t.table.qualified();
      if (tty) {
        line += fmt::format("  {} [{}] {:3.0f}%", name, bar, f * 100);
      } else if (int quarter = static_cast<int>(f * 4); quarter > shown[name]) {
        shown[name] = quarter;
        fmt::print("[{:7.3f}s]   {:<18} [{}] {:3.0f}%  {}/{} partitions\n", elapsed(), name, bar,
                   f * 100, t.partitions_done, t.partitions_total);
      }
    }
    if (tty && !line.empty()) fmt::print("\r{}", line);
    std::fflush(stdout);
    std::this_thread::sleep_for(50ms);
  }
  if (tty) fmt::print("\n");
}

bool wait_state(clickpipe::Pipe& pipe, State s) {
  if (pipe.wait_for(s, 60s)) return true;
  fmt::print(stderr, "timed out waiting for {} (now {})\n", s, pipe.state());
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  int latency_ms = 25;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--latency-ms") == 0 && i + 1 < argc) {
      latency_ms = std::atoi(argv[++i]);
    } else {
      fmt::print(stderr, "usage: lifecycle_demo [--latency-ms N]\n");
      return 2;
    }
  }

  fmt::print("The lifecycle of a Postgres ClickPipe, from the transition table:\n\n{}\n",
             clickpipe::to_mermaid());

  clickpipe::testing::MemoryWorld world;
  const TableRef customers{"public", "customers"}, orders{"public", "orders"},
      items{"public", "items"}, refunds{"public", "refunds"};
  for (const auto& t : {customers, orders, items, refunds})
    world.source->create_table(table(t.name));
  fill(*world.source, customers, 20000);
  fill(*world.source, orders, 60000);
  fill(*world.source, items, 20000);
  fill(*world.source, refunds, 5000);
  fmt::print("Source: 100,000 rows in 3 tables (+5,000 in public.refunds, added later).\n\n");

  // A live change stream: inserts, updates and deletes on every table until the end.
  std::atomic<bool> writing{true};
  std::atomic<long> changes{0};
  std::thread writer([&] {
    std::mt19937_64 rng(99);
    long next_id = 1000000;
    const TableRef tables[] = {customers, orders, items, refunds};
    while (writing) {
      const TableRef& t = tables[rng() % 4];
      switch (rng() % 3) {
        case 0: world.source->insert(t, make_row(next_id++, rng)); break;
        case 1: world.source->update(t, make_row(static_cast<long>(rng() % 5000), rng)); break;
        default: world.source->erase(t, make_row(static_cast<long>(rng() % 5000), rng)); break;
      }
      ++changes;
      std::this_thread::sleep_for(200us);
    }
  });

  clickpipe::Settings settings;
  settings.sync_interval = 100ms;
  settings.pull_batch_size = 5000;
  settings.rows_per_partition = 5000;
  settings.partitions_in_parallel = 4;
  settings.tables_in_parallel = 2;

  // Simulated latency per partition copy, so the load takes long enough to watch.
  auto faults = std::make_shared<clickpipe::testing::FaultPlan>();
  faults->delay(clickpipe::testing::op::copy_partition, std::chrono::milliseconds(latency_ms));

  clickpipe::PipeOptions options;
  options.logger =
      std::make_shared<spdlog::logger>("demo", std::make_shared<spdlog::sinks::null_sink_mt>());
  clickpipe::Pipe pipe(
      {"demo", clickpipe::Mode::InitialLoadAndCdc, {customers, orders, items}, settings},
      clickpipe::testing::with_faults(world.executors("demo"), faults), options);
  pipe.add_listener(std::make_shared<PrintingListener>());

  pipe.start();
  bool ok = wait_state(pipe, State::Snapshot);
  show_snapshot_progress(pipe);
  ok = ok && wait_state(pipe, State::Running);
  std::this_thread::sleep_for(1s);
  auto s = pipe.status();
  fmt::print("[{:7.3f}s] CDC: {} changes in {} batches, confirmed {}, lag {} \n", elapsed(),
             s.cdc.changes, s.cdc.batches, s.cdc.confirmed ? to_string(*s.cdc.confirmed) : "-",
             s.cdc.lag_bytes);

  fmt::print("[{:7.3f}s] pause: {}\n", elapsed(), pipe.pause() ? "accepted" : "rejected");
  ok = ok && wait_state(pipe, State::Paused);
  const auto rejected = pipe.pause();
  fmt::print("[{:7.3f}s] pause again: {} ({})\n", elapsed(), rejected ? "accepted" : "rejected",
             rejected.message);
  std::this_thread::sleep_for(300ms);
  fmt::print("[{:7.3f}s] resume: {}\n", elapsed(), pipe.resume() ? "accepted" : "rejected");
  ok = ok && wait_state(pipe, State::Running);

  fmt::print("[{:7.3f}s] add table public.refunds: {}\n", elapsed(),
             pipe.add_tables({refunds}) ? "accepted" : "rejected");
  ok = ok && wait_state(pipe, State::Snapshot);
  show_snapshot_progress(pipe);
  ok = ok && wait_state(pipe, State::Running);
  std::this_thread::sleep_for(500ms);

  fmt::print("[{:7.3f}s] resync: {}\n", elapsed(), pipe.resync() ? "accepted" : "rejected");
  ok = ok && wait_state(pipe, State::Snapshot);
  show_snapshot_progress(pipe);
  ok = ok && wait_state(pipe, State::Running);

  writing = false;
  writer.join();
  fmt::print("[{:7.3f}s] the writer stopped after {} changes; waiting for CDC to catch up\n",
             elapsed(), changes.load());

  // Verify: the destination's FINAL view equals the source for every table of the pipe.
  bool equal = false;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (ok && !equal && std::chrono::steady_clock::now() < deadline) {
    equal = true;
    for (const auto& t : pipe.status().tables) {
      equal = equal && world.source->rows(t) ==
                           world.destination->final_rows(clickpipe::testing::destination_name(t));
    }
    if (!equal) std::this_thread::sleep_for(50ms);
  }

  nlohmann::json status = pipe.status();
  status["history"] = nlohmann::json::array();  // printed above, as it happened
  fmt::print("\nFinal status:\n{}\n\n", status.dump(2));
  for (const auto& t : pipe.status().tables) {
    fmt::print("  {:<18} source {:>6} rows, destination {:>6} rows\n", t.qualified(),
               world.source->row_count(t),
               world.destination->final_rows(clickpipe::testing::destination_name(t)).size());
  }
  if (!ok || !equal) {
    fmt::print(stderr, "FAILED: the destination does not equal the source\n");
    return 1;
  }
  fmt::print("\nOK: the destination equals the source for every table.\n");
  return 0;
}
