// Opting into Degraded. Without a policy a pipe never enters Degraded.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace clickpipe {

struct HealthSignals {
  std::uint32_t consecutive_cdc_errors = 0;  // transient CDC errors since the last good batch
  std::uint64_t lag_bytes = 0;               // source head minus confirmed position
  std::chrono::milliseconds since_last_batch{0};
};

// Called by the CDC worker after every batch and every transient error, on that thread. Return a
// reason to mark the pipe Degraded (it keeps streaming), nullopt when healthy (back to Running).
class HealthPolicy {
 public:
  virtual ~HealthPolicy() = default;
  virtual std::optional<std::string> unhealthy(const HealthSignals& signals) = 0;
};

// A ready policy: Degraded after `errors` consecutive CDC errors or above `max_lag_bytes`.
class ThresholdHealthPolicy : public HealthPolicy {
 public:
  ThresholdHealthPolicy(std::uint32_t errors, std::uint64_t max_lag_bytes)
      : errors_(errors), max_lag_bytes_(max_lag_bytes) {}
  std::optional<std::string> unhealthy(const HealthSignals& s) override {
    if (s.consecutive_cdc_errors >= errors_) {
      return std::to_string(s.consecutive_cdc_errors) + " consecutive CDC errors";
    }
    if (s.lag_bytes > max_lag_bytes_) return "lag of " + std::to_string(s.lag_bytes) + " bytes";
    return std::nullopt;
  }

 private:
  std::uint32_t errors_;
  std::uint64_t max_lag_bytes_;
};

}  // namespace clickpipe
