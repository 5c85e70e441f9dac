// A cluster worker over in-memory executors, for the multi-process tests and the takeover
// benchmark. Every worker builds the same source: the same tables and rows, then the same
// transactions, each committed at its own moment after a shared epoch, so a position means the
// same change in every process and a pipe can move from one worker to another. Each worker
// journals what it writes to the destination in DIR/destination.NAME.journal; `verify` replays
// them all and reads, per row, the highest version any worker wrote (as ClickHouse's FINAL does).
//
//   cluster_helper run DIR NAME [--kill-at POINT[:N]]
//       runs a worker until SIGTERM (drains, exits 0). Writes DIR/NAME.running (the pipes it runs
//       in Running, refreshed every 100 ms), appends its events to DIR/NAME.events, and appends
//       one line to DIR/NAME.after_cont for each destination write it starts after a SIGCONT
//       and before it has joined the cluster again.
//       With --kill-at it SIGKILLs itself at the Nth (default 1st) PgStore hook POINT.
//   cluster_helper verify DIR
//       waits until every pipe has confirmed the last transaction, then checks the saved
//       histories and that the destination equals the source; prints figures; exit 1 on a
//       mismatch (the lines say which).
//
// Environment: CLICKPIPE_PG_* (the store), and CLUSTER_SCHEMA, CLUSTER_LEASE_MS, CLUSTER_PIPES,
// CLUSTER_TXNS, CLUSTER_INTERVAL_MS, CLUSTER_EPOCH_MS (system clock, ms), set by the test.
#include <fcntl.h>
#include <signal.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <clickpipe/clickpipe.hpp>
#include <clickpipe/cluster/worker.hpp>
#include <clickpipe/testing/memory_executors.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "../crash/checks.hpp"
#include "../servers.hpp"

using namespace std::chrono_literals;
using namespace clickpipe;

namespace {

constexpr int kRows = 20;  // rows per table before the transactions

long env_long(const char* name) { return std::stol(test::server_env(name)); }

struct Plan {
  std::string schema = test::server_env("CLUSTER_SCHEMA");
  std::chrono::milliseconds lease{env_long("CLUSTER_LEASE_MS")};
  int pipes = static_cast<int>(env_long("CLUSTER_PIPES"));
  long txns = env_long("CLUSTER_TXNS");
  std::chrono::milliseconds interval{env_long("CLUSTER_INTERVAL_MS")};
  std::chrono::system_clock::time_point epoch{
      std::chrono::milliseconds(env_long("CLUSTER_EPOCH_MS"))};
};

std::string pipe_id(int i) {
  char b[16];
  std::snprintf(b, sizeof b, "p%02d", i);
  return b;
}
TableRef table_of(int i) { return {"public", "t_" + pipe_id(i)}; }
TableDefinition def_of(int i) {
  return {table_of(i),
          {Column{"id", "int8", 20, -1, false, 0}, Column{"v", "text", 25, -1, true, 0}},
          {"id"}};
}
Values row(long id, const std::string& v) { return {Datum::of(std::to_string(id)), Datum::of(v)}; }

// Transaction n (1-based) updates one row of one pipe's table.
void commit(testing::MemorySource& src, const Plan& p, long n) {
  const int pipe = static_cast<int>(n % p.pipes);
  src.update(table_of(pipe), row((n / p.pipes) % kRows, "v" + std::to_string(n)));
}

void build_source(testing::MemorySource& src, const Plan& p) {
  for (int i = 0; i < p.pipes; ++i) {
    src.create_table(def_of(i));
    std::vector<Values> rows;
    for (long k = 0; k < kRows; ++k) rows.push_back(row(k, "initial"));
    src.insert_many(table_of(i), std::move(rows));
  }
  // Every slot is made here, before any transaction, in every process alike.
  for (int i = 0; i < p.pipes; ++i) src.create_slot(testing::MemoryWorld::slot_name(pipe_id(i)));
}

cluster::PgStoreOptions store_options(const Plan& p, const std::string& name) {
  cluster::PgStoreOptions o;
  o.connection = test::postgres_settings();
  o.schema = p.schema;
  o.lease = p.lease;
  o.worker_name = name;
  return o;
}

std::atomic<bool> continued{false};
std::atomic<bool> stopping{false};
void on_cont(int) { continued = true; }
void on_term(int) { stopping = true; }

// Counts destination writes that start after a SIGCONT, one line each.
class WatchedCdc final : public CdcStreamer {
 public:
  WatchedCdc(std::shared_ptr<CdcStreamer> inner, std::string file)
      : inner_(std::move(inner)), file_(std::move(file)) {}
  Lsn start(std::optional<Lsn> c, std::span<const TableDefinition> t, ExecContext& ctx) override {
    return inner_->start(c, t, ctx);
  }
  CdcBatch pull(ExecContext& ctx) override { return inner_->pull(ctx); }
  void apply(const CdcBatch& b, ExecContext& ctx) override {
    if (continued) std::ofstream(file_, std::ios::app) << ctx.pipe_id << " apply\n";
    inner_->apply(b, ctx);
  }
  void confirm(Lsn at, ExecContext& ctx) override { inner_->confirm(at, ctx); }
  void stop(ExecContext& ctx) override { inner_->stop(ctx); }

 private:
  std::shared_ptr<CdcStreamer> inner_;
  std::string file_;
};

int run(const std::string& dir, const std::string& name, const std::string& kill_at) {
  const Plan plan;
  crash::Dir shared{dir};
  auto world = std::make_shared<testing::MemoryWorld>();
  build_source(*world->source, plan);
  world->destination->open_journal(dir + "/destination." + name + ".journal");
  for (int i = 0; i < plan.pipes; ++i)
    world->destination->create_table(testing::destination_name(table_of(i)), def_of(i));

  ::signal(SIGCONT, on_cont);
  ::signal(SIGTERM, on_term);
  std::jthread generator([&](std::stop_token stop) {
    for (long n = 1; n <= plan.txns && !stop.stop_requested(); ++n) {
      std::this_thread::sleep_until(plan.epoch + n * plan.interval);
      commit(*world->source, plan, n);
    }
  });

  cluster::PgStoreOptions so = store_options(plan, name);
  if (!kill_at.empty()) {
    const auto colon = kill_at.find(':');
    const std::string point = kill_at.substr(0, colon);
    const int nth = colon == std::string::npos ? 1 : std::stoi(kill_at.substr(colon + 1));
    auto seen = std::make_shared<std::atomic<int>>(0);
    so.hook = [point, nth, seen, shared](std::string_view at) {
      if (at == point && ++*seen == nth) {
        shared.write("killed_at", std::string(at));
        ::kill(::getpid(), SIGKILL);
      }
    };
  }
  auto events = std::make_shared<std::ofstream>(dir + "/" + name + ".events", std::ios::app);
  auto events_mu = std::make_shared<std::mutex>();
  cluster::WorkerOptions wo;
  wo.store = cluster::PgStore::open(so);
  wo.service.logger = std::make_shared<spdlog::logger>(
      "clickpipe", std::make_shared<spdlog::sinks::null_sink_mt>());
  const std::string after_cont = dir + "/" + name + ".after_cont";
  wo.service.executors = [world, after_cont](const std::string& id, Mode) {
    Executors ex = world->executors(id);
    ex.cdc = std::make_shared<WatchedCdc>(ex.cdc, after_cont);
    return ex;
  };
  wo.on_event = [events, events_mu](const cluster::WorkerEvent& e) {
    // Joined again after a pause: what it writes from now on it owns anew.
    if (e.kind == cluster::WorkerEvent::Kind::Joined) continued = false;
    std::lock_guard lk(*events_mu);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    *events << ms << " " << cluster::to_string(e.kind) << " " << e.pipe << " " << e.message
            << std::endl;
  };
  for (int i = 0; i < plan.pipes; ++i) {
    PipeConfig c{pipe_id(i), Mode::InitialLoadAndCdc, {table_of(i)}, {}};
    c.settings.sync_interval = 100ms;
    wo.pipes.push_back(c);
  }
  cluster::ClusterWorker worker(std::move(wo));
  worker.start();
  while (!stopping) {
    std::string running;
    for (const PipeStatus& s : worker.service().statuses()) {
      if (s.state == State::Running) running += s.id + "\n";
    }
    shared.write(name + ".running", running);
    std::this_thread::sleep_for(100ms);
  }
  worker.drain();
  shared.write(name + ".running", "");
  return 0;
}

int verify(const std::string& dir) {
  const Plan plan;
  crash::Dir shared{dir};
  testing::MemorySource src;
  build_source(src, plan);
  for (long n = 1; n <= plan.txns; ++n) commit(src, plan, n);
  const Lsn last = src.head();
  auto store = cluster::PgStore::open(store_options(plan, "verify"));
  LoadResult loaded;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (;;) {
    loaded = store->load_all();
    int behind = 0;
    for (const PipeRecord& r : loaded.records) behind += !r.confirmed || *r.confirmed < last;
    if (behind == 0 && static_cast<int>(loaded.records.size()) == plan.pipes) break;
    if (std::chrono::steady_clock::now() > deadline) {
      std::printf("MISMATCH %d of %zu pipes have not confirmed %s within 60 s\n", behind,
                  loaded.records.size(), to_string(last).c_str());
      return 1;
    }
    std::this_thread::sleep_for(100ms);
  }
  crash::check_saved_records(loaded, shared);
  std::vector<std::unique_ptr<testing::MemoryDestination>> dests;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f.starts_with("destination.") && f.ends_with(".journal")) {
      dests.push_back(std::make_unique<testing::MemoryDestination>());
      dests.back()->open_journal(e.path().string());
    }
  }
  int bad = 0;
  std::uint64_t inserted = 0;
  for (int i = 0; i < plan.pipes; ++i) {
    const std::string name = testing::destination_name(table_of(i));
    const auto want = src.rows(table_of(i));
    for (long k = 0; k < kRows; ++k) {
      const testing::Key key = testing::key_of(def_of(i), row(k, ""));
      std::optional<testing::VersionedRow> best;
      for (const auto& d : dests) {
        const auto got = d->has_table(name) ? d->latest(name, key) : std::nullopt;
        if (got && (!best || got->version > best->version)) best = got;
      }
      const auto it = want.find(key);
      if (!best || best->deleted || it == want.end() || best->values != it->second) {
        std::printf("MISMATCH pipe %s row %ld: destination differs from the source\n",
                    pipe_id(i).c_str(), k);
        ++bad;
      }
    }
    for (const auto& d : dests) inserted += d->has_table(name) ? d->rows_inserted(name) : 0;
  }
  for (const PipeRecord& r : loaded.records) {
    if (r.lifecycle.state() != State::Running) {
      std::printf("MISMATCH pipe %s is %s, not Running\n", r.id.c_str(),
                  std::string(to_string(r.lifecycle.state())).c_str());
      ++bad;
    }
  }
  const std::string violations = shared.read("violations");
  if (!violations.empty()) {
    std::printf("MISMATCH violations:\n%s", violations.c_str());
    ++bad;
  }
  // Rows written beyond the source's own: replays after takeovers, absorbed by versions.
  const long needed = plan.pipes * kRows + plan.txns;
  std::printf(
      "verified %d pipes: %ld source rows and changes, %llu destination rows written "
      "(%lld replayed)\n",
      plan.pipes, needed, static_cast<unsigned long long>(inserted),
      static_cast<long long>(inserted) - needed);
  return bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() >= 3 && args[0] == "run") {
      std::string kill_at;
      if (args.size() == 5 && args[3] == "--kill-at") kill_at = args[4];
      return run(args[1], args[2], kill_at);
    }
    if (args.size() == 2 && args[0] == "verify") return verify(args[1]);
    std::fprintf(stderr, "usage: cluster_helper run DIR NAME [--kill-at POINT[:N]] | verify DIR\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cluster_helper: %s\n", e.what());
    return 3;
  }
}
