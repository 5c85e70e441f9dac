#include "clickpipe/clock.hpp"

#include <condition_variable>
#include <mutex>

#include "clickpipe/executors/context.hpp"

namespace clickpipe {
namespace {

class SystemClock final : public Clock {
 public:
  time_point now() const override { return std::chrono::system_clock::now(); }

  bool sleep_for(std::chrono::nanoseconds d, std::stop_token stop) override {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lk(m);
    // Returns early only when stop is requested: the predicate is the stop itself.
    cv.wait_for(lk, stop, d, [] { return false; });
    return !stop.stop_requested();
  }
};

}  // namespace

std::shared_ptr<Clock> system_clock() {
  static const std::shared_ptr<Clock> clock = std::make_shared<SystemClock>();
  return clock;
}

ProgressSink& null_progress() noexcept {
  static ProgressSink sink;
  return sink;
}

}  // namespace clickpipe
