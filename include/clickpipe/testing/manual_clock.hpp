// A clock for tests: time moves only when told, and every backoff sleep is recorded.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <vector>

#include "clickpipe/clock.hpp"

namespace clickpipe::testing {

// Thread-safe. In manual mode sleep_for blocks until advance() has moved time past its end (or
// stop is requested). In auto-advance mode a sleep moves time forward by its length and returns
// at once: retries run instantly while their backoff is still recorded.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(bool auto_advance = false,
                       time_point start = time_point(std::chrono::hours(24 * 365 * 50)))
      : now_(start), auto_advance_(auto_advance) {}

  time_point now() const override;
  bool sleep_for(std::chrono::nanoseconds d, std::stop_token stop) override;

  void advance(std::chrono::nanoseconds d);
  // Every sleep asked for, in the order asked.
  std::vector<std::chrono::nanoseconds> sleeps() const;
  std::size_t sleepers() const;
  // Waits (in real time) until at least n threads are sleeping on this clock.
  bool wait_for_sleepers(std::size_t n, std::chrono::milliseconds timeout) const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable_any cv_;
  time_point now_;
  bool auto_advance_;
  std::size_t sleepers_ = 0;
  std::vector<std::chrono::nanoseconds> sleeps_;
};

}  // namespace clickpipe::testing
