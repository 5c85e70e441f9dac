#include "slot_monitor.hpp"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stop_token>

#include "clickpipe/pg_to_clickhouse/executors.hpp"
#include "clickpipe/postgres/replication.hpp"
#include "clickpipe/status.hpp"
#include "logging.hpp"

namespace clickpipe::cli {

namespace {
constexpr std::chrono::seconds kConnectTimeout{5};
}  // namespace

SlotMonitor::SlotMonitor(std::map<std::string, postgres::ConnectionSettings> sources,
                         Telemetry& telemetry, std::shared_ptr<spdlog::logger> log,
                         std::chrono::milliseconds every)
    : sources_(std::move(sources)), telemetry_(telemetry), log_(std::move(log)) {
  // A source that does not answer must not hold a pass (or the process's stop) for long.
  for (auto& [id, s] : sources_) s.connect_timeout = std::min(s.connect_timeout, kConnectTimeout);
  thread_ = std::jthread([this, every](std::stop_token stop) {
    std::mutex mu;
    std::condition_variable_any cv;
    while (!stop.stop_requested()) {
      poll_once(stop);
      std::unique_lock lk(mu);
      cv.wait_for(lk, stop, every, [] { return false; });
    }
  });
}

SlotMonitor::~SlotMonitor() {
  thread_.request_stop();
  if (thread_.joinable()) thread_.join();
}

void SlotMonitor::poll_once(std::stop_token stop) {
  std::lock_guard lk(mu_);
  for (const auto& [id, source] : sources_) {
    if (stop.stop_requested()) return;
    std::optional<SlotSample> sample;
    std::string error;
    try {
      postgres::Connection conn = postgres::Connection::open(source);
      const auto s = postgres::slot_status(conn, pg_to_clickhouse::slot_name(id));
      sample = SlotSample{};
      sample->at = std::chrono::system_clock::now();
      if (s) {
        sample->exists = true;
        sample->retained_bytes = s->retained_bytes;
        sample->wal_status = s->wal_status;
      }
    } catch (const std::exception& e) {
      error = capped_error(e.what());
    }
    telemetry_.set_slot(id, sample);
    std::string& last = failing_[id];
    if (error != last && log_) {
      try {
        if (!error.empty()) {
          log_event(*log_, spdlog::level::warn, id, "slot_unreadable",
                    "cannot read the replication slot's WAL retention: " + error,
                    nlohmann::json{{"error", error}});
        } else if (!last.empty()) {
          log_event(*log_, spdlog::level::info, id, "slot_readable",
                    "the replication slot's WAL retention is readable again",
                    nlohmann::json::object());
        }
      } catch (...) {
      }
    }
    last = error;
  }
}

}  // namespace clickpipe::cli
