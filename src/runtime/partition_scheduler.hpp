// PartitionScheduler: copies the partitions of a load on a private pool of threads. Internal to
// the runtime: the snapshot work hands it what to copy and how, and it decides what copies when.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <vector>

#include "clickpipe/runtime/concurrency_limit.hpp"
#include "clickpipe/slot.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe::runtime_detail {

// Honours partitions-per-table and tables-at-once (read before each pick, so changed settings
// apply at the next partition) and an optional bound shared with other pipes. A table counts
// against tables-at-once from its first partition until its last one ends.
//
// One run per scheduler. Threading: run() blocks until its threads are joined.
class PartitionScheduler {
 public:
  struct Limits {
    std::size_t per_table = 1;
    std::size_t tables_at_once = 1;
  };

  // The partitions of one table still to copy; `def` must outlive the run.
  struct Table {
    const TableDefinition* def = nullptr;
    std::deque<Partition> waiting;
  };

  struct Steps {
    // Read before each pick.
    std::function<Limits()> limits;
    // Copies one partition, holding a slot of the shared bound; returns its rows.
    std::function<std::uint64_t(const TableDefinition&, const Partition&, std::stop_token)> copy;
    // Records a copied partition, once the shared slot is given back.
    std::function<void(const TableDefinition&, const Partition&, std::uint64_t rows,
                       std::stop_token)>
        done;
  };

  // `shared_limit` may be null: no bound beyond this pipe's settings.
  PartitionScheduler(std::vector<Table> tables, std::shared_ptr<ConcurrencyLimit> shared_limit);

  // No run starts more threads than this, whatever the settings allow (tables x partitions may
  // reach 65,536): a copying thread typically holds its own connections to both ends.
  static constexpr std::size_t kMaxThreads = 64;

  // Copies every waiting partition on `threads` threads and joins them: at least one, at most
  // one per waiting partition (more would only wait) and at most kMaxThreads. The first step
  // that throws (other than Cancelled) stops the others and its exception is rethrown; a stop
  // request throws Cancelled. Partitions not copied are left for the next load.
  void run(std::size_t threads, const Steps& steps, std::stop_token stop);

 private:
  struct Queue {
    Table table;
    std::size_t in_flight = 0;
    bool opened = false;
  };

  void work(const Steps& steps);
  // Waits for a partition that may start now; null when none is left or the run stops.
  Queue* pick(const Steps& steps, std::unique_lock<std::mutex>& lk, Partition& part);
  void ended(Queue& q);

  std::vector<Queue> queues_;
  const std::shared_ptr<ConcurrencyLimit> shared_limit_;

  std::mutex mu_;
  std::condition_variable_any cv_;
  std::size_t open_tables_ = 0;
  std::uint64_t finished_ = 0;  // partitions ended (any way): wakes waiting threads
  std::exception_ptr failure_;
  std::stop_source local_;  // stops every thread: on the caller's stop or the first failure
};

}  // namespace clickpipe::runtime_detail
