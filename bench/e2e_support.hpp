// Pieces of the end-to-end benchmark (bench/e2e_bench.cpp): reading the pipe's history, deleting
// pipes as a service would, counting rows in ClickHouse, the count-back alone, a steady writer.
#pragma once

#include <atomic>
#include <chrono>
#include <clickpipe/clickhouse/insert.hpp>
#include <clickpipe/clickhouse/layout.hpp>
#include <clickpipe/postgres/connection.hpp>
#include <clickpipe/runtime/pipe.hpp>
#include <clickpipe/store/state_store.hpp>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common.hpp"

namespace clickpipe::bench {

// Seconds from the pipe's first entry into `from` to its next entry into `to`.
inline double seconds_between(const PipeStatus& st, State from, State to) {
  TimePoint a{}, b{};
  for (const auto& h : st.history) {
    if (h.to == from && a == TimePoint{}) a = h.at;
    if (h.to == to && a != TimePoint{} && b == TimePoint{}) b = h.at;
  }
  return std::chrono::duration<double>(b - a).count();
}

// From creating the pipe to the end of Setup (Provisioning and Setup both done).
inline double setup_seconds(const PipeStatus& st, TimePoint created) {
  for (const auto& h : st.history) {
    if (h.from == State::Setup) return std::chrono::duration<double>(h.at - created).count();
  }
  return 0;
}

// The delete command, then the record's removal, as a PipeService does once a pipe is Terminated.
inline void delete_pipe(std::unique_ptr<Pipe>& pipe, StateStore& store) {
  must(pipe->remove().accepted() && pipe->wait_for(State::Terminated, std::chrono::seconds(60)),
       "delete");
  const std::string id = pipe->id();
  pipe.reset();
  store.remove(id);
}

// ClickHouse must hold `want` rows in `table`: those its FINAL view serves, not deleted, for a
// pipe's ReplacingMergeTree (`replacing`), else all of them.
inline void expect_rows(clickhouse::Client& ch, const std::string& what, const std::string& table,
                        long want, bool replacing = true) {
  const std::string sql =
      "SELECT count() FROM " + table + (replacing ? " FINAL WHERE _is_deleted = 0" : std::string());
  const long got = std::atol(ch.query(sql).c_str());
  must(got == want, fmt::format("{}: ClickHouse holds {} rows of {}", what, got, want));
}

// The count-back alone, three times: the query the pipe runs after each insert, over the keys of
// the first `keys` COPY lines of `file` (psql's output, the same lines the pipe reads), against the
// loaded table. Returns the median seconds.
inline double count_back_seconds(clickhouse::Client& ch, const clickhouse::TableLayout& layout,
                                 const std::string& file, std::uint64_t keys) {
  std::vector<double> took;
  for (int i = 0; i < 3; ++i) {
    clickhouse::CopyTextEncoder encoder(layout, kSnapshotVersion);
    std::ifstream in(file);
    std::string line, body;
    std::uint64_t n = 0;
    for (; n < keys && std::getline(in, line); ++n) {
      encoder.add(line, body);
      body.clear();
    }
    const auto t0 = Steady::now();
    const clickhouse::Reconciliation r = encoder.reconcile(ch);
    took.push_back(since(t0));
    must(r.keys == n && r.complete(), "the count-back found every key");
  }
  return bench::median(took);
}

// Inserts rows into `table` at about `per_second`, remembering when each id committed.
class SteadyWriter {
 public:
  SteadyWriter(const postgres::ConnectionSettings& s, std::string table, int per_second)
      : table_(std::move(table)), per_second_(per_second), thread_([this, s] { loop(s); }) {}
  ~SteadyWriter() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // (id, commit time) of everything written so far.
  std::vector<std::pair<long, Steady::time_point>> written() {
    std::lock_guard lk(mu_);
    return written_;
  }

 private:
  void loop(const postgres::ConnectionSettings& s) {
    postgres::Connection pg = postgres::Connection::open(s);
    long id = 1;
    const auto period = std::chrono::microseconds(1'000'000 / per_second_);
    auto next = Steady::now();
    while (!stop_) {
      pg.exec("INSERT INTO " + table_ + " VALUES ($1, 'lag')", {std::to_string(id)});
      {
        std::lock_guard lk(mu_);
        written_.emplace_back(id, Steady::now());
      }
      ++id;
      next += period;
      std::this_thread::sleep_until(next);
    }
  }
  std::string table_;
  int per_second_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::pair<long, Steady::time_point>> written_;
  std::thread thread_;
};

}  // namespace clickpipe::bench
