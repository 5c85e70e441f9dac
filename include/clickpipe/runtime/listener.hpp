// Observing a pipe: transition listeners.
#pragma once

#include <string>

#include "clickpipe/lifecycle/lifecycle.hpp"
#include "clickpipe/status.hpp"

namespace clickpipe {

struct TransitionEvent {
  std::string pipe_id;
  Transition transition;
  TimePoint at;
  std::string error;  // for fatal_error: the error that failed the pipe
};

// Every hook has a no-op default: override what you need.
//
// Threading: hooks are called after the change is recorded, outside the pipe's locks, one at a
// time per pipe and in the order the changes happened (each transition exactly once), on
// whichever thread made the change. Keep them short and never block waiting for the pipe: a
// command issued from a hook (pause(), ...) is queued and carried out after the hook returns,
// never dispatched recursively. Exceptions thrown by a hook are logged and swallowed.
class TransitionListener {
 public:
  virtual ~TransitionListener() = default;
  virtual void on_transition(const TransitionEvent& event) { (void)event; }
  // A command queued from a hook that was refused when its turn came.
  virtual void on_rejected(const std::string& pipe_id, const Rejection& rejection) {
    (void)pipe_id, (void)rejection;
  }
  // A failed attempt. With retry.next_attempt_at, a transient error that will be retried then;
  // without, an error waiting cannot heal (a store that cannot save): the pipe's work has stopped
  // where it was, and status() shows the same error until a save goes through again.
  virtual void on_retry(const std::string& pipe_id, const RetryStatus& retry) {
    (void)pipe_id, (void)retry;
  }
  // A CDC batch was applied, saved and confirmed to the source.
  virtual void on_batch(const std::string& pipe_id, const BatchSummary& batch) {
    (void)pipe_id, (void)batch;
  }
};

}  // namespace clickpipe
