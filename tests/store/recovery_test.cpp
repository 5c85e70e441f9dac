// The write-ahead rule and recovery: what the runtime saves, when, and how a saved pipe resumes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../expect.hpp"
#include "../runtime/world.hpp"
#include "clickpipe/json.hpp"
#include "clickpipe/runtime/pipe_service.hpp"
#include "clickpipe/store/file_store.hpp"
#include "clickpipe/store/memory_store.hpp"
#include "clickpipe/testing/flaky_file_system.hpp"

namespace clickpipe::test {
namespace {

using testing::drive_to;
using testing::wait_until;
namespace op = testing::op;
namespace fs = std::filesystem;

// Checks, for every transition a listener sees, that the store already holds it.
struct SavedFirst : TransitionListener {
  std::shared_ptr<StateStore> store;
  std::atomic<int> checked{0};
  std::atomic<int> violations{0};
  void on_transition(const TransitionEvent& e) override {
    for (const PipeRecord& r : store->load_all().records) {
      if (r.id != e.pipe_id) continue;
      ++checked;
      // The store may be ahead of this listener, never behind it.
      const bool saved =
          std::any_of(r.history.begin(), r.history.end(), [&](const HistoryEntry& h) {
            return h.from == e.transition.from && h.trigger == e.transition.trigger &&
                   h.to == e.transition.to && h.at == e.at;
          });
      if (!saved) ++violations;
    }
  }
};

PipeOptions with_store(World& w, std::shared_ptr<StateStore> store) {
  PipeOptions o;
  o.logger = quiet_logger();
  o.clock = w.clock;
  o.seed = 1;
  o.store = std::move(store);
  return o;
}

TEST(WriteAhead, EveryTransitionIsSavedBeforeListenersSeeIt) {
  World w;
  auto store = std::make_shared<MemoryStore>();
  auto check = std::make_shared<SavedFirst>();
  check->store = store;
  Pipe p(w.config("p1"), w.mem.executors("p1"), with_store(w, store));
  p.add_listener(check);
  p.start();
  ASSERT_TRUE(drive_to(p, State::Paused));
  ASSERT_TRUE(p.resume());
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  ASSERT_TRUE(wait_until(p, [&](const PipeStatus& s) {
    return static_cast<std::uint64_t>(check->checked.load()) == s.transitions;
  }));
  EXPECT_EQ(check->violations.load(), 0);
  EXPECT_EQ(store->load_all().records.at(0).lifecycle.state(), State::Running);
}

TEST(WriteAhead, APositionIsConfirmedToTheSourceOnlyAfterItIsSaved) {
  World w;
  auto store = std::make_shared<MemoryStore>();
  Pipe p(w.config("p1"), w.mem.executors("p1"), with_store(w, store));
  p.start();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  for (int i = 0; i < 200; ++i) {
    w.mem.source->insert(w.orders, row(30000 + i, "c"));
    const auto slot = w.mem.source->confirmed("clickpipe_p1");
    const auto saved = store->load_all().records.at(0).confirmed;
    ASSERT_TRUE(slot && saved);
    // Read the slot first: whatever it shows was saved before it was confirmed.
    EXPECT_LE(*slot, *saved);
  }
  EXPECT_TRUE(w.wait_in_sync(w.orders));
}

TEST(WriteAhead, AFailingStoreStopsThePipeFromAdvancingAndShowsWhy) {
  World w;
  TempDirGuard dir;
  auto flaky = std::make_shared<testing::FlakyFileSystem>();
  std::shared_ptr<StateStore> store = FileStore::open(dir.path, flaky);
  Pipe p(w.config("p1"), w.mem.executors("p1"), with_store(w, store));
  flaky->fail("write_file", ENOSPC, -1);  // a full disk, until healed
  p.start();
  ASSERT_TRUE(wait_until(p, [](const PipeStatus& s) {
    return s.retry && s.retry->operation == "store: save transition" && s.retry->attempt >= 3;
  }));
  PipeStatus s = p.status();
  EXPECT_EQ(s.state, State::Provisioning) << "nothing advances while nothing can be saved";
  EXPECT_NE(s.retry->last_error.find("No space left on device"), std::string::npos);
  // Commands are refused with the reason, and change nothing.
  const CommandResult r = p.remove();
  EXPECT_EQ(r.status, CommandResult::Status::Unavailable);
  EXPECT_EQ(p.state(), State::Provisioning);

  flaky->heal();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  EXPECT_TRUE(w.in_sync(w.orders));
  EXPECT_FALSE(p.status().retry.has_value());
}

TEST(WriteAhead, AFailingCheckpointReplaysInsteadOfLosingChanges) {
  World w;
  TempDirGuard dir;
  auto flaky = std::make_shared<testing::FlakyFileSystem>();
  std::shared_ptr<StateStore> store = FileStore::open(dir.path, flaky);
  Pipe p(w.config("p1"), w.mem.executors("p1"), with_store(w, store));
  p.start();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  const auto confirmed = p.status().cdc.confirmed;
  flaky->fail("fsync_file", EIO, 5);
  w.fill(w.orders, 40000, 40050);
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  ASSERT_TRUE(wait_until(p, [&](const PipeStatus& s) { return s.cdc.confirmed > confirmed; }));
  EXPECT_EQ(flaky->failures(), 5);
  EXPECT_TRUE(wait_until(p, [&](const PipeStatus&) {
    return w.mem.source->confirmed("clickpipe_p1") == p.record().confirmed;
  }));
}

// ---- recovery ----

TEST(Recovery, SnapshotResumesCopyingOnlyTheMissingPartitions) {
  World w(500);  // orders: 10 partitions, users: 5
  auto store = std::make_shared<MemoryStore>();
  PipeConfig cfg = w.config("p1");
  cfg.settings.partitions_in_parallel = 1;
  cfg.settings.tables_in_parallel = 1;
  {
    w.faults->block(op::copy_partition, 4);
    Pipe p(cfg, testing::with_faults(w.mem.executors("p1"), w.faults), with_store(w, store));
    p.start();
    ASSERT_TRUE(w.faults->wait_blocked(10s));
    w.faults->release();
    p.shutdown();  // as if the process died here: only what was saved counts
  }
  const PipeRecord saved = store->load_all().records.at(0);
  ASSERT_EQ(saved.lifecycle.state(), State::Snapshot);
  std::size_t done = 0;
  for (const auto& l : saved.load) done += l.done.size();
  ASSERT_GE(done, 3u);

  auto faults = std::make_shared<testing::FaultPlan>();
  Pipe p(saved, testing::with_faults(w.mem.executors("p1"), faults), with_store(w, store));
  p.start();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  EXPECT_EQ(faults->calls(op::copy_partition), 15u - done)
      << "done partitions are not copied again";
  EXPECT_TRUE(w.in_sync(w.orders));
  EXPECT_TRUE(w.in_sync(w.users));
}

TEST(Recovery, RunningResumesFromTheSavedPosition) {
  World w;
  auto store = std::make_shared<MemoryStore>();
  {
    Pipe p(w.config("p1"), w.mem.executors("p1"), with_store(w, store));
    p.start();
    ASSERT_TRUE(p.wait_for(State::Running, 10s));
    w.fill(w.orders, 1000, 1100);
    ASSERT_TRUE(w.wait_in_sync(w.orders));
    p.shutdown();
  }
  w.fill(w.orders, 2000, 2100);  // written while no process ran the pipe
  w.mem.source->erase(w.orders, row(5, ""));
  Pipe p(store->load_all().records.at(0), w.mem.executors("p1"), with_store(w, store));
  p.start();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  EXPECT_EQ(p.status().history.size(), 3u) << "no new transition: it simply carried on";
}

TEST(Recovery, PausedFailedAndCompletedPipesStayPut) {
  for (State target : {State::Paused, State::Failed, State::Completed}) {
    World w;
    Witness witness(w);
    auto store = std::make_shared<MemoryStore>();
    PipeConfig cfg =
        w.config("p1", target == State::Completed ? Mode::SnapshotOnly : Mode::InitialLoadAndCdc);
    if (target == State::Failed) w.faults->fatal(op::create_tables, 1);
    {
      Pipe p(cfg, testing::with_faults(w.mem.executors("p1"), w.faults), with_store(w, store));
      p.start();
      ASSERT_TRUE(drive_to(p, target));
    }
    const auto calls = w.faults->calls(op::pull) + w.faults->calls(op::copy_partition);
    Pipe p(store->load_all().records.at(0), testing::with_faults(w.mem.executors("p1"), w.faults),
           with_store(w, store));
    p.start();
    w.fill(w.orders, 3000, 3010);
    ASSERT_TRUE(witness.saw_a_later_write()) << "a running pipe would have pulled the rows by now";
    EXPECT_EQ(p.state(), target);
    EXPECT_EQ(w.faults->calls(op::pull) + w.faults->calls(op::copy_partition), calls)
        << to_string(target) << ": no work while it stays";
  }
}

TEST(Recovery, APauseAskedForBeforeTheStopIsCarriedOutAfterIt) {
  World w;
  Witness witness(w);
  auto store = std::make_shared<MemoryStore>();
  {
    Pipe p(w.config("p1"), w.mem.executors("p1"), with_store(w, store));
    p.start();
    ASSERT_TRUE(p.wait_for(State::Running, 10s));
  }
  // The pause reached the store as intent, but the pipe stopped before moving (as a crash right
  // after the save would leave it).
  PipeRecord r = store->load_all().records.at(0);
  r.intent = Intent::Paused;
  Pipe p(r, testing::with_faults(w.mem.executors("p1"), w.faults), with_store(w, store));
  EXPECT_EQ(p.state(), State::Pausing) << "moved before any work starts";
  p.start();
  ASSERT_TRUE(p.wait_for(State::Paused, 10s));
  w.fill(w.orders, 4000, 4010);
  ASSERT_TRUE(witness.saw_a_later_write()) << "a running pipe would have pulled the rows by now";
  EXPECT_EQ(w.faults->calls(op::cdc_start), 0u) << "the pause came first: CDC never started";
  EXPECT_EQ(w.faults->calls(op::pull), 0u);
  EXPECT_FALSE(w.in_sync(w.orders));
}

TEST(Recovery, AnUnknownStateIsRefusedNamingTheField) {
  World w;
  PipeRecord r;
  r.id = "p1";
  r.tables = {w.orders};
  r.lifecycle = Lifecycle::restore(State::Unknown, LifecycleContext{});
  const auto e =
      expect_throws<InvalidField>([&] { Pipe p(r, w.mem.executors("p1"), PipeOptions{}); });
  EXPECT_EQ(e ? e->field() : "", "lifecycle.state");
}

// ---- the service ----

ServiceOptions service_options(World& w, std::shared_ptr<StateStore> store) {
  ServiceOptions o;
  o.store = std::move(store);
  o.executors = [&w](const std::string& id, Mode) { return w.mem.executors(id); };
  o.logger = quiet_logger();
  o.clock = w.clock;
  return o;
}

TEST(Service, CreatesListsRemovesAndResumesAfterAGracefulShutdown) {
  World w;
  TempDirGuard dir;
  {
    PipeService service(service_options(w, FileStore::open(dir.path)));
    Pipe& a = service.create(w.config("a"));
    PipeConfig cb = w.config("b");
    cb.tables = {w.extra};
    Pipe& b = service.create(cb);
    ASSERT_TRUE(a.wait_for(State::Running, 10s));
    ASSERT_TRUE(drive_to(b, State::Paused));
    EXPECT_EQ(service.list(), (std::vector<std::string>{"a", "b"}));
    EXPECT_THROW(service.create(w.config("a")), StoreError);
    EXPECT_NE(
        service_status_json(service.statuses(), service.broken()).find("\"state\": \"Paused\""),
        std::string::npos);
    service.shutdown();
  }
  w.fill(w.orders, 5000, 5050);
  PipeService service(service_options(w, FileStore::open(dir.path)));
  ASSERT_EQ(service.list().size(), 2u);
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  Pipe* b = service.get("b");
  EXPECT_EQ(b->state(), State::Paused);
  ASSERT_TRUE(service.remove("b"));
  ASSERT_TRUE(b->wait_for(State::Terminated, 10s));  // valid until the service forgets it
  ASSERT_TRUE(wait_until(*service.get("a"), [&](const PipeStatus&) {
    return !fs::exists(fs::path(dir.path) / "b.json");
  }));
  EXPECT_EQ(service.list(), std::vector<std::string>{"a"});
}

TEST(Service, RestoresAThousandPipes) {
  World w;
  TempDirGuard dir;
  std::filesystem::create_directories(dir.root);
  for (int i = 0; i < 1000; ++i) {
    PipeRecord r;
    r.id = "pipe_" + std::to_string(i);
    r.tables = {w.orders};
    r.settings = World::fast_settings();
    r.lifecycle = Lifecycle::restore(State::Paused, LifecycleContext{});
    r.intent = Intent::Paused;
    r.definitions = {table_def("orders")};
    r.confirmed = w.mem.source->head();
    // Written as the store writes them (durability is another test's business), as private
    // as it makes them whatever the umask.
    const fs::path file = dir.root / (r.id + ".json");
    std::ofstream(file) << encode_record(r, 1);
    fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
  }
  fs::permissions(dir.root, fs::perms::owner_all);
  w.mem.source->create_slot("clickpipe_pipe_7");
  w.mem.destination->create_table(destination_name(w.orders), table_def("orders"));
  PipeService service(service_options(w, FileStore::open(dir.path)));
  EXPECT_TRUE(service.broken().empty());
  ASSERT_EQ(service.list().size(), 1000u);
  for (const auto& s : service.statuses()) EXPECT_EQ(s.state, State::Paused);
  Pipe* p = service.get("pipe_7");
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->resume());
  w.fill(w.orders, 6000, 6020);  // only changes after the saved position arrive
  EXPECT_TRUE(wait_until(*p, [&](const PipeStatus&) {
    return w.mem.destination->final_rows(destination_name(w.orders)).size() == 20;
  }));
}

TEST(Service, BoundsSnapshotPartitionsAcrossPipes) {
  World w(1000);
  ServiceOptions o = service_options(w, std::make_shared<MemoryStore>());
  o.max_concurrent_partitions = 2;
  w.faults->delay(op::copy_partition, 2ms);
  o.executors = [&w](const std::string& id, Mode) {
    return testing::with_faults(w.mem.executors(id), w.faults);
  };
  PipeService service(o);
  std::vector<Pipe*> ps;
  int n = 0;
  for (const TableRef& t : {w.orders, w.users, w.extra}) {
    PipeConfig c = w.config("p" + std::to_string(n++));
    c.tables = {t};
    c.settings.partitions_in_parallel = 4;
    ps.push_back(&service.create(c));
  }
  for (Pipe* p : ps) ASSERT_TRUE(p->wait_for(State::Running, 20s));
  EXPECT_EQ(service.peak_concurrent_partitions(), 2u) << "3 pipes x 4 partitions, bound 2";
  EXPECT_TRUE(w.in_sync(w.orders));
  EXPECT_TRUE(w.in_sync(w.users));
  EXPECT_TRUE(w.in_sync(w.extra));
}

}  // namespace
}  // namespace clickpipe::test
