// The log of `clickpipe run`: spdlog to stderr, as text lines or JSON lines, with structured
// events (transition, retry, batch, progress, ...) next to the runtime's own messages.
//
// A line names the pipe it is about. Structured events pass it explicitly; a runtime message
// takes it from its logger's name, "clickpipe:<id>" (make_logger's logger cloned per pipe), so
// loggers cloned from make_logger's share its sinks and therefore its format.
//
// Nothing logged here holds a row value or a secret: only what PipeStatus, RetryStatus and the
// listener hooks carry, and errors go through capped_error.
#pragma once

#include <spdlog/common.h>
#include <spdlog/formatter.h>
#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "clickpipe/runtime/listener.hpp"
#include "clickpipe/status.hpp"

namespace clickpipe::cli {

// One line of JSON; invalid UTF-8 in its strings (error texts from servers) is replaced, not
// thrown on.
std::string json_text(const nlohmann::json& j);

enum class LogFormat { Text, Json };

struct LogOptions {
  spdlog::level::level_enum level = spdlog::level::info;
  LogFormat format = LogFormat::Text;
};

// "trace", "debug", "info", "warn", "error" or "off"; throws InvalidField("--log-level", ...).
spdlog::level::level_enum parse_log_level(const std::string& text);
// "text" or "json"; throws InvalidField("--log-format", ...).
LogFormat parse_log_format(const std::string& text);

// The formatter of one line in `format`:
//   text: `2026-11-30T17:00:00.123Z info  orders Running -[pause]-> Pausing key=value ...`
//   json: {"time":...,"level":...,"pipe":...,"state":...,"event":...,"msg":...,<fields>}
// Time is RFC 3339 UTC with milliseconds. Levels are trace, debug, info, warn and error
// (spdlog's critical shows as error). A line without a pipe shows "-" in its place in text and
// has no "pipe" in JSON. Every line is one line, and every JSON line valid JSON: control
// characters are escaped and bytes that are not UTF-8 become U+FFFD.
std::unique_ptr<spdlog::formatter> make_formatter(LogFormat format);

// A logger named "clickpipe" at `options.level`, writing lines in `options.format` to `out`
// (thread-safe), flushed at info and above.
std::shared_ptr<spdlog::logger> make_logger(const LogOptions& options, std::FILE* out = stderr);
// The same over a sink of the caller's (tests read an ostream sink); the sink's formatter is
// replaced.
std::shared_ptr<spdlog::logger> make_logger(const LogOptions& options, spdlog::sink_ptr sink);

// A structured record: `event` with `msg` and `fields` (a JSON object, or null for none). A
// "state" field becomes the line's `state`; the names time, level, pipe, event and msg are the
// line's own, so fields of those names are written with a leading "_". An empty `pipe` takes the
// one of the logger's name. In text the fields follow the message as key=value (strings quoted
// when they hold anything but letters, digits and `_.:/@+-`), except `state`, and except a
// transition's from/trigger/to/kind, which its message already says.
//
// Through a sink with another formatter the record shows as the message followed by its fields.
void log_event(spdlog::logger& logger, spdlog::level::level_enum level, const std::string& pipe,
               const std::string& event, const std::string& msg, const nlohmann::json& fields = {});

// The listener hooks as log records: every transition (command-started ones included), retries,
// queued commands refused, and each applied CDC batch.
class LogListener : public TransitionListener {
 public:
  explicit LogListener(std::shared_ptr<spdlog::logger> logger) : logger_(std::move(logger)) {}

  // info `transition`: state (the new one), from, trigger, to, kind (external|internal), and for
  // a fatal error the error.
  void on_transition(const TransitionEvent& event) override;
  // warn `retry`: operation, attempt, max_attempts (0: without end), error, next_attempt_in_ms
  // (null when the error cannot heal by waiting).
  void on_retry(const std::string& pipe_id, const RetryStatus& retry) override;
  // warn `rejected`: state, command, reason.
  void on_rejected(const std::string& pipe_id, const Rejection& rejection) override;
  // info `batch`: changes, wal_bytes, duration_ms, end, lag_bytes, lag_seconds (null: unknown).
  void on_batch(const std::string& pipe_id, const BatchSummary& batch) override;

 private:
  std::shared_ptr<spdlog::logger> logger_;
};

// What the running pipes do between transitions, from their statuses: called often (the run
// loop's pace), it logs at most every `every` per pipe:
// - info `progress`: in Snapshot one per table begun and not done (table, rows, estimated_rows,
//   partitions_done, partitions_total, done, rows_per_s and eta_s, both from the table's
//   previous sample, null when unknown); in Running or Degraded one per pipe while changes flow
//   or wait (changes, changes_per_s, lag_bytes, lag_seconds, confirmed);
// and on every call:
// - debug `partition` when a table's partitions_done grew (table, done, total);
// - info `progress` once with a table's final figures when its partitions are all done, or when
//   the pipe leaves Snapshot before they are (a pause): its last line is never lost between
//   two samples;
// - `schema_change` once for each schema event (table, kind; the description is the message),
//   info, or warn for a table whose changes stop.
// A pipe seen for the first time is only sampled: tables it loaded before are not reported.
// One caller at a time (the run loop); it is not locked.
class ProgressLog {
 public:
  explicit ProgressLog(std::shared_ptr<spdlog::logger> logger,
                       std::chrono::milliseconds every = std::chrono::seconds(2))
      : logger_(std::move(logger)), every_(every) {}

  void log_if_due(const std::vector<PipeStatus>& statuses, TimePoint now);

 private:
  struct TableSeen {
    TableProgress last;  // as the previous call saw it
    // The sample rates are measured from: rows copied at `sample_at`.
    std::uint64_t sample_rows = 0;
    TimePoint sample_at;
    // partitions_done when the table's final line was logged; unset while it is still copying.
    std::optional<std::uint32_t> final_at;
  };
  struct PipeSeen {
    State state = State::Unknown;
    TimePoint last_progress;
    std::uint64_t changes = 0;  // at last_progress
    std::map<std::string, TableSeen> tables;
    TimePoint schema_shown;              // the newest schema event logged
    std::size_t schema_shown_count = 0;  // how many events at exactly schema_shown were
  };

  void first_sight(const PipeStatus& s, TimePoint now);
  void track_table(const PipeStatus& s, const TableProgress& t, PipeSeen& seen, bool due,
                   TimePoint now);
  void log_table(const PipeStatus& s, const TableProgress& t, TableSeen& seen, TimePoint now);
  void log_cdc(const PipeStatus& s, PipeSeen& seen, TimePoint now);
  void log_schema_changes(const PipeStatus& s, PipeSeen& seen);

  std::shared_ptr<spdlog::logger> logger_;
  std::chrono::milliseconds every_;
  std::map<std::string, PipeSeen> pipes_;
};

}  // namespace clickpipe::cli
