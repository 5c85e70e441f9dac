// What every executor call receives: cancellation, progress, logging and the pipe's settings.
#pragma once

#include <cstdint>
#include <stop_token>
#include <string>
#include <string_view>

#include "clickpipe/error.hpp"
#include "clickpipe/lsn.hpp"
#include "clickpipe/settings.hpp"
#include "clickpipe/table.hpp"

namespace spdlog {
class logger;
}

namespace clickpipe {

// Where executors report progress. Every hook has a no-op default; the runtime's sink is
// thread-safe, so executors may call it from any thread.
class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  // `rows` more rows of `partition` reached the destination (may be called many times per
  // partition while it copies; the runtime counts a partition done only when copy returns).
  virtual void rows_copied(const TableRef& table, std::uint32_t partition, std::uint64_t rows) {
    (void)table, (void)partition, (void)rows;
  }
  // A human-readable note about what the executor is doing ("waiting for the slot").
  virtual void note(std::string_view text) { (void)text; }
};

struct ExecContext {
  std::stop_token stop;  // requested when the pipe leaves the state or shuts down: return soon
  ProgressSink& progress;
  spdlog::logger& log;  // the pipe's logger
  Settings settings;    // the pipe's settings when the call began
  std::string pipe_id;
  RowVersions row_versions = RowVersions::CommitLsn;  // how CDC versions rows (Change::version)

  bool stop_requested() const noexcept { return stop.stop_requested(); }
  void throw_if_stopped() const {
    if (stop.stop_requested()) throw Cancelled();
  }
};

}  // namespace clickpipe
