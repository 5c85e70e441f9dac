// ClusterWorker: one of many processes that share the pipes of a PgStore. It joins, takes its
// share of the pipes (ceil(pipes / live workers)), runs them in a PipeService, gives up what is
// over its share when workers join, takes over pipes whose owner's lease ran out, carries out
// the commands sent through the store for its pipes, and on drain() hands every pipe over at a
// safe point. The protocol is in docs/scale-out.md.
//
// Threading: the worker runs its loop on a thread of its own; every member function may be
// called from any thread but the pipes' listeners. Callbacks (on_command, on_event, exclusive)
// run on the loop thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "clickpipe/cluster/pg_store.hpp"
#include "clickpipe/runtime/pipe_service.hpp"

namespace clickpipe::cluster {

// What the worker did, for the host's logs and metrics.
struct WorkerEvent {
  enum class Kind : std::uint8_t {
    Joined,     // message: the worker id
    Created,    // a configured pipe that was in no store: made here
    Claimed,    // taken over (released by a draining worker, or its owner's lease ran out)
    Released,   // given up: over this worker's share, or draining
    Fenced,     // another worker owns it now: stopped here without writing
    LeaseLost,  // every pipe stopped; the worker joins again under a new id
    Broken,     // a claimed record that cannot be read: held, not run
    Error,      // a store call failed; the loop goes on
  };
  Kind kind;
  std::string pipe;  // empty for the worker as a whole
  std::string message;
};
std::string_view to_string(WorkerEvent::Kind kind) noexcept;

struct WorkerOptions {
  std::shared_ptr<PgStore> store;  // opened, not joined: the worker joins it
  // The service that runs this worker's pipes; its store and restore are set by the worker.
  ServiceOptions service;
  // Pipes to create when the store has no pipe of that id (whichever worker sees it first).
  std::vector<PipeConfig> pipes;
  // Carries out a command sent through the store for a pipe this worker runs; returns the
  // answer (JSON text). It runs outside `exclusive`: it guards the Pipe it uses as the host's
  // other command paths do. Default: every command is answered as invalid.
  std::function<std::string(PipeService&, const std::string& id, const std::string& body)>
      on_command;
  // Runs `f` while no other thread of the host uses a Pipe of the service (pipes are forgotten
  // inside it). Default: runs it.
  std::function<void(const std::function<void()>& f)> exclusive;
  // Default: logged through the service's logger.
  std::function<void(const WorkerEvent&)> on_event;
};

class ClusterWorker {
 public:
  // Takes nothing yet: start() joins. The service is there at once, for an HTTP API to be bound
  // before any pipe runs. Throws InvalidField for bad options.
  explicit ClusterWorker(WorkerOptions options);
  // Joins the store and starts the loop. Throws StoreError when joining fails.
  void start();
  // drain()
  ~ClusterWorker();
  ClusterWorker(const ClusterWorker&) = delete;
  ClusterWorker& operator=(const ClusterWorker&) = delete;

  PipeService& service() { return *service_; }
  std::uint64_t worker_id() const { return options_.store->worker_id(); }
  // Stops taking pipes, stops each pipe at a safe point (its record is saved), releases it and
  // leaves the cluster, so the others take the pipes over at once rather than after the lease.
  // Idempotent.
  void drain();

 private:
  void loop(std::stop_token stop);
  void step();
  void create_configured();
  void balance();
  void reconcile();
  void run_claim(const Claim& claim);
  void answer_commands();
  void drop_local(const std::string& id);  // stops and forgets, never releases
  void emit(WorkerEvent::Kind kind, const std::string& pipe, const std::string& message);

  WorkerOptions options_;
  std::unique_ptr<PipeService> service_;
  std::vector<PipeConfig> to_create_;
  // How long a pipe this worker could not run is left to the others.
  static constexpr std::chrono::seconds kSkipAfterRefusal{30};
  std::set<std::string> broken_;  // held, not run: their records cannot be read
  std::map<std::string, std::chrono::steady_clock::time_point> skip_until_;
  std::mutex drain_mu_;
  bool drained_ = false;
  std::jthread loop_;
};

}  // namespace clickpipe::cluster
