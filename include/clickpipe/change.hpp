// Change events as the CDC streamer hands them over: source-neutral, values as text.
#pragma once

#include <cstdint>
#include <string>
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

  std::uint64_t version() const noexcept { return row_version(commit_lsn, position); }
};

// What one pull returns. `end` is the position to confirm once the batch is applied: the commit
// LSN of the last whole transaction in it, or, when the pipe's tables were idle, a later position
// the source reported (so an idle slot does not hold WAL forever). Never inside a transaction.
struct CdcBatch {
  std::vector<Change> changes;
  Lsn end;
  Lsn source_head;  // the newest position the source knows (0 where unknown): lag = head - end
};

}  // namespace clickpipe
