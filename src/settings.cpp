#include "clickpipe/settings.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "clickpipe/error.hpp"

namespace clickpipe {

std::chrono::milliseconds RetryPolicy::backoff(std::uint32_t attempt, double unit) const noexcept {
  const double cap = static_cast<double>(max_backoff.count());
  // Capped so pow() stays finite: 0 * inf would be NaN, and NaN cast to an integer is undefined.
  const double exponent = attempt > 0 ? std::min(static_cast<double>(attempt - 1), 64.0) : 0.0;
  double base = initial_backoff.count() == 0
                    ? 0.0
                    : static_cast<double>(initial_backoff.count()) * std::pow(multiplier, exponent);
  base = std::min(base, cap);
  const double spread = base * jitter * (2.0 * std::clamp(unit, 0.0, 1.0) - 1.0);
  const double wait = std::clamp(base + spread, 0.0, cap);
  return std::chrono::milliseconds(static_cast<std::int64_t>(wait));
}

namespace {

constexpr const char* kAtMost24h = "must be at most 86400000 ms (24 h)";

void check_retry(const RetryPolicy& r, const std::string& field) {
  if (r.initial_backoff.count() < 0) throw InvalidField(field + ".initial_backoff", "must be >= 0");
  if (r.initial_backoff > kMaxSettingDuration)
    throw InvalidField(field + ".initial_backoff", kAtMost24h);
  if (r.max_backoff > kMaxSettingDuration) throw InvalidField(field + ".max_backoff", kAtMost24h);
  if (r.max_backoff < r.initial_backoff)
    throw InvalidField(field + ".max_backoff", "must be >= initial_backoff");
  if (!(r.multiplier >= 1.0) || !std::isfinite(r.multiplier))
    throw InvalidField(field + ".multiplier", "must be a finite number >= 1");
  if (!(r.jitter >= 0.0 && r.jitter <= 1.0))
    throw InvalidField(field + ".jitter", "must be in [0, 1]");
}

}  // namespace

void Settings::validate() const {
  if (sync_interval.count() <= 0) throw InvalidField("settings.sync_interval", "must be > 0");
  if (sync_interval > kMaxSettingDuration) throw InvalidField("settings.sync_interval", kAtMost24h);
  if (pull_batch_size == 0) throw InvalidField("settings.pull_batch_size", "must be > 0");
  if (rows_per_partition == 0) throw InvalidField("settings.rows_per_partition", "must be > 0");
  if (partitions_in_parallel == 0 || partitions_in_parallel > 256)
    throw InvalidField("settings.partitions_in_parallel", "must be in [1, 256]");
  if (tables_in_parallel == 0 || tables_in_parallel > 256)
    throw InvalidField("settings.tables_in_parallel", "must be in [1, 256]");
  // The store refuses a plan of more partitions (a planted record could ask for billions).
  if (max_partitions_per_table == 0 || max_partitions_per_table > (1u << 20))
    throw InvalidField("settings.max_partitions_per_table", "must be in [1, 1048576]");
  check_retry(provisioning_retry, "settings.provisioning_retry");
  check_retry(setup_retry, "settings.setup_retry");
  check_retry(snapshot_partition_retry, "settings.snapshot_partition_retry");
  check_retry(cdc_retry, "settings.cdc_retry");
}

}  // namespace clickpipe
