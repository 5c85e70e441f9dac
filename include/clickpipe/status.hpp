// A pipe's status as a plain value: what status() returns and what status JSON shows.
// It never holds secrets: errors carry messages that executors wrote without them.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clickpipe/change.hpp"
#include "clickpipe/lifecycle/lifecycle.hpp"
#include "clickpipe/lsn.hpp"
#include "clickpipe/settings.hpp"
#include "clickpipe/slot.hpp"
#include "clickpipe/table.hpp"
#include "clickpipe/utf8.hpp"

namespace clickpipe {

using TimePoint = std::chrono::system_clock::time_point;

// The most an error message may take where the runtime keeps or shows it (last_error, retry
// status, listeners, logs): errors from a server can be long and a store record must stay small.
inline constexpr std::size_t kMaxErrorBytes = 1024;

// `text` as valid UTF-8 of at most `max` bytes, ending in "…" when cut (never inside a
// character).
inline std::string capped_error(std::string_view text, std::size_t max = kMaxErrorBytes) {
  // Bytes that are not UTF-8 (a server's text in another encoding, a damaged file) become U+FFFD:
  // the record and the status JSON could not hold them.
  std::string clean;
  clean.reserve(std::min(text.size(), max));
  while (!text.empty() && clean.size() <= max) {
    const std::size_t n = utf8_sequence_length(text);
    clean += n ? text.substr(0, n) : std::string_view("\xEF\xBF\xBD");
    text.remove_prefix(n ? n : 1);
  }
  if (clean.size() <= max && text.empty()) return clean;
  constexpr std::string_view mark = "\xE2\x80\xA6";  // U+2026, "…"
  if (max < mark.size()) return {};
  std::size_t keep = max - mark.size();
  // Back off continuation bytes (10xxxxxx) so the kept part ends on a whole character.
  while (keep > 0 && (static_cast<unsigned char>(clean[keep]) & 0xC0) == 0x80) --keep;
  clean.resize(keep);
  clean += mark;
  return clean;
}

struct TableProgress {
  TableRef table;
  bool planned = false;
  std::uint32_t partitions_total = 0;
  std::uint32_t partitions_done = 0;
  std::uint64_t rows_copied = 0;  // rows of done partitions plus those reported in flight
  std::uint64_t estimated_rows = 0;

  friend bool operator==(const TableProgress&, const TableProgress&) = default;
};

// One CDC batch, applied and confirmed.
struct BatchSummary {
  std::uint64_t changes = 0;
  // Source WAL the batch covers: its end minus the position confirmed before it.
  std::uint64_t wal_bytes = 0;
  std::chrono::milliseconds duration{0};  // applying it: from its pull's return to confirmation
  Lsn end;
  std::uint64_t lag_bytes = 0;        // how far the pipe was behind the source after it
  std::optional<double> lag_seconds;  // as CdcProgress::lag_seconds, after it
  TimePoint at;                       // when it was confirmed

  friend bool operator==(const BatchSummary&, const BatchSummary&) = default;
};

struct TableChanges {
  TableRef table;
  std::uint64_t changes = 0;

  friend bool operator==(const TableChanges&, const TableChanges&) = default;
};

struct CdcProgress {
  std::optional<Lsn> confirmed;  // last position confirmed to the source
  Lsn source_head;               // newest position the source reported
  std::uint64_t lag_bytes = 0;   // source_head - confirmed, where both are known
  std::uint64_t batches = 0;     // applied and confirmed since the pipe was created
  std::uint64_t changes = 0;
  std::optional<TimePoint> last_batch_at;
  // How old the pipe's view of the source is: 0 when nothing waits (lag_bytes is 0), else the time
  // since the newest applied transaction committed at the source (CdcBatch::committed_at). While
  // the pipe retries an error or has failed, it grows from that commit or the last time nothing
  // waited, whichever is newer. Unknown until a batch was applied with a commit time or left
  // nothing waiting.
  std::optional<double> lag_seconds;
  std::optional<BatchSummary> last_batch;
  std::vector<TableChanges> tables;  // changes applied per table by this process, in table order

  friend bool operator==(const CdcProgress&, const CdcProgress&) = default;
};

// The operation being retried now, if any.
struct RetryStatus {
  std::string operation;  // e.g. "setup", "snapshot partition public.orders#3", "cdc"
  std::uint32_t attempt = 0;
  std::uint32_t max_attempts = 0;  // 0: without end
  std::string last_error;
  std::optional<TimePoint> next_attempt_at;

  friend bool operator==(const RetryStatus&, const RetryStatus&) = default;
};

struct ErrorInfo {
  std::string message;
  State state = State::Unknown;  // where it happened
  TimePoint at;
  bool fatal = false;

  friend bool operator==(const ErrorInfo&, const ErrorInfo&) = default;
};

struct HistoryEntry {
  State from = State::Unknown;
  Trigger trigger = Trigger::Pause;
  State to = State::Unknown;
  TimePoint at;

  friend bool operator==(const HistoryEntry&, const HistoryEntry&) = default;
};

// A definition change the pipe followed (or stopped a table at), as status and history show it.
struct SchemaEvent {
  TableRef table;
  SchemaChange::Kind kind = SchemaChange::Kind::ColumnsAdded;
  std::string description;
  TimePoint at;

  friend bool operator==(const SchemaEvent&, const SchemaEvent&) = default;
};

// A table whose changes are no longer applied: its definition changed in a way the pipe cannot
// follow (a rename, a new type or key). A resync reloads it.
struct StoppedTable {
  TableRef table;
  std::string reason;
  TimePoint at;

  friend bool operator==(const StoppedTable&, const StoppedTable&) = default;
};

struct PipeStatus {
  std::string id;
  State state = State::Unknown;
  Mode mode = Mode::InitialLoadAndCdc;
  TimePoint since;  // when the pipe entered `state`
  TriggerSet allowed_commands;
  std::vector<TableRef> tables;
  std::vector<TableProgress> snapshot;  // per table of the current or last load
  CdcProgress cdc;
  std::optional<SlotInfo> slot;
  std::optional<RetryStatus> retry;
  std::optional<ErrorInfo> last_error;
  std::string degraded_reason;
  Settings settings;
  std::vector<HistoryEntry> history;  // the newest kHistoryLimit transitions, oldest first
  std::uint64_t transitions = 0;      // all transitions ever, including those trimmed
  std::vector<StoppedTable> stopped_tables;
  std::vector<SchemaEvent> schema_changes;  // the newest kSchemaLimit, oldest first

  static constexpr std::size_t kHistoryLimit = 256;
  static constexpr std::size_t kSchemaLimit = 64;
};

// A record that could not be read: reported by name, never dropped, never overwritten.
struct BrokenRecord {
  std::string name;    // the pipe id where known, else the file name
  std::string reason;  // "checksum mismatch", "format version 3 is newer than 2", ...
};

}  // namespace clickpipe
