#include "clickpipe/testing/helpers.hpp"

#include <fmt/format.h>

#include <thread>

#include "clickpipe/format.hpp"

namespace clickpipe::testing {

using namespace std::chrono_literals;

void fast_retries(Settings& s, std::chrono::milliseconds initial, std::chrono::milliseconds max,
                  double jitter) {
  for (RetryPolicy* r :
       {&s.provisioning_retry, &s.setup_retry, &s.snapshot_partition_retry, &s.cdc_retry}) {
    r->initial_backoff = initial;
    r->max_backoff = max;
    r->jitter = jitter;
  }
}

bool wait_until(const Pipe& pipe, const std::function<bool(const PipeStatus&)>& pred,
                std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred(pipe.status())) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
}

bool drive_to(Pipe& pipe, State target, std::chrono::milliseconds timeout) {
  switch (target) {
    case State::Paused:
      if (pipe.state() != State::Paused) {
        if (!pipe.wait_for(State::Running, timeout) || !pipe.pause()) return false;
      }
      return pipe.wait_for(State::Paused, timeout);
    case State::Terminated:
      if (pipe.state() != State::Terminated && !pipe.remove()) return false;
      return pipe.wait_for(State::Terminated, timeout);
    default: return pipe.wait_for(target, timeout);
  }
}

void RecordingListener::on_transition(const TransitionEvent& event) {
  std::lock_guard lk(mu_);
  log_.push_back(fmt::format("{}", event.transition));
  if (event.transition.kind == TransitionKind::External) states_.push_back(event.transition.to);
  cv_.notify_all();
}

void RecordingListener::on_rejected(const std::string&, const Rejection& rejection) {
  std::lock_guard lk(mu_);
  log_.push_back(fmt::format("REJECTED: {}", rejection));
  cv_.notify_all();
}

void RecordingListener::on_retry(const std::string&, const RetryStatus& retry) {
  std::lock_guard lk(mu_);
  retries_.push_back(retry);
}

std::vector<std::string> RecordingListener::log() const {
  std::lock_guard lk(mu_);
  return log_;
}

std::vector<State> RecordingListener::states() const {
  std::lock_guard lk(mu_);
  return states_;
}

std::vector<RetryStatus> RecordingListener::retries() const {
  std::lock_guard lk(mu_);
  return retries_;
}

bool RecordingListener::wait_for_entries(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return log_.size() >= n; });
}

}  // namespace clickpipe::testing
