// Time, as the runtime sees it: injectable so tests control backoff without sleeping.
#pragma once

#include <chrono>
#include <memory>
#include <stop_token>

namespace clickpipe {

// Thread-safe: called from every worker of a pipe at once.
class Clock {
 public:
  using time_point = std::chrono::system_clock::time_point;
  virtual ~Clock() = default;
  virtual time_point now() const = 0;
  // Waits `d`, or less when `stop` is requested; returns false when it was stopped.
  virtual bool sleep_for(std::chrono::nanoseconds d, std::stop_token stop) = 0;
};

// The real clock.
std::shared_ptr<Clock> system_clock();

// Waits `d` in real time, or less when `stop` is requested; false when it was stopped.
bool sleep_unless_stopped(std::chrono::nanoseconds d, std::stop_token stop);

}  // namespace clickpipe
