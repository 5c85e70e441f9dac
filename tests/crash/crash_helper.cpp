// A process that runs pipes over journaled in-memory executors and a FileStore, for kill tests.
//
//   crash_helper DIR init          creates the source tables (run once, never killed)
//   crash_helper DIR run SEED [--drop-one-batch-after-restart]
//                                  runs the pipes with writes going on, until killed (or 60 s);
//                                  with the flag, a restarted pipe A drops one batch of inserts
//                                  (the mutation check: verify must then fail)
//   crash_helper DIR verify        stops writing, lets the pipes catch up, checks everything
//
// DIR holds source.journal, destination.journal, store/ and what the checks need:
//   state_A       the state pipe A was last seen in (for the test to classify kill points)
//   b_paused      rows pipe B had at its destination when it was paused
//   dropped       the batch the mutation dropped, once its position was confirmed
//   mismatch      one line per table whose destination differs from the source (verify)
//   violations    one line per broken invariant found (must stay empty)
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <clickpipe/clickpipe.hpp>
#include <clickpipe/runtime/pipe_service.hpp>
#include <clickpipe/store/file_store.hpp>
#include <clickpipe/testing/faults.hpp>
#include <clickpipe/testing/helpers.hpp>
#include <clickpipe/testing/memory_executors.hpp>

#include "checks.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using namespace clickpipe;
namespace fs = std::filesystem;

namespace {

std::string dir;
const TableRef kOrders{"public", "orders"}, kUsers{"public", "users"}, kItems{"public", "items"};

TableDefinition def(const std::string& name) {
  return {TableRef{"public", name},
          {Column{"id", "int8", 20, -1, false, 0}, Column{"v", "text", 25, -1, true, 0}},
          {"id"}};
}
Values row(long id, const std::string& v) { return {Datum::of(std::to_string(id)), Datum::of(v)}; }

crash::Dir shared;
std::string read(const std::string& name) { return shared.read(name); }
void write_atomically(const std::string& name, const std::string& text) {
  shared.write(name, text);
}
void violation(const std::string& what) { shared.violation(what); }

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("crash", std::make_shared<spdlog::sinks::null_sink_mt>());
}

Settings settings() {
  Settings s;
  s.sync_interval = 20ms;
  s.pull_batch_size = 200;
  s.rows_per_partition = 100;
  s.partitions_in_parallel = 2;
  s.tables_in_parallel = 1;
  testing::fast_retries(s, 10ms, 100ms);
  return s;
}

struct World {
  std::shared_ptr<testing::MemorySource> source = std::make_shared<testing::MemorySource>();
  std::shared_ptr<testing::MemoryDestination> dest = std::make_shared<testing::MemoryDestination>();
  World() {
    source->open_journal(dir + "/source.journal");
    dest->open_journal(dir + "/destination.journal");
  }
};

// Watches pipes A and B: records A's state, pauses B once it runs, notes B's rows when paused.
class Watcher final : public TransitionListener {
 public:
  Watcher(World& w, PipeService*& service, bool pause_b)
      : w_(w), service_(service), pause_b_(pause_b) {}
  void on_transition(const TransitionEvent& e) override {
    if (e.pipe_id == "a") write_atomically("state_A", std::string(to_string(e.transition.to)));
    if (pause_b_ && e.pipe_id == "b" && e.transition.to == State::Running && service_) {
      if (Pipe* b = service_->get("b")) b->pause();  // queued: runs after this listener
    }
    if (e.pipe_id == "b" && e.transition.to == State::Paused) note_b_paused(w_);
  }
  static void note_b_paused(World& w) {
    if (!fs::exists(dir + "/b_paused")) {
      write_atomically("b_paused",
                       std::to_string(w.dest->rows_inserted(testing::destination_name(kItems))));
    }
  }

 private:
  World& w_;
  PipeService*& service_;
  bool pause_b_;
};

void ensure_pipes(PipeService& service) {
  if (!service.get("a")) {
    service.create(PipeConfig{"a", Mode::InitialLoadAndCdc, {kOrders, kUsers}, settings()});
  }
  if (!service.get("b"))
    service.create(PipeConfig{"b", Mode::InitialLoadAndCdc, {kItems}, settings()});
}

// With `drop_after_restart`, pipe A drops one batch if the store already held it (a restart).
std::unique_ptr<PipeService> open_service(World& w, PipeService*& handle,
                                          std::shared_ptr<Watcher> watcher,
                                          bool drop_after_restart = false) {
  std::shared_ptr<StateStore> store = FileStore::open(dir + "/store");
  const LoadResult loaded = store->load_all();
  const std::set<std::string> done = crash::check_saved_records(loaded, shared);
  const bool drop =
      drop_after_restart && std::any_of(loaded.records.begin(), loaded.records.end(),
                                        [](const PipeRecord& r) { return r.id == "a"; });
  auto faults = std::make_shared<testing::FaultPlan>();
  faults->delay(testing::op::copy_partition, 15ms);  // a load long enough to be killed in
  ServiceOptions o;
  o.store = store;
  o.logger = quiet();
  o.listeners = {watcher};
  o.executors = [&w, faults, done, drop](const std::string& id, Mode) {
    const std::string slot = testing::MemoryWorld::slot_name(id);
    auto service = std::make_shared<testing::MemoryService>(0ms);
    Executors ex{
        std::make_shared<testing::MemoryProvisioner>(service),
        std::make_shared<testing::MemoryTableSetup>(w.source, w.dest, slot),
        std::make_shared<crash::DonePartitionGuard>(
            std::make_shared<testing::MemorySnapshotCopier>(w.source, w.dest, slot), done, shared),
        std::make_shared<testing::MemoryCdcStreamer>(w.source, w.dest, slot)};
    if (drop && id == "a") ex.cdc = std::make_shared<crash::DropOneBatch>(ex.cdc, shared);
    return testing::with_faults(ex, faults);
  };
  auto service = std::make_unique<PipeService>(o);
  handle = service.get();
  return service;
}

int init() {
  fs::create_directories(dir);
  World w;
  std::mt19937_64 rng(1);
  for (const auto& [t, n] :
       {std::pair{kOrders, 3000}, std::pair{kUsers, 1000}, std::pair{kItems, 500}}) {
    w.source->create_table(def(t.name));
    std::vector<Values> rows;
    for (int i = 0; i < n; ++i) rows.push_back(row(i, "init-" + std::to_string(rng() % 1000)));
    w.source->insert_many(t, std::move(rows));
  }
  return 0;
}

int run(unsigned seed, bool drop_after_restart) {
  World w;
  PipeService* handle = nullptr;
  auto watcher = std::make_shared<Watcher>(w, handle, true);
  // B paused before: it must not have moved while no process ran it.
  const std::string before = read("b_paused");
  auto service = open_service(w, handle, watcher, drop_after_restart);
  if (Pipe* b = service->get("b"); b && b->state() == State::Paused) {
    Watcher::note_b_paused(w);
    const auto rows = w.dest->rows_inserted(testing::destination_name(kItems));
    if (!before.empty() && std::to_string(rows) != before) {
      violation("paused pipe B moved data: " + before + " -> " + std::to_string(rows));
    }
  }
  ensure_pipes(*service);
  if (Pipe* b = service->get("b"); b->state() == State::Running) b->pause();
  // Tells the test this process is up: kills are timed from here.
  write_atomically("started", std::to_string(::getpid()));

  // Writes go on, on every table, until the process is killed.
  std::mt19937_64 rng(seed);
  long next = 100000 + static_cast<long>(seed) * 1000000 + static_cast<long>(rng() % 100000) * 100;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    const TableRef& t = rng() % 2 ? kOrders : (rng() % 2 ? kUsers : kItems);
    switch (rng() % 4) {
      case 0:
      case 1: w.source->insert(t, row(next++, "ins")); break;
      case 2:
        w.source->update(t,
                         row(static_cast<long>(rng() % 500), "upd" + std::to_string(rng() % 99)));
        break;
      default: w.source->erase(t, row(static_cast<long>(rng() % 500), "")); break;
    }
    std::this_thread::sleep_for(300us);  // spreads the writes over the time a kill may land
  }
  return 0;
}

int verify() {
  World w;
  PipeService* handle = nullptr;
  auto watcher = std::make_shared<Watcher>(w, handle, false);
  auto service = open_service(w, handle, watcher);
  ensure_pipes(*service);
  Pipe* a = service->get("a");
  Pipe* b = service->get("b");
  if (!a || !b) {
    std::fprintf(stderr, "pipes missing\n");
    return 1;
  }
  if (b->state() == State::Paused) {
    const std::string before = read("b_paused");
    const auto rows = w.dest->rows_inserted(testing::destination_name(kItems));
    if (!before.empty() && std::to_string(rows) != before) {
      violation("paused pipe B moved data: " + before + " -> " + std::to_string(rows));
    }
  }
  if (!a->wait_for(State::Running, 60s)) {
    std::fprintf(stderr, "A did not reach Running: %s\n",
                 std::string(to_string(a->state())).c_str());
    return 1;
  }
  // B may be paused (or not yet): resume it and let both catch up with the source.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (b->state() != State::Running && std::chrono::steady_clock::now() < deadline) {
    if (b->state() == State::Paused) b->resume();
    std::this_thread::sleep_for(10ms);
  }
  const Lsn head = w.source->head();
  while (std::chrono::steady_clock::now() < deadline &&
         !(a->status().cdc.confirmed >= head && b->status().cdc.confirmed >= head)) {
    std::this_thread::sleep_for(10ms);
  }
  int bad = 0;
  std::string mismatch;
  for (const TableRef& t : {kOrders, kUsers, kItems}) {
    const auto src = w.source->rows(t);
    const auto dst = w.dest->final_rows(testing::destination_name(t));
    if (src != dst) {
      ++bad;
      mismatch += fmt::format("{}: source {} rows, destination {} rows\n", t.qualified(),
                              src.size(), dst.size());
    }
  }
  write_atomically("mismatch", mismatch);
  std::fprintf(stderr, "%s", mismatch.c_str());
  const std::string v = read("violations");
  if (!v.empty()) {
    std::fprintf(stderr, "violations:\n%s", v.c_str());
    ++bad;
  }
  std::printf("%s\n", bad ? "MISMATCH" : "OK");
  return bad ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  constexpr const char* kUsage =
      "usage: crash_helper DIR init|run SEED [--drop-one-batch-after-restart]|verify\n";
  if (argc < 3) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  dir = argv[1];
  shared.path = dir;
  spdlog::set_level(spdlog::level::off);
  const std::string mode = argv[2];
  if (mode == "init") return init();
  if (mode == "run" && (argc == 4 || argc == 5)) {
    const bool drop = argc == 5 && std::string(argv[4]) == "--drop-one-batch-after-restart";
    if (argc == 5 && !drop) {
      std::fprintf(stderr, "unknown option %s\n%s", argv[4], kUsage);
      return 2;
    }
    return run(static_cast<unsigned>(std::stoul(argv[3])), drop);
  }
  if (mode == "verify") return verify();
  std::fprintf(stderr, "%s", kUsage);
  return 2;
}
