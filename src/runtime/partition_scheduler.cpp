#include "partition_scheduler.hpp"

#include <algorithm>
#include <thread>
#include <utility>

#include "clickpipe/error.hpp"

namespace clickpipe::runtime_detail {

PartitionScheduler::PartitionScheduler(std::vector<Table> tables,
                                       std::shared_ptr<ConcurrencyLimit> shared_limit)
    : shared_limit_(std::move(shared_limit)) {
  for (auto& t : tables) queues_.push_back(Queue{std::move(t), 0, false});
}

void PartitionScheduler::run(std::size_t threads, const Steps& steps, std::stop_token stop) {
  std::stop_callback forward(stop, [this] { local_.request_stop(); });
  {
    std::vector<std::jthread> pool;
    std::size_t waiting = 0;
    for (const auto& q : queues_) waiting += q.table.waiting.size();
    const std::size_t n = std::clamp<std::size_t>(std::min(threads, waiting), 1, kMaxThreads);
    for (std::size_t i = 0; i < n; ++i) pool.emplace_back([this, &steps] { work(steps); });
  }  // joins
  if (failure_) std::rethrow_exception(failure_);
  if (stop.stop_requested()) throw Cancelled();
}

void PartitionScheduler::work(const Steps& steps) {
  const std::stop_token stop = local_.get_token();
  for (;;) {
    Queue* q = nullptr;
    Partition part;
    {
      std::unique_lock lk(mu_);
      q = pick(steps, lk, part);
      if (!q) return;
    }
    const bool limited = shared_limit_ != nullptr;
    if (limited && !shared_limit_->acquire(stop)) {
      std::lock_guard lk(mu_);
      --q->in_flight;
      ++finished_;
      cv_.notify_all();
      return;
    }
    // Holds the service-wide slot while copying; given back however the copy ends.
    struct Held {
      ConcurrencyLimit* limit;
      void give_back() {
        if (limit) limit->release();
        limit = nullptr;
      }
      ~Held() { give_back(); }
    } held{limited ? shared_limit_.get() : nullptr};
    try {
      const std::uint64_t rows = steps.copy(*q->table.def, part, stop);
      held.give_back();
      steps.done(*q->table.def, part, rows, stop);
    } catch (const Cancelled&) {
      // stopped: leave the partition for next time
    } catch (const std::exception&) {
      std::lock_guard lk(mu_);
      if (!failure_) failure_ = std::current_exception();
      local_.request_stop();
    }
    ended(*q);
  }
}

PartitionScheduler::Queue* PartitionScheduler::pick(const Steps& steps,
                                                    std::unique_lock<std::mutex>& lk,
                                                    Partition& part) {
  const std::stop_token stop = local_.get_token();
  Queue* q = nullptr;
  for (;;) {
    if (stop.stop_requested()) return nullptr;
    const Limits limits = steps.limits();
    bool unfinished = false;
    for (auto& cand : queues_) {
      if (cand.table.waiting.empty()) {
        unfinished = unfinished || cand.in_flight > 0;
        continue;
      }
      unfinished = true;
      if (cand.in_flight >= limits.per_table) continue;
      if (!cand.opened && open_tables_ >= limits.tables_at_once) continue;
      q = &cand;
      break;
    }
    if (q) break;
    if (!unfinished) return nullptr;
    const std::uint64_t seen = finished_;
    cv_.wait(lk, stop, [&] { return finished_ != seen; });
  }
  if (!q->opened) {
    q->opened = true;
    ++open_tables_;
  }
  part = q->table.waiting.front();
  q->table.waiting.pop_front();
  ++q->in_flight;
  return q;
}

void PartitionScheduler::ended(Queue& q) {
  {
    std::lock_guard lk(mu_);
    --q.in_flight;
    ++finished_;
    if (q.table.waiting.empty() && q.in_flight == 0) --open_tables_;
  }
  cv_.notify_all();
}

}  // namespace clickpipe::runtime_detail
