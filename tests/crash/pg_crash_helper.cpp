// A process that runs one real pipe (PostgreSQL -> ClickHouse, reference executors, FileStore)
// for the kill tests on real servers (pg_crash_test.cpp), and kills itself with SIGKILL at chosen
// points the clock cannot hit reliably.
//
//   pg_crash_helper DIR run POINT N [--drop-one-batch-after-restart]
//                                     runs the pipe until killed; POINT says where it kills itself:
//                                     none (the test kills it), copied (the N-th time rows of a
//                                     partition reached ClickHouse, before the partition is saved
//                                     done), applied (after the N-th CDC batch reached ClickHouse,
//                                     before the checkpoint), confirming (at the N-th confirmation,
//                                     after the checkpoint, before the slot hears of it). With the
//                                     flag, a restarted pipe drops one batch of inserts (the
//                                     mutation check: verify must then find the checksums differ)
//   pg_crash_helper DIR verify        catches up, compares ClickHouse FINAL with PostgreSQL by row
//                                     count and an order-independent checksum, deletes the pipe
//
// DIR holds `pipe` (the pipe id), `tables` (one name per line), store/, `state` (the pipe's last
// state), `started` (the pid, once the pipe runs), `dropped` (the batch the mutation dropped, once
// confirmed), `mismatch` (from verify: one line per table whose checksums differ) and
// `violations`.
#include <signal.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <clickpipe/clickhouse/client.hpp>
#include <clickpipe/clickhouse/layout.hpp>
#include <clickpipe/clickhouse/tables.hpp>
#include <clickpipe/clickpipe.hpp>
#include <clickpipe/pg_to_clickhouse/executors.hpp>
#include <clickpipe/postgres/catalog.hpp>
#include <clickpipe/runtime/pipe_service.hpp>
#include <clickpipe/store/file_store.hpp>
#include <clickpipe/testing/faults.hpp>
#include <clickpipe/testing/helpers.hpp>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "../servers.hpp"
#include "checks.hpp"

using namespace std::chrono_literals;
using namespace clickpipe;

namespace {

crash::Dir dir;

// The servers ./scripts/test.sh started, from the variables it exports.
pg_to_clickhouse::Config config() {
  pg_to_clickhouse::Config c;
  try {
    c = test::config_from_environment(dir.read("pipe"));
  } catch (const InvalidField& e) {
    std::fprintf(stderr, "%s: run through ./scripts/test.sh\n", e.what());
    std::exit(2);
  }
  // A small memory budget makes modest transactions take the spill path.
  if (const std::string spill = dir.read("spill_bytes"); !spill.empty()) {
    c.stream.spill_bytes = c.stream.batch_bytes = std::stoull(spill);
  }
  return c;
}

std::vector<TableRef> tables() {
  std::vector<TableRef> out;
  std::istringstream in(dir.read("tables"));
  for (std::string t; std::getline(in, t);) {
    if (!t.empty()) out.push_back(TableRef{"public", t});
  }
  return out;
}

Settings settings() {
  Settings s;
  s.sync_interval = 100ms;
  s.pull_batch_size = 500;
  s.rows_per_partition = 5000;
  s.partitions_in_parallel = 2;
  testing::fast_retries(s, 20ms, 200ms);
  return s;
}

[[noreturn]] void die() {
  ::raise(SIGKILL);
  std::abort();
}

// Kills the process at the N-th time the chosen point is reached.
struct KillPoint {
  std::string point = "none";
  int nth = 0;
  std::atomic<int> seen{0};
  void reached(const char* here) {
    if (point == here && ++seen == nth) die();
  }
};

class KillingProgress final : public ProgressSink {
 public:
  KillingProgress(ProgressSink& inner, KillPoint& kill) : inner_(inner), kill_(kill) {}
  void rows_copied(const TableRef& t, std::uint32_t p, std::uint64_t rows) override {
    inner_.rows_copied(t, p, rows);
    kill_.reached("copied");
  }
  void note(std::string_view text) override { inner_.note(text); }

 private:
  ProgressSink& inner_;
  KillPoint& kill_;
};

class KillingCopier final : public crash::ForwardingCopier {
 public:
  KillingCopier(std::shared_ptr<SnapshotCopier> inner, KillPoint& kill)
      : ForwardingCopier(std::move(inner)), kill_(kill) {}
  std::uint64_t copy_partition(const TableDefinition& t, const Partition& p, TableTarget target,
                               ExecContext& ctx) override {
    KillingProgress progress(ctx.progress, kill_);
    ExecContext mine{ctx.stop, progress, ctx.log, ctx.settings, ctx.pipe_id};
    return ForwardingCopier::copy_partition(t, p, target, mine);
  }

 private:
  KillPoint& kill_;
};

class KillingStreamer final : public CdcStreamer {
 public:
  KillingStreamer(std::shared_ptr<CdcStreamer> inner, KillPoint& kill)
      : inner_(std::move(inner)), kill_(kill) {}
  Lsn start(std::optional<Lsn> confirmed, std::span<const TableDefinition> t,
            ExecContext& ctx) override {
    return inner_->start(confirmed, t, ctx);
  }
  CdcBatch pull(ExecContext& ctx) override { return inner_->pull(ctx); }
  void apply(const CdcBatch& batch, ExecContext& ctx) override {
    inner_->apply(batch, ctx);
    // What this process did on the paths the test must see taken.
    const auto n = pg_to_clickhouse::counters();
    const std::string pid = std::to_string(::getpid());
    dir.write("toast." + pid, std::to_string(n.unchanged_toast_refilled));
    dir.write("spilled." + pid, std::to_string(n.transactions_spilled));
    if (!batch.changes.empty()) kill_.reached("applied");
  }
  void confirm(Lsn position, ExecContext& ctx) override {
    kill_.reached("confirming");
    inner_->confirm(position, ctx);
  }
  void stop(ExecContext& ctx) override { inner_->stop(ctx); }

 private:
  std::shared_ptr<CdcStreamer> inner_;
  KillPoint& kill_;
};

class StateNotes final : public TransitionListener {
 public:
  void on_transition(const TransitionEvent& e) override {
    dir.write("state", std::string(to_string(e.transition.to)));
  }
};

// With `drop_after_restart`, the pipe drops one batch if the store already held it (a restart).
std::unique_ptr<PipeService> open_service(KillPoint& kill, bool drop_after_restart = false) {
  std::shared_ptr<StateStore> store = FileStore::open(dir.path + "/store");
  const LoadResult loaded = store->load_all();
  const std::set<std::string> done = crash::check_saved_records(loaded, dir);
  const bool drop = drop_after_restart && !loaded.records.empty();
  auto faults = std::make_shared<testing::FaultPlan>();
  faults->delay(testing::op::copy_partition, 150ms);  // a load long enough to be killed in
  ServiceOptions o;
  o.store = store;
  o.logger =
      std::make_shared<spdlog::logger>("crash", std::make_shared<spdlog::sinks::null_sink_mt>());
  o.listeners = {std::make_shared<StateNotes>()};
  const pg_to_clickhouse::Config cfg = config();
  o.executors = [cfg, faults, done, drop, &kill](const std::string&, Mode) {
    Executors ex = pg_to_clickhouse::make_executors(cfg);
    ex.snapshot = std::make_shared<crash::DonePartitionGuard>(
        std::make_shared<KillingCopier>(ex.snapshot, kill), done, dir);
    if (drop) ex.cdc = std::make_shared<crash::DropOneBatch>(ex.cdc, dir);
    ex.cdc = std::make_shared<KillingStreamer>(ex.cdc, kill);
    return testing::with_faults(ex, faults);
  };
  auto service = std::make_unique<PipeService>(o);
  const std::string id = dir.read("pipe");
  if (!service->get(id)) {
    service->create(PipeConfig{id, Mode::InitialLoadAndCdc, tables(), settings()});
  }
  dir.write("state", std::string(to_string(service->get(id)->state())));
  return service;
}

int run(const std::string& point, int nth, bool drop_after_restart) {
  KillPoint kill;
  kill.point = point;
  kill.nth = nth;
  auto service = open_service(kill, drop_after_restart);
  dir.write("started", std::to_string(::getpid()));
  std::this_thread::sleep_for(120s);  // killed long before
  return 3;
}

// Row count and the sum of a 64-bit hash of every row's columns: equal on both sides when the
// tables hold the same rows, whatever the order.
struct Tally {
  std::uint64_t rows = 0;
  std::uint64_t checksum = 0;
  void add(const std::vector<std::optional<std::string>>& row) {
    std::uint64_t h = 1469598103934665603ull;
    for (const auto& v : row) {
      const std::string field = v ? *v + '\x1f' : std::string("\\N\x1e");
      for (unsigned char c : field) h = (h ^ c) * 1099511628211ull;
    }
    ++rows;
    checksum += h;
  }
  bool operator==(const Tally&) const = default;
};

Tally source_tally(postgres::Connection& pg, const std::string& t) {
  Tally out;
  // Decimals without trailing zeros: ClickHouse 26 prints 1.5 where PostgreSQL and 18.16 print
  // 1.50 (see destination_tally).
  postgres::Result r = pg.exec("SELECT id::text, v, n::text, trim_scale(amount)::text, doc FROM " +
                               postgres::qualified(pg, TableRef{"public", t}));
  for (int i = 0; i < r.rows(); ++i) {
    std::vector<std::optional<std::string>> row;
    for (int c = 0; c < 5; ++c) {
      row.push_back(r.is_null(i, c) ? std::nullopt : std::optional<std::string>(r.value(i, c)));
    }
    out.add(row);
  }
  return out;
}

Tally destination_tally(const pg_to_clickhouse::Config& cfg, postgres::Connection& pg,
                        const std::string& t) {
  clickhouse::Client ch(cfg.destination);
  const TableRef ref{"public", t};
  TableDefinition def = postgres::read_definitions(pg, std::span(&ref, 1)).at(0);
  def.columns.resize(5);  // id, v, n, amount, doc: the columns source_tally reads
  Tally out;
  const auto layout =
      clickhouse::layout_for(def, pg_to_clickhouse::destination_table(ref), ch.version());
  for (auto row : clickhouse::read_final(ch, layout)) {
    if (auto& amount = row.at(3); amount && amount->find('.') != std::string::npos) {
      while (amount->back() == '0') amount->pop_back();
      if (amount->back() == '.') amount->pop_back();
    }
    out.add(row);
  }
  return out;
}

int verify() {
  KillPoint none;
  auto service = open_service(none);
  Pipe* pipe = service->get(dir.read("pipe"));
  if (!pipe->wait_for(State::Running, 120s)) {
    std::fprintf(stderr, "the pipe did not reach Running: %s\n",
                 std::string(to_string(pipe->state())).c_str());
    return 1;
  }
  const pg_to_clickhouse::Config cfg = config();
  postgres::Connection pg = postgres::Connection::open(cfg.source);
  // The writes have stopped: everything up to here must arrive.
  const Lsn head = *parse_lsn(pg.exec("SELECT pg_current_wal_insert_lsn()::text").value(0, 0));
  const auto deadline = std::chrono::steady_clock::now() + 200s;
  while (pipe->status().cdc.confirmed < head && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  int bad = 0;
  if (const PipeStatus st = pipe->status(); st.cdc.confirmed < head) {
    std::fprintf(stderr, "did not catch up with %s: confirmed %s, state %s, last error: %s%s%s\n",
                 to_string(head).c_str(),
                 st.cdc.confirmed ? to_string(*st.cdc.confirmed).c_str() : "-",
                 std::string(to_string(st.state)).c_str(),
                 st.last_error ? st.last_error->message.c_str() : "none",
                 st.retry ? ", retrying: " : "", st.retry ? st.retry->last_error.c_str() : "");
    ++bad;
  }
  std::string mismatch;
  for (const TableRef& t : tables()) {
    const Tally src = source_tally(pg, t.name);
    const Tally dst = destination_tally(cfg, pg, t.name);
    const std::string line = fmt::format(
        "{}: PostgreSQL {} rows (checksum {:016x}), ClickHouse FINAL {} rows (checksum {:016x})",
        t.name, src.rows, src.checksum, dst.rows, dst.checksum);
    std::printf("%s\n", line.c_str());
    if (!(src == dst)) {
      ++bad;
      mismatch += line + "\n";
    }
  }
  dir.write("mismatch", mismatch);
  for (const StoppedTable& st : pipe->status().stopped_tables) {
    std::fprintf(stderr, "stopped table: %s\n", st.reason.c_str());
    ++bad;
  }
  const std::string v = dir.read("violations");
  if (!v.empty()) {
    std::fprintf(stderr, "violations:\n%s", v.c_str());
    ++bad;
  }
  // Delete the pipe: its slot and publication go with it.
  pipe->remove();
  if (!pipe->wait_for(State::Terminated, 60s)) {
    std::fprintf(stderr, "delete did not finish\n");
    ++bad;
  }
  std::printf("%s\n", bad ? "MISMATCH" : "OK");
  return bad ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  constexpr const char* kUsage =
      "usage: pg_crash_helper DIR run POINT N [--drop-one-batch-after-restart] | verify\n";
  if (argc < 3) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  dir.path = argv[1];
  spdlog::set_level(spdlog::level::off);
  const std::string mode = argv[2];
  if (mode == "run" && (argc == 5 || argc == 6)) {
    const bool drop = argc == 6 && std::string(argv[5]) == "--drop-one-batch-after-restart";
    if (argc == 6 && !drop) {
      std::fprintf(stderr, "unknown option %s\n%s", argv[5], kUsage);
      return 2;
    }
    return run(argv[3], std::atoi(argv[4]), drop);
  }
  if (mode == "verify") return verify();
  std::fprintf(stderr, "%s", kUsage);
  return 2;
}
