// What a pipe saves: everything needed to carry on after the process dies, and nothing secret.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clickpipe/lifecycle/lifecycle.hpp"
#include "clickpipe/lsn.hpp"
#include "clickpipe/settings.hpp"
#include "clickpipe/slot.hpp"
#include "clickpipe/status.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe {

// What the user last asked for, kept apart from the state the pipe is in: a pause asked for just
// before a crash is carried out after it.
enum class Intent : std::uint8_t { Running, Paused, Deleted };

constexpr std::string_view to_string(Intent i) noexcept {
  switch (i) {
    case Intent::Running: return "running";
    case Intent::Paused: return "paused";
    case Intent::Deleted: return "deleted";
  }
  return "running";
}

// One table's initial load: the plan and which partitions the destination has committed.
struct TableLoadRecord {
  TableRef table;
  std::vector<Partition> partitions;
  std::vector<std::uint32_t> done;  // indexes of committed partitions, ascending
  std::uint64_t rows_done = 0;

  friend bool operator==(const TableLoadRecord&, const TableLoadRecord&) = default;
};

struct PipeRecord {
  // Version 2 added the intent and cancelled table additions, version 3 stopped tables, schema
  // changes, relation OIDs, attnums and partitions; older records are read and upgraded. A newer
  // version than this is refused.
  static constexpr int kFormatVersion = 3;

  std::string id;
  Lifecycle lifecycle;  // state, mode and context (the state a Failed pipe failed in, ...)
  Intent intent = Intent::Running;
  // With Intent::Deleted: the destination tables go too (DeleteOptions::drop_destination). Saved
  // only when set, so a record without it reads as before.
  bool drop_destination = false;
  TimePoint since;
  Settings settings;
  std::vector<TableRef> tables;
  std::vector<TableDefinition> definitions;  // recorded in Setup
  std::vector<TableRef> pending_added;
  std::vector<TableRef> pending_removed;
  std::vector<TableRef> cancelled_added;
  std::optional<SlotInfo> slot;
  std::vector<TableLoadRecord> load;
  std::optional<Lsn> confirmed;  // last CDC position saved (and then confirmed to the source)
  std::uint64_t cdc_batches = 0;
  std::uint64_t cdc_changes = 0;
  std::optional<ErrorInfo> last_error;
  std::vector<HistoryEntry> history;
  std::uint64_t transitions = 0;
  std::vector<StoppedTable> stopped_tables;
  std::vector<SchemaEvent> schema_changes;
  // Records before version 3 whose pipe ran CDC read as PackedLegacy: their tables hold versions
  // of that scheme.
  RowVersions row_versions = RowVersions::CommitLsn;

  friend bool operator==(const PipeRecord&, const PipeRecord&) = default;
};

}  // namespace clickpipe
