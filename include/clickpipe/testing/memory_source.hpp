// An in-memory PostgreSQL stand-in: tables of rows, a change log with increasing positions, and
// replication slots that retain the log after their confirmed position.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include "clickpipe/change.hpp"
#include "clickpipe/clock.hpp"
#include "clickpipe/slot.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe::testing {

// Primary key values of a row, joined: the identity of a row at both ends.
using Key = std::string;
Key key_of(const TableDefinition& def, const Values& row);

// Thread-safe.
class MemorySource {
 public:
  MemorySource() = default;
  MemorySource(const MemorySource&) = delete;
  MemorySource& operator=(const MemorySource&) = delete;
  ~MemorySource();
  struct Snapshot {
    Lsn at;
    std::map<TableRef, std::map<Key, Values>> rows;
  };

  // Makes the source durable across processes: replays `path` (a torn last line, from a process
  // killed mid-write, is ignored) and appends every later change to it before it is visible.
  // Call before anything else.
  void open_journal(const std::string& path);

  void create_table(TableDefinition def);  // needs a primary key
  std::optional<TableDefinition> definition(const TableRef& table) const;

  // Each call commits one transaction at a new position, returned.
  Lsn insert(const TableRef& table, Values row);
  Lsn update(const TableRef& table, Values row);  // same key; insert if absent
  Lsn update_key(const TableRef& table, const Values& old_row, Values row);  // key changes
  Lsn erase(const TableRef& table, const Values& row);                       // by the row's key
  Lsn truncate(const TableRef& table);
  // Inserts many rows in one transaction.
  Lsn insert_many(const TableRef& table, std::vector<Values> rows);
  // WAL written by something else (another database): moves the head only.
  Lsn write_elsewhere();

  Lsn head() const;
  // Where commit times come from (CdcBatch::committed_at); default: the system clock. Tests on a
  // ManualClock give it here so the lag in seconds is measured on one clock.
  void use_clock(std::shared_ptr<const Clock> clock);
  std::map<Key, Values> rows(const TableRef& table) const;
  std::size_t row_count(const TableRef& table) const;
  std::shared_ptr<const Snapshot> snapshot(const std::vector<TableRef>& tables) const;

  // Whole transactions committed after `after` touching `tables`: stops at `max_changes` (a larger
  // transaction comes whole) or when `wait` has passed or `stop` is requested, whichever is first.
  // `end` is safe to confirm: the last transaction included, or the head when nothing is pending.
  CdcBatch read_changes(Lsn after, const std::set<TableRef>& tables, std::size_t max_changes,
                        std::chrono::milliseconds wait, std::stop_token stop) const;

  // Slots: created at the head (idempotent: an existing slot is returned as it is).
  SlotInfo create_slot(const std::string& name);
  std::optional<SlotInfo> slot(const std::string& name) const;
  std::optional<Lsn> confirmed(const std::string& name) const;
  void confirm(const std::string& name, Lsn position);  // moving backwards is ignored
  void drop_slot(const std::string& name);
  std::size_t retained_transactions() const;

 private:
  struct Txn {
    Lsn commit;
    std::vector<Change> changes;
    std::chrono::system_clock::time_point committed_at;  // CdcBatch::committed_at
  };
  struct Slot {
    SlotInfo info;
    Lsn confirmed;
  };
  Lsn commit_locked(std::vector<Change> changes);
  void journal_locked(const std::string& line);
  void replay(const std::string& line);
  void apply_locked(const Change& c);
  void trim_locked();
  const TableDefinition& def_locked(const TableRef& table) const;

  mutable std::mutex mu_;
  std::shared_ptr<const Clock> clock_;  // null: the system clock
  mutable std::condition_variable_any cv_;
  std::map<TableRef, TableDefinition> defs_;
  std::map<TableRef, std::map<Key, Values>> tables_;
  std::vector<Txn> log_;  // only what some slot still needs
  std::map<std::string, Slot> slots_;
  Lsn head_{0};
  int journal_fd_ = -1;
};

}  // namespace clickpipe::testing
