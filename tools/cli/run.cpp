#include "run.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "clickpipe/cluster/worker.hpp"
#include "clickpipe/runtime/pipe_service.hpp"
#include "clickpipe/store/file_store.hpp"
#include "cluster_store.hpp"
#include "commands.hpp"
#include "control.hpp"
#include "http_api.hpp"
#include "slot_monitor.hpp"
#include "telemetry.hpp"

namespace clickpipe::cli {

using namespace std::chrono_literals;
using nlohmann::json;

namespace {

volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

// Provisioning shared by the pipes that use the same servers, as the spec has it: the first pipe
// checks them, the others reuse that (and provision at once). A failed check is not remembered,
// so the next pipe checks again.
class SharedProvisioner final : public Provisioner {
 public:
  struct Shared {
    std::mutex mu;
    std::string done_by;  // the pipe whose provisioning succeeded; empty until one did
  };
  SharedProvisioner(std::shared_ptr<Provisioner> inner, std::shared_ptr<Shared> shared)
      : inner_(std::move(inner)), shared_(std::move(shared)) {}

  void provision(const PipeInfo& pipe, ExecContext& ctx) override {
    std::lock_guard lk(shared_->mu);  // a second pipe waits for the first one's check
    if (!shared_->done_by.empty() && shared_->done_by != pipe.id) {
      ctx.progress.note("servers already provisioned by pipe " + shared_->done_by);
      return;
    }
    inner_->provision(pipe, ctx);
    shared_->done_by = pipe.id;
  }

 private:
  std::shared_ptr<Provisioner> inner_;
  std::shared_ptr<Shared> shared_;
};

// The servers a pipe uses, as a key: pipes with equal keys share provisioning.
std::string servers_key(const pg_to_clickhouse::Config& c) {
  return json{c.source.host,     c.source.port,          c.source.dbname,   c.source.user,
              c.destination.url, c.destination.database, c.destination.user}
      .dump();
}

}  // namespace

int run(const CliConfig& cfg, const RunOptions& options) {
  const std::shared_ptr<spdlog::logger> log = make_logger(options.log);
  const bool cluster_mode = cfg.pg_store.has_value();
  std::filesystem::path status_dir;
  std::filesystem::path control;
  ServiceOptions o;
  if (!cluster_mode) {
    // The store makes its own directory private (0700) and refuses one that is not, so only the
    // parents are made here; the control and status directories inside are made and checked
    // alike.
    std::filesystem::path store_path = std::filesystem::path(cfg.store).lexically_normal();
    if (!store_path.has_filename()) store_path = store_path.parent_path();  // a trailing slash
    if (store_path.has_parent_path()) std::filesystem::create_directories(store_path.parent_path());
    o.store = FileStore::open(cfg.store);
    control = control_dir(cfg.store);
    make_control_dir(control);
    status_dir = std::filesystem::path(cfg.store) / "status";
    make_private_dir(status_dir, "status directory");
  }

  // The token for POSTs, checked before anything starts: a bad --listen changes nothing.
  std::optional<HttpOptions> http;
  if (options.listen) {
    std::optional<std::string> token;
    if (const char* t = std::getenv("CLICKPIPE_API_TOKEN"); t && *t) token = t;
    http = parse_listen(*options.listen, options.listen_remote, token);
  }

  auto telemetry = std::make_shared<Telemetry>();
  o.logger = log;
  o.listeners = {std::make_shared<LogListener>(log), telemetry};
  std::map<std::string, const PipeEntry*> entries;
  std::map<std::string, std::shared_ptr<SharedProvisioner::Shared>> provisioning;
  for (const PipeEntry& e : cfg.pipes) {
    entries[e.pipe.id] = &e;
    auto& shared = provisioning[servers_key(e.executors)];
    if (!shared) shared = std::make_shared<SharedProvisioner::Shared>();
  }
  o.executors = [&](const std::string& id, Mode) {
    auto it = entries.find(id);
    if (it == entries.end()) {
      throw std::runtime_error("pipe " + id +
                               " is in the store but in none of the config files: add it back "
                               "to run it (its record is kept)");
    }
    Executors ex = pg_to_clickhouse::make_executors(it->second->executors);
    ex.provisioner = std::make_shared<SharedProvisioner>(
        ex.provisioner, provisioning.at(servers_key(it->second->executors)));
    return ex;
  };

  std::unique_ptr<PipeService> local;
  std::unique_ptr<cluster::ClusterWorker> worker;
  std::unique_ptr<cluster::PgStore> client;  // sends commands for pipes other workers run
  if (cluster_mode) {
    cluster::PgStoreOptions so = *cfg.pg_store;
    if (http) so.address = http->host + ":" + std::to_string(http->port);
    cluster::WorkerOptions wo;
    wo.store = cluster::PgStore::open(so);  // creates or migrates the schema
    client = cluster::PgStore::attach(so);
    wo.service = o;
    for (const PipeEntry& e : cfg.pipes) wo.pipes.push_back(e.pipe);
    wo.on_command = [](PipeService& service, const std::string& id, const std::string& body) {
      const json parsed = json::parse(body, nullptr, false);
      return execute_command(service, id, parsed.is_object() ? parsed : json::object()).dump();
    };
    wo.exclusive = with_commands_lock;
    wo.on_event = [log](const cluster::WorkerEvent& e) {
      using K = cluster::WorkerEvent::Kind;
      const auto level = e.kind == K::Error || e.kind == K::Broken       ? spdlog::level::err
                         : e.kind == K::Fenced || e.kind == K::LeaseLost ? spdlog::level::warn
                                                                         : spdlog::level::info;
      log_event(*log, level, e.pipe, "worker_" + std::string(cluster::to_string(e.kind)), e.message,
                json::object());
    };
    worker = std::make_unique<cluster::ClusterWorker>(std::move(wo));
  } else {
    local = std::make_unique<PipeService>(o);
  }
  PipeService& service = cluster_mode ? worker->service() : *local;
  // Bound before any pipe is created: a port in use stops the run with nothing new made.
  std::unique_ptr<HttpApi> api;
  if (http) {
    if (cluster_mode) {
      // Each forward holds one of the API's few threads while it waits for the owner: at most
      // two at once, so status and metrics stay answered.
      auto in_flight = std::make_shared<std::atomic<int>>(0);
      http->forward = [&client, in_flight](const std::string& id, const json& body) {
        if (in_flight->fetch_add(1) >= 2) {
          in_flight->fetch_sub(1);
          return json{{"status", "unavailable"},
                      {"message",
                       "two commands for other workers' pipes are on their way "
                       "already; try again"}};
        }
        json r = send_through_store(*client, id, body);
        in_flight->fetch_sub(1);
        return r;
      };
    }
    api = std::make_unique<HttpApi>(service, *telemetry, *http, log);
  }
  for (const auto& b : service.broken()) {
    log_event(*log, spdlog::level::err, b.name, "broken_record",
              "record cannot be read and is not run: " + b.reason, json{{"reason", b.reason}});
  }
  if (!cluster_mode) {
    for (const PipeEntry& e : cfg.pipes) {
      // A broken record keeps its id taken; the other pipes run all the same.
      const bool broken = std::any_of(service.broken().begin(), service.broken().end(),
                                      [&](const BrokenRecord& b) { return b.name == e.pipe.id; });
      if (!broken && !service.get(e.pipe.id)) service.create(e.pipe);
    }
  }
  // Tables one pipe adds must stay out of the others' ClickHouse tables (a resync or a delete of
  // one would swap or drop them): checked against what each pipe holds now, not the config. With
  // a shared store that is every pipe in it, whichever worker runs it.
  auto holdings = [&service, &client] {
    std::vector<std::pair<std::string, std::vector<TableRef>>> out;
    if (client) {
      for (const PipeRecord& r : client->load_all().records) out.emplace_back(r.id, r.tables);
    } else {
      for (const PipeStatus& s : service.statuses()) out.emplace_back(s.id, s.tables);
    }
    return out;
  };
  auto apart = [&entries, holdings](const std::string& id, const std::vector<TableRef>& adding,
                                    const std::string& field) {
    const auto mine = entries.find(id);
    if (mine == entries.end()) return;
    for (const auto& [other_id, tables] : holdings()) {
      const auto other = entries.find(other_id);
      if (other_id == id || other == entries.end() ||
          !same_destination(mine->second->executors.destination,
                            other->second->executors.destination)) {
        continue;
      }
      check_tables_apart(id, adding, other_id, tables, field);
    }
  };
  set_table_check([apart](const std::string& id, const std::vector<TableRef>& adding) {
    apart(id, adding, "tables");
  });
  // Pipes saved before this check (or by another config) may already share one: said loudly.
  for (const auto& [id, tables] : holdings()) {
    try {
      apart(id, tables, "tables");
    } catch (const InvalidField& e) {
      log_event(*log, spdlog::level::err, id, "table_clash", e.what(), json::object());
    }
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // Only now, with the API bound and the checks set, does the worker join and take pipes.
  if (worker) worker->start();

  // The slots of pipes that keep one, read from their sources every 10 s in every state.
  std::map<std::string, postgres::ConnectionSettings> sources;
  for (const PipeEntry& e : cfg.pipes) {
    if (e.pipe.mode != Mode::SnapshotOnly) sources[e.pipe.id] = e.executors.source;
  }
  SlotMonitor slots(sources, *telemetry, log);

  json started{{"store", cfg.store}, {"pipes", json::array()}};
  if (cluster_mode) started["worker"] = worker->worker_id();
  for (const PipeEntry& e : cfg.pipes) started["pipes"].push_back(e.pipe.id);
  if (api) started["listen"] = http->host + ":" + std::to_string(api->port());
  log_event(*log, spdlog::level::info, "", "started",
            cluster_mode ? "worker of a shared store, for " + std::to_string(cfg.pipes.size()) +
                               " pipe(s); SIGINT or SIGTERM hands its pipes over"
                         : "running " + std::to_string(cfg.pipes.size()) +
                               " pipe(s); SIGINT or SIGTERM stops them, a later run resumes them",
            started);

  ProgressLog progress(log);
  std::unique_ptr<CommandInbox> inbox;
  if (!cluster_mode) inbox = std::make_unique<CommandInbox>(service, control, log);
  std::string publish_error;  // the last one logged, so a lasting problem is logged once
  auto sample = [&] {
    reap_terminated(service);
    const std::vector<PipeStatus> statuses = service.statuses();
    telemetry->refresh(statuses, service.broken());
    if (!cluster_mode) {
      if (std::string err = telemetry->publish(status_dir); err != publish_error) {
        if (!err.empty())
          log_event(*log, spdlog::level::warn, "", "status_not_published", err, json::object());
        publish_error = err;
      }
    }
    progress.log_if_due(statuses, std::chrono::system_clock::now());
  };
  auto last_sample = std::chrono::steady_clock::now() - 1h;
  while (!stop_requested) {
    if (inbox) inbox->answer();  // never throws: nothing planted in control/ stops the pipes
    if (std::chrono::steady_clock::now() - last_sample >= 1s) {
      sample();
      last_sample = std::chrono::steady_clock::now();
    }
    std::this_thread::sleep_for(200ms);
  }
  log_event(*log, spdlog::level::info, "", "stopping",
            cluster_mode ? "draining: each pipe stopped, saved and handed over"
                         : "stopping: saving and joining",
            json::object());
  api.reset();               // no command arrives while the pipes stop
  set_table_check(nullptr);  // it holds the service
  if (worker) {
    worker->drain();
  } else {
    service.shutdown();
    // No live status survives the process: `clickpipe status` reads the saved records again.
    telemetry->refresh({}, {});
    telemetry->publish(status_dir);
  }
  log->flush();
  return 0;
}

}  // namespace clickpipe::cli
