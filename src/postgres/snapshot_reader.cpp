#include "clickpipe/postgres/snapshot_reader.hpp"

#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "clickpipe/executors/context.hpp"

namespace clickpipe::postgres {

std::uint64_t SnapshotReader::read(const TableDefinition& table,
                                   const std::vector<Partition>& partitions,
                                   const std::string& snapshot, const Sink& sink, const Done& done,
                                   std::stop_token stop) {
  std::atomic<std::size_t> next{0};
  std::atomic<std::uint64_t> total{0};
  std::atomic<bool> failed{false};
  std::atomic<bool> gone{snapshot.empty()};
  std::mutex mu;
  std::exception_ptr error;
  auto worker = [&] {
    try {
      Connection conn = Connection::open(settings_);
      for (std::size_t i = next++; i < partitions.size() && !failed; i = next++) {
        if (stop.stop_requested()) return;
        const Partition& p = partitions[i];
        auto to_sink = [&](std::vector<Values>&& rows) { sink(p, std::move(rows)); };
        auto stopped = [&] { return stop.stop_requested() || failed.load(); };
        std::uint64_t n = 0;
        bool read = false;
        if (!gone) {
          try {
            n = copy_partition(conn, table, p, snapshot, to_sink, 10000, stopped);
            read = true;
          } catch (const SnapshotGone&) {
            gone = true;  // CDC replays everything after the slot's point: a fresh view is fine
          }
        }
        if (!read) n = copy_partition(conn, table, p, "", to_sink, 10000, stopped);
        total += n;
        if (done) done(p, n);
      }
    } catch (...) {
      std::lock_guard lk(mu);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  std::vector<std::thread> pool;
  for (std::size_t i = 0; i < std::min(connections_, partitions.size()); ++i)
    pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  fell_back_ = gone && !snapshot.empty();
  if (error) std::rethrow_exception(error);
  if (stop.stop_requested()) throw Cancelled();
  return total;
}

}  // namespace clickpipe::postgres
