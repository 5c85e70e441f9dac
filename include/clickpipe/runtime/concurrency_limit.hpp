// A bound shared by pipes: at most N snapshot partitions copy at once across a whole service.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <stop_token>

namespace clickpipe {

// Thread-safe counting semaphore that honours cancellation.
class ConcurrencyLimit {
 public:
  explicit ConcurrencyLimit(std::size_t limit) : limit_(limit == 0 ? 1 : limit) {}

  // Waits for a slot; false (and no slot taken) when `stop` is requested first.
  bool acquire(std::stop_token stop) {
    std::unique_lock lk(mu_);
    if (!cv_.wait(lk, stop, [&] { return in_use_ < limit_; })) return false;
    ++in_use_;
    if (in_use_ > peak_) peak_ = in_use_;
    return true;
  }
  void release() {
    {
      std::lock_guard lk(mu_);
      --in_use_;
    }
    cv_.notify_one();
  }
  std::size_t limit() const noexcept { return limit_; }
  std::size_t peak() const {
    std::lock_guard lk(mu_);
    return peak_;
  }

 private:
  const std::size_t limit_;
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  std::size_t in_use_ = 0;
  std::size_t peak_ = 0;
};

}  // namespace clickpipe
