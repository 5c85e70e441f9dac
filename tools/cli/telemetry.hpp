// What `clickpipe run` tells about its pipes while they run: the status document of each pipe
// (the library's status JSON plus rates and an ETA), the Prometheus metrics, and the live status
// files DIR/status/<id>.json that `clickpipe status` reads (see docs/cli.md).
//
// Rates need history that a PipeStatus does not hold, so Telemetry keeps the samples of the last
// ~10 s per pipe; counters that only the listener hooks see (retries, transitions, batch
// durations) are kept here as well.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clickpipe/runtime/listener.hpp"
#include "clickpipe/status.hpp"

namespace clickpipe::cli {

// The span the rates of the status document are measured over.
inline constexpr std::chrono::seconds kRateWindow{10};

// Upper bounds (seconds) of the batch duration histogram's buckets; +Inf follows.
inline constexpr std::array<double, 11> kBatchDurationBuckets = {0.01, 0.05, 0.1, 0.25, 0.5, 1,
                                                                 2.5,  5,    10,  30,   60};

// A pipe id as PipeConfig::validate accepts it: 1 to 53 of a-z, 0-9 and _. Only such names are
// turned into file names.
bool is_pipe_id(std::string_view text) noexcept;

// `published_at` of a status document: RFC 3339 UTC with milliseconds, "2026-11-30T17:00:00.123Z".
std::string format_published_at(TimePoint t);
// The reverse; also accepts no fraction or up to 9 digits of it. nullopt for anything else.
std::optional<TimePoint> parse_published_at(std::string_view text) noexcept;

// A pipe's replication slot as its source showed it (SlotMonitor).
struct SlotSample {
  bool exists = false;
  std::uint64_t retained_bytes = 0;  // WAL the slot keeps: the server's position - restart_lsn
  std::string wal_status;            // reserved, extended, unreserved, lost
  TimePoint at;
};

// Listen to every pipe (ServiceOptions::listeners) and call refresh() with the service's statuses
// about once a second. Thread-safe: hooks, refresh and the readers may run on any threads.
class Telemetry : public TransitionListener {
 public:
  Telemetry();

  void on_transition(const TransitionEvent& event) override;
  void on_retry(const std::string& pipe_id, const RetryStatus& retry) override;
  void on_batch(const std::string& pipe_id, const BatchSummary& batch) override;

  // A new sample of the service (PipeService::statuses(), broken()). The documents and metrics
  // show the pipes of the last sample only.
  void refresh(const std::vector<PipeStatus>& pipes, const std::vector<BrokenRecord>& broken,
               TimePoint now = std::chrono::system_clock::now());

  // {"pipes": [status document, ...], "broken": [{"name", "reason"}, ...]}
  nlohmann::json pipes_json() const;
  // The status document of one pipe: to_json(PipeStatus) plus live, published_at,
  // cdc.changes_per_s, snapshot[i].rows_per_s and eta_s, and retries_total. nullopt when the
  // last sample has no such pipe.
  std::optional<nlohmann::json> pipe_json(const std::string& id) const;
  // The metrics in the Prometheus text format 0.0.4.
  std::string metrics_text() const;
  std::size_t pipe_count() const;

  // The newest reading of a pipe's slot at its source; nullopt when it could not be read. Shown
  // as `slot_wal` in the status document and as the slot metrics, whatever the pipe's state.
  void set_slot(const std::string& id, std::optional<SlotSample> sample);

  // Writes each pipe's document as <id>.json into `dir` (made by make_private_dir) through
  // write_private_file, and removes the <id>.json files of pipes not in the last sample: only
  // names of that pattern, and the entry itself, never what a symlink points to. Returns "" or a
  // one-line description of the first failure.
  std::string publish(const std::filesystem::path& dir) const noexcept;

 private:
  struct Sample {
    TimePoint at;
    std::uint64_t changes = 0;
    std::map<std::string, std::uint64_t> rows;  // rows copied per snapshot table
  };
  struct Histogram {
    std::array<std::uint64_t, kBatchDurationBuckets.size() + 1> counts{};  // per bucket, not summed
    double sum = 0;
    std::uint64_t count = 0;
  };
  struct PipeData {
    std::optional<PipeStatus> status;  // from the last sample that had the pipe
    bool present = false;              // in the last sample
    std::size_t absent_for = 0;        // samples in a row without the pipe
    std::deque<Sample> samples;        // oldest first, spanning about kRateWindow
    double changes_per_s = 0;
    std::vector<double> rows_per_s;  // per status->snapshot entry
    std::uint64_t retries = 0;
    std::uint64_t transitions = 0;
    Histogram batches;
  };

  void sample(PipeData& d, const PipeStatus& s, TimePoint now);
  nlohmann::json document(const PipeData& d) const;  // under mu_
  std::string publish_files(const std::filesystem::path& dir) const;

  mutable std::mutex mu_;
  std::map<std::string, PipeData> pipes_;
  std::map<std::string, SlotSample> slots_;
  std::vector<BrokenRecord> broken_;
  TimePoint published_at_;
};

}  // namespace clickpipe::cli
