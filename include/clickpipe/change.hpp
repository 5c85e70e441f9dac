// Change events as the CDC streamer hands them over: source-neutral, values as text.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clickpipe/lsn.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe {

// One column value. An unchanged TOASTed value is not NULL: the source did not send it, and the
// destination must keep what it has.
struct Datum {
  enum class Kind : std::uint8_t { Null, Text, UnchangedToast };
  Kind kind = Kind::Null;
  std::string text;

  static Datum null() { return {}; }
  static Datum of(std::string t) { return {Kind::Text, std::move(t)}; }
  static Datum unchanged_toast() { return {Kind::UnchangedToast, {}}; }
  bool is_null() const noexcept { return kind == Kind::Null; }
  friend bool operator==(const Datum&, const Datum&) = default;
};

using Values = std::vector<Datum>;

enum class ChangeKind : std::uint8_t { Insert, Update, Delete, Truncate };

struct Change {
  ChangeKind kind = ChangeKind::Insert;
  TableRef table;
  Lsn commit_lsn;              // of the transaction the change belongs to
  std::uint64_t position = 0;  // 0-based position of the change inside its transaction
  Values values;               // new row (insert/update); key or old row (delete)
  Values old_key;              // update that changed the key: the old key columns; else empty

  // The commit LSN (row_version): shared by every change of the transaction.
  std::uint64_t version() const { return row_version(commit_lsn); }
  // The version under a pipe's scheme (ExecContext::row_versions).
  std::uint64_t version(RowVersions scheme) const {
    return scheme == RowVersions::CommitLsn ? version() : packed_row_version(commit_lsn, position);
  }
};

// A change to a table's definition seen in the stream, in the pipe's vocabulary.
struct SchemaChange {
  enum class Kind : std::uint8_t {
    ColumnsAdded,       // new columns, appended (Nullable at the destination; older rows NULL)
    ColumnsDropped,     // the destination keeps them; rows from now on get NULL or the default
    PartitionsChanged,  // leaf partitions attached (their rows copied) or detached
    TableStopped,       // a change the pipe cannot follow safely: the table's changes stop
    Identified,         // OID and column numbers recorded for a definition saved without them
  };
  Kind kind = Kind::ColumnsAdded;
  TableRef table;              // the pipe's name for the table
  TableDefinition definition;  // the definition from now on (unchanged for TableStopped)
  std::string description;     // what changed; for TableStopped also how to fix it

  friend bool operator==(const SchemaChange&, const SchemaChange&) = default;
};

constexpr std::string_view to_string(SchemaChange::Kind k) noexcept {
  switch (k) {
    case SchemaChange::Kind::ColumnsAdded: return "columns_added";
    case SchemaChange::Kind::ColumnsDropped: return "columns_dropped";
    case SchemaChange::Kind::PartitionsChanged: return "partitions_changed";
    case SchemaChange::Kind::TableStopped: return "table_stopped";
    case SchemaChange::Kind::Identified: return "identified";
  }
  return "columns_added";
}

// What one pull returns. `end` is the position to confirm once the batch is applied: the commit
// LSN of the last whole transaction in it, or, when the pipe's tables were idle, a later position
// the source reported (so an idle slot does not hold WAL forever). Never inside a transaction: a
// transaction too large for one batch comes in several, in order, and every batch but its last
// keeps `end` before it (so nothing is confirmed until all of it is applied).
struct CdcBatch {
  std::vector<Change> changes;
  Lsn end;
  Lsn source_head;  // the newest position the source knows (0 where unknown): lag = head - end
  // Definition changes to carry out before the changes (apply) and to save with the position.
  std::vector<SchemaChange> schema_changes;
  // Ends inside a transaction (one of the pieces of a large one). Schema changes it carries are
  // saved only with the batch that ends the transaction: replayed from before it, the stream
  // describes the tables as they were then.
  bool partial = false;
  // When the newest transaction the batch holds committed at the source, where known: the
  // runtime's lag in seconds is measured from it.
  std::optional<std::chrono::system_clock::time_point> committed_at;
};

}  // namespace clickpipe
