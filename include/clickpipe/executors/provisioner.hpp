// Provisioning: the service's shared infrastructure and the pipe's metadata.
#pragma once

#include <string>
#include <vector>

#include "clickpipe/executors/exec_context.hpp"
#include "clickpipe/lifecycle/mode.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe {

struct PipeInfo {
  std::string id;
  Mode mode = Mode::InitialLoadAndCdc;
  std::vector<TableRef> tables;
};

// Contract for implementers:
// - Called on a pipe's worker thread, one call at a time per pipe; several pipes of one service
//   may call the same instance concurrently, so shared state needs a lock.
// - Idempotent: it runs again after a crash, a retry or a resync. Infrastructure that is already
//   up is reused (a service's second pipe provisions much faster than its first).
// - Errors: throw TransientError to be retried with backoff, FatalError to fail the pipe. Any
//   other exception is fatal, its message kept. Messages must not contain secrets.
// - Cancellation: return or throw Cancelled soon after ctx.stop is requested.
class Provisioner {
 public:
  virtual ~Provisioner() = default;
  virtual void provision(const PipeInfo& pipe, ExecContext& ctx) = 0;
};

}  // namespace clickpipe
