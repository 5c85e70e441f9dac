#include "clickpipe/clock.hpp"

#include <condition_variable>
#include <mutex>

#include "clickpipe/error.hpp"

namespace clickpipe {
namespace {

class SystemClock final : public Clock {
 public:
  time_point now() const override { return std::chrono::system_clock::now(); }

  bool sleep_for(std::chrono::nanoseconds d, std::stop_token stop) override {
    return sleep_unless_stopped(d, std::move(stop));
  }
};

}  // namespace

bool sleep_unless_stopped(std::chrono::nanoseconds d, std::stop_token stop) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lk(m);
  // Nothing notifies this condition: only the stop request or the time ends the wait.
  cv.wait_for(lk, stop, d, [] { return false; });
  return !stop.stop_requested();
}

std::shared_ptr<Clock> system_clock() {
  static const std::shared_ptr<Clock> clock = std::make_shared<SystemClock>();
  return clock;
}

}  // namespace clickpipe
