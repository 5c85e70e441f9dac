// An in-memory ClickHouse stand-in: versioned rows with a delete flag, read through a FINAL-like
// view (per key, the row with the highest version; among equal versions the one inserted last).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "clickpipe/change.hpp"
#include "clickpipe/table.hpp"
#include "clickpipe/testing/memory_source.hpp"

namespace clickpipe::testing {

struct VersionedRow {
  Values values;
  std::uint64_t version = 0;
  bool deleted = false;
};

// Thread-safe.
class MemoryDestination {
 public:
  MemoryDestination() = default;
  MemoryDestination(const MemoryDestination&) = delete;
  MemoryDestination& operator=(const MemoryDestination&) = delete;
  ~MemoryDestination();

  // As MemorySource::open_journal: replays `path`, then appends every write before applying it.
  void open_journal(const std::string& path);

  void create_table(const std::string& name, const TableDefinition& def);  // if not exists
  void drop_table(const std::string& name);                                // if exists
  bool has_table(const std::string& name) const;
  // Atomically exchanges the contents of two existing tables.
  void exchange(const std::string& a, const std::string& b);

  void insert(const std::string& name, std::vector<std::pair<Key, VersionedRow>> rows);

  // The FINAL view without deleted rows.
  std::map<Key, Values> final_rows(const std::string& name) const;
  std::optional<VersionedRow> latest(const std::string& name, const Key& key) const;
  std::optional<TableDefinition> definition(const std::string& name) const;
  std::uint64_t rows_inserted(const std::string& name) const;  // all versions, duplicates too
  std::uint64_t insert_calls() const;

 private:
  struct Table {
    TableDefinition def;
    std::map<Key, VersionedRow> latest;
    std::uint64_t inserted = 0;
  };
  Table& table_locked(const std::string& name);
  void journal_locked(const std::string& line);
  void replay(const std::string& line);
  void create_locked(const std::string& name, const TableDefinition& def);
  void insert_locked(const std::string& name, std::vector<std::pair<Key, VersionedRow>> rows);
  mutable std::mutex mu_;
  std::map<std::string, Table> tables_;
  std::uint64_t insert_calls_ = 0;
  int journal_fd_ = -1;
};

// The destination table a source table maps to: "schema.name", or "schema.name_resync".
std::string destination_name(const TableRef& table, bool resync = false);

}  // namespace clickpipe::testing
