#include "clickpipe/testing/manual_clock.hpp"

namespace clickpipe::testing {

Clock::time_point ManualClock::now() const {
  std::lock_guard lk(mu_);
  return now_;
}

bool ManualClock::sleep_for(std::chrono::nanoseconds d, std::stop_token stop) {
  std::unique_lock lk(mu_);
  sleeps_.push_back(d);
  const auto until = now_ + std::chrono::duration_cast<time_point::duration>(d);
  if (auto_advance_) {
    if (until > now_) now_ = until;
    cv_.notify_all();
    return !stop.stop_requested();
  }
  ++sleepers_;
  cv_.notify_all();
  const bool woke = cv_.wait(lk, stop, [&] { return now_ >= until; });
  --sleepers_;
  return woke;
}

void ManualClock::advance(std::chrono::nanoseconds d) {
  std::lock_guard lk(mu_);
  now_ += std::chrono::duration_cast<time_point::duration>(d);
  cv_.notify_all();
}

std::vector<std::chrono::nanoseconds> ManualClock::sleeps() const {
  std::lock_guard lk(mu_);
  return sleeps_;
}

std::size_t ManualClock::sleepers() const {
  std::lock_guard lk(mu_);
  return sleepers_;
}

bool ManualClock::wait_for_sleepers(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return sleepers_ >= n; });
}

}  // namespace clickpipe::testing
