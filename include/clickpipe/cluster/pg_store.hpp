// PgStore: the StateStore of a cluster of workers, in a schema of a PostgreSQL database, with
// leases and fencing tokens. The protocol is in docs/scale-out.md.
//
// Each worker process opens one and joins: it gets a worker id (from a sequence, never reused)
// and a lease that a thread of the store renews every lease/4. A pipe row names its owner and
// a fencing token, a fresh value of the same sequence given at every change of owner. Every
// save, remove and release carries owner and token in its WHERE, together with "the owner's lease
// has not run out" by the database's clock, so a worker that lost its lease (paused, cut off,
// slow) can never overwrite what the pipe's new owner saved: its write matches no row, and it is
// told with StoreErrorCode::Fenced. Its own clock tells it sooner: check_writer() refuses once
// the lease may have run out (a steady-clock deadline, set before the renewal was sent), so the
// runtime stops before it writes to the destination.
//
// Saves are durable when they return (each is one committed statement; the session runs with
// synchronous_commit on whatever the server's default). Records are stored in the format
// FileStore writes (with its checksum), the token as their generation; a record of a newer
// format, or a schema newer than this build knows, is refused.
//
// Threading: every member function may be called from any thread. Saves share one connection,
// the lease its own, the rest (claims, commands, status) a third; the LISTEN connection belongs
// to whoever calls wait_for_notice (one thread).
//
// Errors: StoreError. Unavailable when the database cannot be reached or asks to retry;
// Refused when it refuses us (permissions, a bad schema) or a record cannot be encoded; Fenced
// as above; AlreadyExists, NotFound and Corrupt as for FileStore. No message holds the password.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "clickpipe/postgres/connection.hpp"
#include "clickpipe/store/state_store.hpp"

namespace clickpipe::cluster {

struct PgStoreOptions {
  postgres::ConnectionSettings connection;  // its password only ever reaches libpq
  // Created on first use; 1-63 characters of a-z, 0-9 and _, not starting with a digit. Its
  // tables: meta, workers, pipes, commands (docs/scale-out.md).
  std::string schema = "clickpipe";
  // How long a worker owns its pipes without renewing; renewed every lease/4.
  std::chrono::milliseconds lease{10000};
  std::string worker_name;  // shown in the workers table; default "<host>:<pid>"
  std::string address;      // where this worker's HTTP API is, if anywhere (shown only)
  // For kill tests: called at the protocol's points, "saved" (a save committed, not yet
  // returned), "renewing" (before a lease renewal is sent), "claimed" (pipes taken, not yet
  // run), "releasing" (a stopped pipe about to be released). Default: none.
  std::function<void(std::string_view point)> hook;
};

// Throws InvalidField("store.schema", why) for a bad name, InvalidField("store.lease_ms", why)
// for a lease under 100 ms.
void validate(const PgStoreOptions& options);

// A pipe this worker has just taken over: its record, or why it cannot be read.
struct Claim {
  std::string id;
  std::uint64_t token = 0;
  std::optional<PipeRecord> record;
  std::string broken;  // when there is no record
};

struct ClusterView {
  std::size_t live_workers = 0;  // whose lease runs, draining ones not counted
  std::size_t pipes = 0;
  std::size_t mine = 0;
};

struct WorkerRow {
  std::uint64_t id = 0;
  std::string name;
  std::string address;
  bool live = false;
  bool draining = false;
};

struct PipeOwner {
  std::string id;
  std::optional<std::uint64_t> owner;  // none: released, waiting for a worker
  std::uint64_t token = 0;
};

struct StoreCommand {
  std::int64_t seq = 0;
  std::string pipe_id;
  std::string body;
};

class PgStore final : public StateStore {
 public:
  // Connects, creates or migrates the schema (one worker at a time, under an advisory lock).
  // Does not join: a store opened only to read status or send commands holds no lease.
  static std::unique_ptr<PgStore> open(PgStoreOptions options);
  // For readers (`clickpipe status`, commands from any host): runs no DDL, so a role that may
  // only read and write the tables will do and a mistyped schema is not created. Throws
  // StoreError NotFound when there is no such store, Refused for a newer schema.
  static std::unique_ptr<PgStore> attach(PgStoreOptions options);
  ~PgStore() override;
  PgStore(const PgStore&) = delete;
  PgStore& operator=(const PgStore&) = delete;

  // The schema version this build creates and reads.
  static constexpr int kSchemaVersion = 1;

  // ---- StateStore ----
  LoadResult load_all() override;  // every pipe in the schema, whoever owns it
  // A pipe this worker owns: its row, fenced. A pipe not in the schema: inserted, owned by this
  // worker (AlreadyExists when another got there first).
  void save(const PipeRecord& record) override;
  void remove(const std::string& id) override;  // fenced like save
  bool holds(const std::string& id) override;
  void check_writer(const std::string& id) override;

  // ---- membership ----
  // Registers this worker and starts renewing its lease. Throws StoreError.
  void join();
  // The lease ran out, or may have (a renewal late or refused): every pipe this worker ran
  // must be stopped; rejoin() then gives a new worker id.
  bool lease_lost() const;
  // After lease_lost(), once every pipe of this process is stopped: gives up the old id (its
  // pipes are released at once rather than when its lease runs out) and joins again.
  void rejoin();
  // Marks this worker draining: others stop counting it when they share out pipes.
  void set_draining();
  // Releases whatever it still owns and deletes its worker row; the lease thread stops.
  void leave();
  std::uint64_t worker_id() const;
  std::chrono::milliseconds lease() const noexcept { return options_.lease; }

  // ---- assignment ----
  ClusterView view();
  // Takes up to `n` pipes that nobody owns, or whose owner's lease ran out, but none in `skip`.
  std::vector<Claim> claim(std::size_t n, const std::set<std::string>& skip = {});
  // The pipes the store says this worker owns, with their tokens: what it believes is set to
  // that (a claim or an insert whose answer was lost, a release that was not).
  std::map<std::string, std::uint64_t> held();
  // One pipe's record as a claim would return it.
  Claim read_claim(const std::string& id);
  // Gives a pipe up (its owner must have stopped it): fenced, so it is a no-op when the pipe
  // has moved on already.
  void release(const std::string& id);
  std::vector<std::string> owned() const;
  // Pipes another worker took (a save or check refused for its token) since the last call: stop
  // them, and release them (a no-op unless the store still names this worker).
  std::vector<std::string> take_fenced();
  std::vector<WorkerRow> workers();
  std::vector<PipeOwner> owners();

  // ---- commands (any client) ----
  // Queues a command for whichever worker owns the pipe; returns its number.
  std::int64_t submit_command(const std::string& pipe_id, const std::string& body);
  // The answer, once the owner has given one.
  std::optional<std::string> command_answer(std::int64_t seq);
  // True when the command will never run (no worker had taken it); false when one has.
  bool withdraw_command(std::int64_t seq, const std::string& answer);
  // Commands for the pipes this worker owns, oldest first, marked taken.
  std::vector<StoreCommand> take_commands();
  void answer_command(std::int64_t seq, const std::string& answer);

  // ---- notices ----
  // Waits up to `timeout` for a NOTIFY on the schema's channel (a command, a released pipe, a
  // worker leaving); true when one came.
  bool wait_for_notice(std::chrono::milliseconds timeout);
  void notify();

  // The schema's tables, quoted ("clickpipe"."pipes"): for tools and tests.
  std::string table(const std::string& name) const;

 private:
  explicit PgStore(PgStoreOptions options);
  struct Conn;
  template <class F>
  auto with(Conn& conn, const std::string& doing, F&& f);
  void migrate();
  void heartbeat_loop(std::uint64_t id, std::stop_token stop);
  bool deadline_passed_locked() const;
  void point(std::string_view name) const {
    if (options_.hook) options_.hook(name);
  }
  // `moved`: the pipe is another worker's now (take_fenced reports it); else the lease as a whole
  // may be gone, which lease_lost() reports.
  [[noreturn]] void fenced(const std::string& id, const std::string& why, bool moved);
  std::uint64_t me_or_throw(const std::string& doing) const;  // under state_mu_

  PgStoreOptions options_;
  std::unique_ptr<Conn> save_conn_, coord_conn_, lease_conn_, listen_conn_;

  mutable std::mutex state_mu_;
  std::condition_variable_any lease_cv_;
  std::uint64_t worker_ = 0;  // 0: not joined
  std::chrono::steady_clock::time_point deadline_{};
  bool lost_ = false;
  std::string lost_why_;
  std::map<std::string, std::uint64_t> owned_;  // pipe id -> fencing token
  std::set<std::string> fenced_;
  std::jthread heartbeat_;
};

}  // namespace clickpipe::cluster
