// Helpers for tests that drive pipes: waiting on status, driving to a state, recording listeners.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "clickpipe/runtime/pipe.hpp"

namespace clickpipe::testing {

// Sets every retry policy in `settings` to back off from `initial` up to `max` (with `jitter`):
// tests and kill tests want failures retried in milliseconds, not the upstream seconds.
void fast_retries(Settings& settings, std::chrono::milliseconds initial,
                  std::chrono::milliseconds max, double jitter = 0.2);

// Polls status() until pred holds; false on timeout.
bool wait_until(const Pipe& pipe, const std::function<bool(const PipeStatus&)>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Drives a started pipe to `target` the way a user would: waits for states the pipe reaches on
// its own (Setup, Snapshot, Running, Completed, Failed), pauses for Paused, deletes for
// Terminated. False on timeout or when the needed command is refused.
bool drive_to(Pipe& pipe, State target,
              std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Records every transition as "From -[trigger]-> To" (internal ones as "From -[trigger]- (stays)"),
// plus rejections of queued commands as "REJECTED: ...". Thread-safe.
class RecordingListener : public TransitionListener {
 public:
  void on_transition(const TransitionEvent& event) override;
  void on_rejected(const std::string& pipe_id, const Rejection& rejection) override;
  void on_retry(const std::string& pipe_id, const RetryStatus& retry) override;

  std::vector<std::string> log() const;
  std::vector<State> states() const;  // the `to` of every external transition, in order
  std::vector<RetryStatus> retries() const;
  // Waits until the log has at least n entries.
  bool wait_for_entries(std::size_t n,
                        std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<std::string> log_;
  std::vector<State> states_;
  std::vector<RetryStatus> retries_;
};

}  // namespace clickpipe::testing
