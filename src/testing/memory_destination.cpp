#include "clickpipe/testing/memory_destination.hpp"

#include "clickpipe/error.hpp"

namespace clickpipe::testing {

std::string destination_name(const TableRef& table, bool resync) {
  return table.qualified() + (resync ? "_resync" : "");
}

MemoryDestination::Table& MemoryDestination::table_locked(const std::string& name) {
  auto it = tables_.find(name);
  if (it == tables_.end()) throw FatalError("destination table " + name + " does not exist");
  return it->second;
}

void MemoryDestination::create_table(const std::string& name, const TableDefinition& def) {
  std::lock_guard lk(mu_);
  if (!tables_.count(name)) tables_[name].def = def;
}

void MemoryDestination::drop_table(const std::string& name) {
  std::lock_guard lk(mu_);
  tables_.erase(name);
}

bool MemoryDestination::has_table(const std::string& name) const {
  std::lock_guard lk(mu_);
  return tables_.count(name) > 0;
}

void MemoryDestination::exchange(const std::string& a, const std::string& b) {
  std::lock_guard lk(mu_);
  std::swap(table_locked(a), table_locked(b));
}

void MemoryDestination::insert(const std::string& name,
                               std::vector<std::pair<Key, VersionedRow>> rows) {
  std::lock_guard lk(mu_);
  Table& t = table_locked(name);
  ++insert_calls_;
  t.inserted += rows.size();
  for (auto& [key, row] : rows) {
    auto it = t.latest.find(key);
    // ReplacingMergeTree keeps the highest version; among equals, the row inserted last.
    if (it == t.latest.end()) {
      t.latest.emplace(key, std::move(row));
    } else if (row.version >= it->second.version) {
      it->second = std::move(row);
    }
  }
}

std::map<Key, Values> MemoryDestination::final_rows(const std::string& name) const {
  std::lock_guard lk(mu_);
  std::map<Key, Values> out;
  auto it = tables_.find(name);
  if (it == tables_.end()) return out;
  for (const auto& [key, row] : it->second.latest) {
    if (!row.deleted) out.emplace(key, row.values);
  }
  return out;
}

std::optional<VersionedRow> MemoryDestination::latest(const std::string& name,
                                                      const Key& key) const {
  std::lock_guard lk(mu_);
  auto it = tables_.find(name);
  if (it == tables_.end()) return std::nullopt;
  auto r = it->second.latest.find(key);
  if (r == it->second.latest.end()) return std::nullopt;
  return r->second;
}

std::optional<TableDefinition> MemoryDestination::definition(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = tables_.find(name);
  if (it == tables_.end()) return std::nullopt;
  return it->second.def;
}

std::uint64_t MemoryDestination::rows_inserted(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = tables_.find(name);
  return it == tables_.end() ? 0 : it->second.inserted;
}

std::uint64_t MemoryDestination::insert_calls() const {
  std::lock_guard lk(mu_);
  return insert_calls_;
}

}  // namespace clickpipe::testing
