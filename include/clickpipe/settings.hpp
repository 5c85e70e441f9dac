// A pipe's tunables, with the upstream defaults. All of them can change while the pipe runs
// (update_settings); work picks them up at its next batch or partition.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace clickpipe {

// The longest duration any setting may hold (24 h): a wait past it is a mistake, and clock
// arithmetic on larger values can overflow.
inline constexpr std::chrono::milliseconds kMaxSettingDuration{86'400'000};

// Exponential backoff with jitter: attempt n waits initial * multiplier^(n-1), at most max_backoff,
// spread by +/- jitter (a fraction). max_attempts 0 means retry without end.
struct RetryPolicy {
  std::uint32_t max_attempts = 20;
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::milliseconds max_backoff{60000};
  double multiplier = 2.0;
  double jitter = 0.2;

  bool unlimited() const noexcept { return max_attempts == 0; }
  // `unit` is a uniformly random number in [0, 1) used for the jitter.
  std::chrono::milliseconds backoff(std::uint32_t attempt, double unit) const noexcept;

  friend bool operator==(const RetryPolicy&, const RetryPolicy&) = default;
};

struct Settings {
  std::chrono::milliseconds sync_interval{60000};  // longest wait for a CDC batch to fill
  std::size_t pull_batch_size = 100000;            // most changes in one CDC batch
  std::size_t rows_per_partition = 100000;         // initial load partition size
  std::size_t partitions_in_parallel = 4;          // per table ("snapshot parallelism")
  std::size_t tables_in_parallel = 1;
  std::size_t max_partitions_per_table = 1000;  // beyond it, partitions grow

  RetryPolicy provisioning_retry{};  // 20 attempts
  RetryPolicy setup_retry{};         // 20 attempts: Setup, table changes, swap
  RetryPolicy snapshot_partition_retry{.max_attempts = 5};
  RetryPolicy cdc_retry{.max_attempts = 0};  // without end, as upstream

  // Throws InvalidField naming the first bad field (e.g. "settings.pull_batch_size"); every
  // duration must lie in [0, kMaxSettingDuration] (sync_interval above 0).
  void validate() const;

  friend bool operator==(const Settings&, const Settings&) = default;
};

}  // namespace clickpipe
