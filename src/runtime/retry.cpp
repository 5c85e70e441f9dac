// Retry: the operations the runtime retries, the context executors run in, and the backoff
// between attempts. with_retry itself is a template in pipe_impl.hpp.
#include <fmt/format.h>
#include <spdlog/logger.h>

#include "pipe_impl.hpp"

namespace clickpipe {

namespace runtime_detail {

std::string_view to_string(Operation operation) noexcept {
  switch (operation) {
    case Operation::Provision: return "provisioning";
    case Operation::ReadDefinitions: return "setup: read table definitions";
    case Operation::CreateTables: return "setup: create tables";
    case Operation::CreateResyncTables: return "snapshot: create resync tables";
    case Operation::BeginSnapshot: return "snapshot: begin";
    case Operation::PlanPartitions: return "snapshot: plan";
    case Operation::CopyPartition: return "snapshot: partition";
    case Operation::RemoveCancelledTables: return "cdc: remove cancelled tables";
    case Operation::Cdc: return "cdc";
    case Operation::RemoveTables: return "modifying: remove tables";
    case Operation::SwapTables: return "resync: swap tables";
    case Operation::Teardown: return "terminating: teardown";
    case Operation::DropDestination: return "terminating: drop destination tables";
    case Operation::SaveTransition: return "store: save transition";
    case Operation::SaveDefinitions: return "store: save table definitions";
    case Operation::SaveSlot: return "store: save slot";
    case Operation::SavePlan: return "store: save partition plan";
    case Operation::SavePartition: return "store: save partition";
    case Operation::SaveTableSet: return "store: save table set";
    case Operation::SaveCdcPosition: return "store: save CDC position";
    case Operation::CheckWriter: return "store: check the lease";
  }
  return "unknown operation";
}

std::string to_string(const OperationId& id) {
  std::string out(to_string(id.operation));
  if (!id.subject.empty()) out += " " + id.subject;
  return out;
}

}  // namespace runtime_detail

// Progress reported by executors (ProgressSink).

void Pipe::Impl::rows_copied(const TableRef& table, std::uint32_t partition, std::uint64_t rows) {
  std::lock_guard lk(mu);
  auto it = d.load.find(table);
  if (it != d.load.end()) it->second.rows_in_flight[partition] += rows;
}
void Pipe::Impl::note(std::string_view text) { log->info("{}", text); }

ExecContext Pipe::Impl::context(std::stop_token stop) {
  std::lock_guard lk(mu);
  return ExecContext{std::move(stop), *this, *log, d.settings, id, d.row_versions};
}

double Pipe::Impl::random_unit() {
  std::lock_guard lk(mu);
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// Records a transient error and waits out the backoff. Throws FatalError when the budget is
// spent and Cancelled when stopped while waiting.
void Pipe::Impl::backoff(const OperationId& operation, RetryPolicy policy, std::uint32_t attempt,
                         const std::string& raw_error, std::stop_token stop) {
  if (stop.stop_requested()) throw Cancelled();
  // Status, listeners and the log get the same capped text (transitions cap the fatal one).
  const std::string error = capped_error(raw_error);
  const std::string name = runtime_detail::to_string(operation);
  if (!policy.unlimited() && attempt >= policy.max_attempts) {
    throw FatalError(fmt::format("{} failed after {} attempts: {}", name, attempt, error));
  }
  const auto delay = policy.backoff(attempt, random_unit());
  {
    std::lock_guard lk(mu);
    // The store refused a save for good (another partition's): the work is ending, and that
    // refusal, not this error, is what the status shows.
    if (store_failed) throw Cancelled();
    RetryStatus rs{name, attempt, policy.max_attempts, error, clock->now() + delay};
    retrying = runtime_detail::ActiveRetry{operation, rs};
    d.last_error = ErrorInfo{error, d.life.state(), clock->now(), false};
    Notification n;
    n.kind = Notification::Kind::Retry;
    n.retry = rs;
    outbox.push_back(std::move(n));
  }
  // Listeners (on_retry) report retries; this line is for tracing.
  log->debug("{} attempt {} failed: {}; retrying in {} ms", name, attempt, error, delay.count());
  deliver();
  if (!clock->sleep_for(delay, stop)) throw Cancelled();
}

RetryPolicy Pipe::Impl::policy(RetryPolicy Settings::*which) {
  std::lock_guard lk(mu);
  return d.settings.*which;
}

void Pipe::Impl::clear_retry(const OperationId& operation) {
  std::lock_guard lk(mu);
  if (!store_failed && retrying && retrying->operation == operation) retrying.reset();
}

}  // namespace clickpipe
