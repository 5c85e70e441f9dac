// Watches each pipe's replication slot on its source, whatever the pipe's state: a paused or
// failed pipe streams nothing, yet its slot keeps WAL, and that is what fills a source's disk.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "clickpipe/postgres/connection.hpp"
#include "telemetry.hpp"

namespace spdlog {
class logger;
}

namespace clickpipe::cli {

class SlotMonitor {
 public:
  // Reads the slot of each pipe in `sources` (pipe id -> its source) every `every`, first at once,
  // on a thread of its own, and hands each reading to `telemetry.set_slot`. A source that cannot
  // be reached gives no reading (the metric goes absent, not stale) and is logged once until it
  // answers again.
  SlotMonitor(std::map<std::string, postgres::ConnectionSettings> sources, Telemetry& telemetry,
              std::shared_ptr<spdlog::logger> log,
              std::chrono::milliseconds every = std::chrono::seconds(10));
  ~SlotMonitor();  // stops and joins
  SlotMonitor(const SlotMonitor&) = delete;
  SlotMonitor& operator=(const SlotMonitor&) = delete;

  // One pass over every source, on the caller's thread; ends early once `stop` is requested.
  void poll_once(std::stop_token stop = {});

 private:
  std::map<std::string, postgres::ConnectionSettings> sources_;
  Telemetry& telemetry_;
  std::shared_ptr<spdlog::logger> log_;
  std::mutex mu_;                               // one pass at a time
  std::map<std::string, std::string> failing_;  // pipe id -> the error last logged
  std::jthread thread_;
};

}  // namespace clickpipe::cli
