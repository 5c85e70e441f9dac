// The pgoutput logical replication protocol (version 1): messages decoded into typed values, and
// whole transactions assembled into Changes. Safe on any bytes: every read is bounds-checked, and
// malformed input (including names that are not UTF-8) throws FatalError with a message starting
// "pgoutput: " that shows no raw bytes. No I/O, except that a transaction outgrowing its memory
// budget is spilled to a temporary file.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "clickpipe/change.hpp"
#include "clickpipe/lsn.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe::postgres::pgoutput {

struct Begin {
  Lsn final_lsn;
  std::int64_t commit_time = 0;
  std::uint32_t xid = 0;
};
struct Commit {
  std::uint8_t flags = 0;
  Lsn commit_lsn;
  Lsn end_lsn;
  std::int64_t commit_time = 0;
};
struct Origin {
  Lsn commit_lsn;
  std::string name;
};
struct RelationColumn {
  bool key = false;
  std::string name;
  std::uint32_t type_oid = 0;
  std::int32_t type_modifier = -1;
};
struct Relation {
  std::uint32_t id = 0;
  TableRef table;
  char replica_identity = 'd';
  std::vector<RelationColumn> columns;
};
struct Type {
  std::uint32_t oid = 0;
  std::string schema;
  std::string name;
};
struct Insert {
  std::uint32_t relation = 0;
  Values row;
};
struct Update {
  std::uint32_t relation = 0;
  char old_kind = 0;  // 'K' old key, 'O' old row (REPLICA IDENTITY FULL), 0 none
  Values old_row;
  Values row;
};
struct Delete {
  std::uint32_t relation = 0;
  char old_kind = 'K';
  Values old_row;
};
struct Truncate {
  std::uint8_t options = 0;
  std::vector<std::uint32_t> relations;
};

using Message =
    std::variant<Begin, Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate>;

Message decode(std::span<const std::uint8_t> bytes);

}  // namespace clickpipe::postgres::pgoutput

namespace clickpipe::postgres {
class SchemaTracker;
class ChangeSpool;
}  // namespace clickpipe::postgres

namespace clickpipe::postgres::pgoutput {

// A committed transaction, its changes in order: first those spilled to a file (if it outgrew
// memory), then those in `changes`.
struct Transaction {
  Lsn commit_lsn;
  Lsn end_lsn;                           // the position to confirm once it is applied
  std::int64_t commit_time = 0;          // microseconds since 2000-01-01 UTC, as the server sent it
  std::shared_ptr<ChangeSpool> spilled;  // null when nothing was spilled
  std::vector<Change> changes;
  std::vector<SchemaChange> schema_changes;  // seen in it, to carry out before its changes
  std::size_t bytes = 0;                     // of `changes`, roughly

  std::uint64_t size() const;  // all its changes
};

// Roughly what a change takes in memory.
std::size_t approximate_bytes(const Change& c) noexcept;

// Feeds decoded messages in stream order; returns a transaction at each Commit. Keeps the
// relations it has seen (pgoutput sends each before its first use in a session).
class Assembler {
 public:
  // Maps rows through `tracker` (not owned): into the pipe's definitions, dropping relations not
  // in the pipe, and collecting schema changes. Without one, rows stay in relation order.
  void track(SchemaTracker* tracker) noexcept { tracker_ = tracker; }
  // Past `bytes` of changes held, the open transaction's changes go to a temporary file in `dir`
  // (the system's temporary directory when empty), so no transaction needs more memory.
  void spill_past(std::size_t bytes, std::string dir);

  std::optional<Transaction> feed(const Message& m);
  bool in_transaction() const noexcept { return open_; }
  const Relation* relation(std::uint32_t id) const;

 private:
  const Relation& need(std::uint32_t id) const;
  void add(Change c);
  std::map<std::uint32_t, Relation> relations_;
  bool open_ = false;
  Transaction current_;
  std::uint64_t position_ = 0;
  SchemaTracker* tracker_ = nullptr;
  std::vector<SchemaChange> pending_schema_;  // seen outside a transaction
  std::size_t spill_bytes_ = 0;               // 0: never spill
  std::string spill_dir_;
};

}  // namespace clickpipe::postgres::pgoutput
