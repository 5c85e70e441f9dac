#include "clickpipe/testing/memory_destination.hpp"

#include <unistd.h>

#include "clickpipe/error.hpp"
#include "clickpipe/json.hpp"
#include "journal.hpp"

namespace clickpipe::testing {

std::string destination_name(const TableRef& table, bool resync) {
  return table.qualified() + (resync ? "_resync" : "");
}

MemoryDestination::Table& MemoryDestination::table_locked(const std::string& name) {
  auto it = tables_.find(name);
  if (it == tables_.end()) throw FatalError("destination table " + name + " does not exist");
  return it->second;
}

MemoryDestination::~MemoryDestination() {
  if (journal_fd_ >= 0) ::close(journal_fd_);
}

void MemoryDestination::open_journal(const std::string& path) {
  const int fd = journal::open_and_replay(path, [this](const std::string& line) { replay(line); });
  std::lock_guard lk(mu_);
  journal_fd_ = fd;
}

void MemoryDestination::journal_locked(const std::string& line) {
  if (journal_fd_ >= 0) journal::append(journal_fd_, line);
}

void MemoryDestination::replay(const std::string& line) {
  const nlohmann::json j = nlohmann::json::parse(line);
  const std::string op = j.at("op");
  std::lock_guard lk(mu_);
  if (op == "create") {
    create_locked(j.at("name"), j.at("def").get<TableDefinition>());
  } else if (op == "drop") {
    tables_.erase(j.at("name").get<std::string>());
  } else if (op == "exchange") {
    std::swap(table_locked(j.at("a")), table_locked(j.at("b")));
  } else if (op == "insert") {
    std::vector<std::pair<Key, VersionedRow>> rows;
    for (const auto& r : j.at("rows")) {
      rows.emplace_back(r.at(0).get<std::string>(),
                        VersionedRow{journal::values_from(r.at(1)), r.at(2).get<std::uint64_t>(),
                                     r.at(3).get<bool>()});
    }
    insert_locked(j.at("name"), std::move(rows));
  } else {
    throw FatalError("unknown destination journal entry: " + op);
  }
}

void MemoryDestination::create_locked(const std::string& name, const TableDefinition& def) {
  if (!tables_.count(name)) tables_[name].def = def;
}

void MemoryDestination::create_table(const std::string& name, const TableDefinition& def) {
  std::lock_guard lk(mu_);
  if (tables_.count(name)) return;
  journal_locked(nlohmann::json{{"op", "create"}, {"name", name}, {"def", def}}.dump());
  create_locked(name, def);
}

void MemoryDestination::drop_table(const std::string& name) {
  std::lock_guard lk(mu_);
  if (!tables_.count(name)) return;
  journal_locked(nlohmann::json{{"op", "drop"}, {"name", name}}.dump());
  tables_.erase(name);
}

bool MemoryDestination::has_table(const std::string& name) const {
  std::lock_guard lk(mu_);
  return tables_.count(name) > 0;
}

void MemoryDestination::exchange(const std::string& a, const std::string& b) {
  std::lock_guard lk(mu_);
  Table& ta = table_locked(a);
  Table& tb = table_locked(b);
  journal_locked(nlohmann::json{{"op", "exchange"}, {"a", a}, {"b", b}}.dump());
  std::swap(ta, tb);
}

void MemoryDestination::insert(const std::string& name,
                               std::vector<std::pair<Key, VersionedRow>> rows) {
  std::lock_guard lk(mu_);
  table_locked(name);
  if (journal_fd_ >= 0) {
    nlohmann::json logged = nlohmann::json::array();
    for (const auto& [key, row] : rows) {
      logged.push_back(
          nlohmann::json::array({key, journal::values(row.values), row.version, row.deleted}));
    }
    journal_locked(nlohmann::json{{"op", "insert"}, {"name", name}, {"rows", logged}}.dump());
  }
  insert_locked(name, std::move(rows));
}

void MemoryDestination::insert_locked(const std::string& name,
                                      std::vector<std::pair<Key, VersionedRow>> rows) {
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
