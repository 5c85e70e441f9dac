// PipeService: many pipes in one process, over one store.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "clickpipe/runtime/pipe.hpp"
#include "clickpipe/store/state_store.hpp"

namespace clickpipe {

// Makes the executors of one pipe. Share what the pipes of a service share (the provisioner's
// infrastructure, connection pools) inside the factory.
using ExecutorFactory = std::function<Executors(const std::string& pipe_id, Mode mode)>;

struct ServiceOptions {
  std::shared_ptr<StateStore> store;  // required
  ExecutorFactory executors;          // required
  // Each pipe logs through a clone named "<name>:<pipe id>" (sharing its sinks); default: a clone
  // of spdlog's default logger named "clickpipe".
  std::shared_ptr<spdlog::logger> logger;
  std::shared_ptr<Clock> clock;
  std::shared_ptr<HealthPolicy> health;
  std::size_t max_concurrent_partitions = 0;                   // across all pipes; 0: no bound
  std::vector<std::shared_ptr<TransitionListener>> listeners;  // given to every pipe
  // Whether the service runs every pipe in the store when it starts (one process, one store).
  // false: it starts empty and runs what it is given through adopt() (a cluster worker runs only
  // the pipes it holds a lease on).
  bool restore = true;
};

// Threading: every member function may be called from any thread, except from a pipe's listener
// (it may wait for pipes).
class PipeService {
 public:
  // Loads the store and restores every pipe in it, then starts them: each resumes where it was
  // (see docs/durability.md). Records that cannot be read are reported by broken(), not run.
  explicit PipeService(ServiceOptions options);
  ~PipeService();
  PipeService(const PipeService&) = delete;
  PipeService& operator=(const PipeService&) = delete;

  // Creates, saves and starts a pipe. Throws InvalidField for a bad config and StoreError when
  // the id is taken (a broken record keeps its id taken: it is never overwritten).
  Pipe& create(PipeConfig config);
  // Restores a saved pipe and starts it, as the constructor does for each record (the store
  // must let this process save it). Throws StoreError (AlreadyExists) when the service runs it
  // already, InvalidField for a record whose id or config is not valid.
  // A record of a Terminated pipe (a delete that ended before its record could be removed) is
  // removed instead, and nullptr returned.
  Pipe* adopt(const PipeRecord& record);
  // Stops a pipe (its saved record stays as it is, for another process to resume) and forgets
  // it; false when there is no such pipe. Do not call it while another thread uses the Pipe.
  bool release(const std::string& id);
  // nullptr when there is no such pipe. The pointer stays valid until the pipe is Terminated and
  // a later call to the service forgets it.
  Pipe* get(const std::string& id);
  std::vector<std::string> list();
  // The delete command; the record leaves the store once the pipe is Terminated.
  CommandResult remove(const std::string& id, DeleteOptions options = {});

  const std::vector<BrokenRecord>& broken() const noexcept { return broken_; }
  // The most partitions that copied at once under max_concurrent_partitions (0 without a bound).
  std::size_t peak_concurrent_partitions() const { return limit_ ? limit_->peak() : 0; }
  // As JSON: service_status_json(statuses(), broken()) in clickpipe/json.hpp.
  std::vector<PipeStatus> statuses();
  // Stops every pipe (each keeps its saved state) and joins their threads. A later service on the
  // same store resumes them.
  void shutdown();

 private:
  PipeOptions pipe_options(const std::string& id);
  void reap();                                     // forgets pipes that reached Terminated
  Pipe& start_locked(std::unique_ptr<Pipe> pipe);  // under mu_

  ServiceOptions options_;
  std::shared_ptr<ConcurrencyLimit> limit_;
  std::shared_ptr<TransitionListener> reaper_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Pipe>> pipes_;
  std::vector<BrokenRecord> broken_;
};

}  // namespace clickpipe
