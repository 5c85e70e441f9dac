// Scale-out figures (docs/scale-out.md), against the PostgreSQL of bench/cluster_bench.sh:
//   1. takeover: two worker processes share the pipes (in-memory executors); the owner of some is
//      SIGKILLed, and the time until the other has claimed all of them is measured, over --kills
//      kills (default 100; a fresh worker replaces each one killed). p50/p99, next to the lease.
//   2. save latency: a pipe's record saved to a PgStore and to a FileStore (fsync of file and
//      directory) in the same run, alternating; p50/p99 and the ratio.
//   3. the coordination's cost: a worker's lease renewal plus one step of its loop (the cluster
//      view and the commands it polls for) with N pipes in the store, as CPU time of the worker
//      thread and of the database's backends; from it, the pipes per worker at which that traffic
//      costs 1 % of one core at the default lease (10 s: renewal every 2.5 s, a step every 1 s).
//
//   clickpipe_bench_cluster [--kills N] [--lease-ms L]
//   clickpipe_bench_cluster worker SCHEMA LEASE_MS PIPES   (what part 1 starts; runs until killed)
#include <signal.h>
#include <spawn.h>
#include <spdlog/sinks/null_sink.h>
#include <sys/wait.h>
#include <unistd.h>
#include <clickpipe/clickpipe.hpp>
#include <clickpipe/cluster/worker.hpp>
#include <clickpipe/store/file_store.hpp>
#include <clickpipe/testing/memory_executors.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "common.hpp"
#include "servers.hpp"

using namespace std::chrono_literals;
using namespace clickpipe;
using bench::since;
using bench::Steady;

extern char** environ;

namespace {

std::string self;

cluster::PgStoreOptions store_options(const std::string& schema, std::chrono::milliseconds lease) {
  cluster::PgStoreOptions o;
  o.connection = test::postgres_settings();
  o.schema = schema;
  o.lease = lease;
  return o;
}

int worker(const std::string& schema, long lease_ms, int pipes) {
  testing::MemoryWorld w;
  auto idle = std::make_shared<testing::IdleCdcStreamer>();
  for (int i = 0; i < pipes; ++i) {
    w.source->create_table(bench::two_column_table("t" + std::to_string(i)));
  }
  cluster::WorkerOptions o;
  o.store = cluster::PgStore::open(store_options(schema, std::chrono::milliseconds(lease_ms)));
  o.service.logger = bench::quiet();
  o.service.executors = [&](const std::string& id, Mode) {
    Executors ex = w.executors(id);
    ex.cdc = idle;
    return ex;
  };
  o.on_event = [](const cluster::WorkerEvent&) {};
  for (int i = 0; i < pipes; ++i) {
    PipeConfig c{"p" + std::to_string(i),
                 Mode::InitialLoadAndCdc,
                 {TableRef{"public", "t" + std::to_string(i)}},
                 {}};
    o.pipes.push_back(c);
  }
  cluster::ClusterWorker cw(std::move(o));
  cw.start();
  for (;;) std::this_thread::sleep_for(1h);
}

pid_t spawn_worker(const std::string& schema, long lease_ms, int pipes) {
  std::vector<std::string> args{self, "worker", schema, std::to_string(lease_ms),
                                std::to_string(pipes)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  bench::must(posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ) == 0,
              "spawn a worker");
  return pid;
}

void drop_schema(const std::string& schema) {
  auto c = postgres::Connection::open(test::postgres_settings());
  c.exec("SET client_min_messages = warning");
  c.exec("DROP SCHEMA IF EXISTS " + c.identifier(schema) + " CASCADE");
}

// Which live worker owns each pipe (0: none live).
std::map<std::string, std::uint64_t> owners(cluster::PgStore& store) {
  std::map<std::string, std::uint64_t> out;
  for (const auto& o : store.owners()) out[o.id] = o.owner.value_or(0);
  return out;
}

void takeover(int kills, std::chrono::milliseconds lease) {
  const std::string schema = "cp_bench_takeover";
  drop_schema(schema);
  constexpr int kPipes = 4;
  auto store = cluster::PgStore::open(store_options(schema, lease));
  std::map<std::uint64_t, pid_t> by_id;  // worker id -> process
  std::vector<pid_t> procs{spawn_worker(schema, lease.count(), kPipes),
                           spawn_worker(schema, lease.count(), kPipes)};
  auto learn_ids = [&] {
    // A worker's id is whatever joined after it started: match by name (host:pid).
    for (const auto& w : store->workers()) {
      const auto colon = w.name.rfind(':');
      if (colon == std::string::npos) continue;
      const pid_t pid = static_cast<pid_t>(std::stol(w.name.substr(colon + 1)));
      if (w.live) by_id[w.id] = pid;
    }
  };
  auto balanced = [&] {
    const auto own = owners(*store);
    std::map<std::uint64_t, int> count;
    for (const auto& [p, w] : own) ++count[w];
    return own.size() == kPipes && !count.count(0) && count.size() == 2;
  };
  std::vector<double> took;
  const auto t_all = Steady::now();
  for (int k = 0; k < kills; ++k) {
    const auto t_wait = Steady::now();
    while (!balanced()) {
      bench::must(since(t_wait) < 60, "the workers never shared the pipes");
      std::this_thread::sleep_for(20ms);
    }
    learn_ids();
    const auto own = owners(*store);
    const std::uint64_t victim = own.begin()->second;
    bench::must(by_id.count(victim) > 0, "the owner's process is unknown");
    const pid_t pid = by_id.at(victim);
    ::kill(pid, SIGKILL);
    const auto t0 = Steady::now();
    waitpid(pid, nullptr, 0);
    for (;;) {
      bool moved = true;
      for (const auto& [p, w] : owners(*store)) moved = moved && w != 0 && w != victim;
      if (moved) break;
      bench::must(since(t0) < 60, "the pipes were never taken over");
      std::this_thread::sleep_for(5ms);
    }
    took.push_back(since(t0) * 1000);
    std::erase(procs, pid);
    procs.push_back(spawn_worker(schema, lease.count(), kPipes));
    if ((k + 1) % 10 == 0) {
      std::printf("  %d kills, %.0f s\n", k + 1, since(t_all));
      std::fflush(stdout);
    }
  }
  for (pid_t p : procs) {
    ::kill(p, SIGKILL);
    waitpid(p, nullptr, 0);
  }
  std::printf("takeover after SIGKILL (%d kills, %d pipes on 2 workers, lease %lld ms):\n", kills,
              kPipes, static_cast<long long>(lease.count()));
  std::printf("  p50 %.0f ms  p99 %.0f ms  max %.0f ms  (p50 = lease x %.2f)\n",
              bench::percentile(took, 0.5), bench::percentile(took, 0.99),
              bench::percentile(took, 1.0), bench::percentile(took, 0.5) / lease.count());
  drop_schema(schema);
}

PipeRecord typical_record(const std::string& id) {
  PipeRecord r;
  r.id = id;
  for (int t = 0; t < 10; ++t) {
    const TableRef ref{"public", "table_" + std::to_string(t)};
    r.tables.push_back(ref);
    TableLoadRecord l{ref, {}, {}, 0};
    for (std::uint32_t p = 0; p < 10; ++p) {
      l.partitions.push_back(
          Partition{p, std::to_string(p * 1000), std::to_string(p * 1000 + 1000), 1000});
      l.done.push_back(p);
    }
    r.load.push_back(l);
  }
  r.confirmed = Lsn(1);
  return r;
}

void save_latency() {
  const std::string schema = "cp_bench_save";
  drop_schema(schema);
  auto pg = cluster::PgStore::open(store_options(schema, 10s));
  pg->join();
  const auto dir =
      std::filesystem::temp_directory_path() / ("cp_bench_files_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto files = FileStore::open(dir.string());
  PipeRecord r = typical_record("orders");
  pg->save(r);
  files->save(r);
  constexpr int kSaves = 1000;
  std::vector<double> pg_ms, file_ms;
  for (int i = 0; i < kSaves; ++i) {
    r.confirmed = Lsn(static_cast<std::uint64_t>(i) + 2);
    r.cdc_changes = static_cast<std::uint64_t>(i);
    auto t = Steady::now();
    pg->save(r);
    pg_ms.push_back(since(t) * 1000);
    t = Steady::now();
    files->save(r);
    file_ms.push_back(since(t) * 1000);
  }
  std::printf("save of a record with 10 tables x 10 partitions (%d saves each, alternating):\n",
              kSaves);
  std::printf("  PgStore    p50 %.3f ms  p99 %.3f ms\n", bench::percentile(pg_ms, 0.5),
              bench::percentile(pg_ms, 0.99));
  std::printf("  FileStore  p50 %.3f ms  p99 %.3f ms%s\n", bench::percentile(file_ms, 0.5),
              bench::percentile(file_ms, 0.99), bench::tmpfs_warning(dir.string()).c_str());
  std::printf("  PgStore / FileStore at p50: %.2f\n",
              bench::percentile(pg_ms, 0.5) / bench::percentile(file_ms, 0.5));
  pg->leave();
  files.reset();
  std::filesystem::remove_all(dir);
  drop_schema(schema);
}

double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// CPU time (ms) of the database's backends serving clickpipe stores, from /proc.
double backends_cpu_ms(postgres::Connection& c) {
  auto r = c.exec("SELECT pid FROM pg_stat_activity WHERE application_name = 'clickpipe-store'");
  double total = 0;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  for (int i = 0; i < r.rows(); ++i) {
    std::ifstream in("/proc/" + std::string(r.value(i, 0)) + "/stat");
    std::string line;
    std::getline(in, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    std::vector<std::string> f;
    while (rest >> field) f.push_back(field);
    if (f.size() > 12) total += (std::stod(f[11]) + std::stod(f[12])) * 1000.0 / tick;
  }
  return total;
}

void coordination_cost() {
  const std::string schema = "cp_bench_coord";
  std::printf(
      "coordination per worker (a renewal + a loop step), CPU of worker thread + backends:\n");
  auto probe = postgres::Connection::open(test::postgres_settings());
  double last_per_pipe = 0, last_fixed = 0;
  std::vector<std::pair<int, double>> points;
  for (int n : {10, 100, 1000, 10000}) {
    drop_schema(schema);
    auto store = cluster::PgStore::open(store_options(schema, 10s));
    store->join();
    for (int i = 0; i < n; ++i) store->save(typical_record("p" + std::to_string(i)));
    // One step of ClusterWorker's loop without pipes to run: the view and the command poll, as
    // often as a worker does them, plus the lease renewals the store's thread sends.
    constexpr int kSteps = 200;
    const double b0 = backends_cpu_ms(probe), c0 = thread_cpu_ms();
    const auto t0 = Steady::now();
    for (int s = 0; s < kSteps; ++s) {
      store->view();
      store->take_commands();
    }
    const double steps_wall = since(t0);
    const double cpu = (thread_cpu_ms() - c0) + (backends_cpu_ms(probe) - b0);
    const double per_step = cpu / kSteps;
    // At the default lease: 1 step per second, a renewal every 2.5 s (a renewal costs about a
    // step's fixed part; counted as one more step per 2.5 s to stay on the safe side).
    const double per_second = per_step * (1.0 + 1.0 / 2.5);
    std::printf("  %6d pipes: %.3f ms CPU per step (%.1f ms wall), %.2f %% of a core\n", n,
                per_step, steps_wall * 1000 / kSteps, per_second / 10.0);
    points.emplace_back(n, per_second);
    store->leave();
  }
  // Linear in the pipes: cost(n) = fixed + per_pipe * n, from the two largest points.
  const auto [n1, c1] = points[points.size() - 2];
  const auto [n2, c2] = points.back();
  last_per_pipe = (c2 - c1) / (n2 - n1);
  last_fixed = c2 - last_per_pipe * n2;
  if (last_per_pipe > 0) {
    std::printf("  1 %% of a core (10 ms/s) at about %.0f pipes per worker\n",
                (10.0 - last_fixed) / last_per_pipe);
  } else {
    std::printf("  no growth with the pipes measured\n");
  }
  drop_schema(schema);
}

}  // namespace

int main(int argc, char** argv) {
  self = argv[0];
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 4 && args[0] == "worker") {
      return worker(args[1], std::stol(args[2]), std::stoi(args[3]));
    }
    int kills = 100;
    long lease_ms = 1000;
    for (std::size_t i = 0; i + 1 < args.size(); i += 2) {
      if (args[i] == "--kills") kills = std::stoi(args[i + 1]);
      if (args[i] == "--lease-ms") lease_ms = std::stol(args[i + 1]);
    }
    save_latency();
    coordination_cost();
    takeover(kills, std::chrono::milliseconds(lease_ms));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clickpipe_bench_cluster: %s\n", e.what());
    return 1;
  }
}
