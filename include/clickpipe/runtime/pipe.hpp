// Pipe: one pipe's lifecycle run for real, on worker threads, driven by the transition table.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "clickpipe/clock.hpp"
#include "clickpipe/executors/executors.hpp"
#include "clickpipe/lifecycle/lifecycle.hpp"
#include "clickpipe/runtime/concurrency_limit.hpp"
#include "clickpipe/runtime/health.hpp"
#include "clickpipe/runtime/listener.hpp"
#include "clickpipe/settings.hpp"
#include "clickpipe/status.hpp"
#include "clickpipe/store/state_store.hpp"

namespace spdlog {
class logger;
}

namespace clickpipe {

struct PipeConfig {
  std::string id;
  Mode mode = Mode::InitialLoadAndCdc;
  std::vector<TableRef> tables;
  Settings settings;

  // Throws InvalidField naming the first bad field ("id", "tables[2].name", "settings....").
  // The id is 1 to 53 characters of a-z, 0-9 and _: it names the replication slot and the
  // publication `clickpipe_<id>`, and PostgreSQL's slot names take nothing else, at most 63
  // bytes. Checked when a pipe is created and again when one is loaded from a store.
  void validate() const;
};

struct PipeOptions {
  std::shared_ptr<spdlog::logger> logger;  // default: a clone of spdlog's default logger
  std::shared_ptr<Clock> clock;            // default: the system clock
  std::shared_ptr<HealthPolicy> health;    // default: none, so the pipe is never Degraded
  std::optional<std::uint64_t> seed;       // for backoff jitter; default: random
  // Where the pipe is saved; default: nowhere (the pipe lives as long as the process).
  std::shared_ptr<StateStore> store;
  // A bound on partitions copying at once, shared with other pipes; default: none.
  std::shared_ptr<ConcurrencyLimit> partition_limit;
};

struct DeleteOptions {
  bool drop_destination = false;  // drop the pipe's destination tables as well (default: keep)
};

// The answer to a command, given at once. Accepted: the transition was taken (its work goes on in
// the background; use wait_for to see its effect). Queued: issued from a listener, it runs when
// the listener returns (a refusal then reaches on_rejected). Rejected: not legal in this state,
// nothing changed. Invalid: bad arguments, nothing changed. Unavailable: the store could not save
// the change, so nothing changed; try again later.
struct CommandResult {
  enum class Status : std::uint8_t { Accepted, Queued, Rejected, Invalid, Unavailable };
  Status status = Status::Accepted;
  std::optional<Rejection> rejection;  // for Rejected
  std::string message;                 // for Rejected, Invalid and Unavailable

  bool accepted() const noexcept { return status == Status::Accepted || status == Status::Queued; }
  explicit operator bool() const noexcept { return accepted(); }
};

// Threading: every member function may be called from any thread. Commands are serialized: each
// is checked against the transition table and carried out under the pipe's lock, so none
// interleave. Work runs on a worker thread the pipe starts when its state has work and ends when
// it has none (an idle pipe holds no thread); snapshot partitions use more threads, up to the
// settings' parallelism. Destroying the pipe stops its work (as shutdown()) and joins its threads;
// do not destroy it from one of its own listeners.
class Pipe {
 public:
  // A new pipe, in Provisioning. The config is validated and the tables put to
  // TableSetup::check_tables before anything else (both throw InvalidField, before any executor
  // work). With a store, its first record is saved here (throws StoreError when that fails, or
  // when the store already holds the id).
  Pipe(PipeConfig config, Executors executors, PipeOptions options = {});
  // A saved pipe, put back as it was (no transition is taken). What the user last asked for is
  // carried out: a pipe meant to be paused or deleted is moved on that way before it starts.
  Pipe(const PipeRecord& record, Executors executors, PipeOptions options = {});
  ~Pipe();
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  // Begins the work of the current state (a new pipe: Provisioning). A store save that fails for
  // now is retried without end; one the store refuses for good (StoreError::transient() false)
  // stops the work where it is, with "the store cannot save: ..." in status(). start() again, or
  // a command whose save goes through, resumes it. A store that failed with
  // StoreErrorCode::Failed refuses every save until it is opened again, so for it only a new
  // Pipe over a reopened store (a process restart) helps; start() would redo work in vain.
  void start();
  // Stops all work and joins the workers without changing the state; start() resumes.
  void shutdown();

  CommandResult pause();
  CommandResult resume();
  CommandResult retry();
  CommandResult resync();
  // Invalid, too, when TableSetup::check_tables refuses the pipe's tables with these added.
  CommandResult add_tables(std::vector<TableRef> tables);
  CommandResult cancel_table_addition();
  CommandResult remove_tables(std::vector<TableRef> tables);
  CommandResult update_settings(Settings settings);
  // The `delete` command: the slot and publication are dropped; with drop_destination the
  // destination tables too (only those the executors made; Invalid when TableSetup cannot drop
  // any).
  CommandResult remove(DeleteOptions options = {});

  const std::string& id() const noexcept;
  State state() const;
  // Waits until the pipe is in `state`; false on timeout.
  bool wait_for(State state, std::chrono::milliseconds timeout) const;
  PipeStatus status() const;
  // The pipe as its store would hold it now.
  PipeRecord record() const;

  void add_listener(std::shared_ptr<TransitionListener> listener);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace clickpipe
