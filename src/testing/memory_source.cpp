#include "clickpipe/testing/memory_source.hpp"

#include <unistd.h>

#include <algorithm>

#include "clickpipe/error.hpp"
#include "clickpipe/json.hpp"
#include "journal.hpp"

namespace clickpipe::testing {

Key key_of(const TableDefinition& def, const Values& row) {
  Key key;
  for (const auto& pk : def.primary_key) {
    auto it = std::find_if(def.columns.begin(), def.columns.end(),
                           [&](const Column& c) { return c.name == pk; });
    const auto i = static_cast<std::size_t>(it - def.columns.begin());
    if (it == def.columns.end() || i >= row.size()) {
      throw FatalError("row of " + def.table.qualified() + " lacks key column " + pk);
    }
    if (!key.empty()) key += '\x1f';
    key += row[i].is_null() ? std::string("\x1e") : row[i].text;
  }
  return key;
}

MemorySource::~MemorySource() {
  if (journal_fd_ >= 0) ::close(journal_fd_);
}

void MemorySource::open_journal(const std::string& path) {
  const int fd = journal::open_and_replay(path, [this](const std::string& line) { replay(line); });
  std::lock_guard lk(mu_);
  journal_fd_ = fd;
}

void MemorySource::journal_locked(const std::string& line) {
  if (journal_fd_ >= 0) journal::append(journal_fd_, line);
}

void MemorySource::replay(const std::string& line) {
  const nlohmann::json j = nlohmann::json::parse(line);
  const std::string op = j.at("op");
  std::lock_guard lk(mu_);
  if (op == "table") {
    auto def = j.at("def").get<TableDefinition>();
    tables_[def.table];
    defs_[def.table] = std::move(def);
  } else if (op == "txn") {
    std::vector<Change> changes;
    for (const auto& c : j.at("c")) changes.push_back(journal::change_from(c));
    commit_locked(std::move(changes));
  } else if (op == "elsewhere") {
    head_.value += 1;
  } else if (op == "slot") {
    slots_[j.at("name")] = Slot{SlotInfo{j.at("name"), Lsn{j.at("at").get<std::uint64_t>()}},
                                Lsn{j.at("at").get<std::uint64_t>()}};
  } else if (op == "confirm") {
    auto it = slots_.find(j.at("name").get<std::string>());
    if (it != slots_.end()) it->second.confirmed = Lsn{j.at("at").get<std::uint64_t>()};
    trim_locked();
  } else if (op == "drop") {
    slots_.erase(j.at("name").get<std::string>());
    trim_locked();
  } else {
    throw FatalError("unknown source journal entry: " + op);
  }
}

void MemorySource::create_table(TableDefinition def) {
  if (def.primary_key.empty()) throw FatalError(def.table.qualified() + " has no primary key");
  std::lock_guard lk(mu_);
  journal_locked(nlohmann::json{{"op", "table"}, {"def", def}}.dump());
  tables_[def.table];
  defs_[def.table] = std::move(def);
}

std::optional<TableDefinition> MemorySource::definition(const TableRef& table) const {
  std::lock_guard lk(mu_);
  auto it = defs_.find(table);
  if (it == defs_.end()) return std::nullopt;
  return it->second;
}

const TableDefinition& MemorySource::def_locked(const TableRef& table) const {
  auto it = defs_.find(table);
  if (it == defs_.end()) throw FatalError("no such table: " + table.qualified());
  return it->second;
}

void MemorySource::apply_locked(const Change& c) {
  const TableDefinition& def = def_locked(c.table);
  auto& rows = tables_[c.table];
  switch (c.kind) {
    case ChangeKind::Insert:
    case ChangeKind::Update:
      if (!c.old_key.empty()) rows.erase(key_of(def, c.old_key));
      rows[key_of(def, c.values)] = c.values;
      break;
    case ChangeKind::Delete: rows.erase(key_of(def, c.values)); break;
    case ChangeKind::Truncate: rows.clear(); break;
  }
}

Lsn MemorySource::commit_locked(std::vector<Change> changes) {
  const Lsn at{head_.value + 1};
  nlohmann::json logged = nlohmann::json::array();
  for (std::size_t i = 0; i < changes.size(); ++i) {
    changes[i].commit_lsn = at;
    changes[i].position = i;
    const TableDefinition& def = def_locked(changes[i].table);
    if (changes[i].kind != ChangeKind::Truncate) key_of(def, changes[i].values);  // throws if bad
    if (journal_fd_ >= 0) logged.push_back(journal::change(changes[i]));
  }
  // Durable first, then visible.
  if (journal_fd_ >= 0) journal_locked(nlohmann::json{{"op", "txn"}, {"c", logged}}.dump());
  head_ = at;
  for (const Change& c : changes) apply_locked(c);
  // Only slots keep the log alive, as WAL is kept for replication slots.
  if (!slots_.empty()) {
    log_.push_back(
        Txn{head_, std::move(changes), clock_ ? clock_->now() : std::chrono::system_clock::now()});
  }
  cv_.notify_all();
  return head_;
}

Lsn MemorySource::insert(const TableRef& table, Values row) {
  std::lock_guard lk(mu_);
  def_locked(table);
  return commit_locked({Change{ChangeKind::Insert, table, {}, 0, std::move(row), {}}});
}

Lsn MemorySource::insert_many(const TableRef& table, std::vector<Values> rows) {
  std::lock_guard lk(mu_);
  def_locked(table);
  std::vector<Change> changes;
  changes.reserve(rows.size());
  for (auto& r : rows)
    changes.push_back(Change{ChangeKind::Insert, table, {}, 0, std::move(r), {}});
  return commit_locked(std::move(changes));
}

Lsn MemorySource::update(const TableRef& table, Values row) {
  std::lock_guard lk(mu_);
  def_locked(table);
  return commit_locked({Change{ChangeKind::Update, table, {}, 0, std::move(row), {}}});
}

Lsn MemorySource::update_key(const TableRef& table, const Values& old_row, Values row) {
  std::lock_guard lk(mu_);
  const TableDefinition& def = def_locked(table);
  Values old_key;
  for (const auto& pk : def.primary_key) {
    for (std::size_t i = 0; i < def.columns.size(); ++i) {
      if (def.columns[i].name == pk) old_key.push_back(old_row.at(i));
    }
  }
  // The old key travels as a full-width row with only key columns set, as pgoutput's 'K' tuple.
  Values old_full(def.columns.size());
  std::size_t k = 0;
  for (std::size_t i = 0; i < def.columns.size(); ++i) {
    if (std::find(def.primary_key.begin(), def.primary_key.end(), def.columns[i].name) !=
        def.primary_key.end()) {
      old_full[i] = old_key.at(k++);
    }
  }
  return commit_locked({Change{ChangeKind::Update, table, {}, 0, std::move(row), old_full}});
}

Lsn MemorySource::erase(const TableRef& table, const Values& row) {
  std::lock_guard lk(mu_);
  def_locked(table);
  return commit_locked({Change{ChangeKind::Delete, table, {}, 0, row, {}}});
}

Lsn MemorySource::truncate(const TableRef& table) {
  std::lock_guard lk(mu_);
  def_locked(table);
  return commit_locked({Change{ChangeKind::Truncate, table, {}, 0, {}, {}}});
}

Lsn MemorySource::write_elsewhere() {
  std::lock_guard lk(mu_);
  journal_locked(R"({"op":"elsewhere"})");
  head_.value += 1;
  cv_.notify_all();
  return head_;
}

Lsn MemorySource::head() const {
  std::lock_guard lk(mu_);
  return head_;
}

std::map<Key, Values> MemorySource::rows(const TableRef& table) const {
  std::lock_guard lk(mu_);
  auto it = tables_.find(table);
  return it == tables_.end() ? std::map<Key, Values>{} : it->second;
}

std::size_t MemorySource::row_count(const TableRef& table) const {
  std::lock_guard lk(mu_);
  auto it = tables_.find(table);
  return it == tables_.end() ? 0 : it->second.size();
}

std::shared_ptr<const MemorySource::Snapshot> MemorySource::snapshot(
    const std::vector<TableRef>& tables) const {
  auto snap = std::make_shared<Snapshot>();
  std::lock_guard lk(mu_);
  snap->at = head_;
  for (const auto& t : tables) {
    def_locked(t);
    snap->rows[t] = tables_.at(t);
  }
  return snap;
}

void MemorySource::use_clock(std::shared_ptr<const Clock> clock) {
  std::lock_guard lk(mu_);
  clock_ = std::move(clock);
}

CdcBatch MemorySource::read_changes(Lsn after, const std::set<TableRef>& tables,
                                    std::size_t max_changes, std::chrono::milliseconds wait,
                                    std::stop_token stop) const {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  CdcBatch batch;
  batch.end = after;
  std::unique_lock lk(mu_);
  Lsn scanned = after;
  for (;;) {
    auto it = std::upper_bound(log_.begin(), log_.end(), scanned,
                               [](Lsn v, const Txn& t) { return v < t.commit; });
    bool full = false;
    for (; it != log_.end(); ++it) {
      std::size_t added = 0;
      for (const Change& c : it->changes) {
        if (tables.count(c.table)) {
          batch.changes.push_back(c);
          ++added;
        }
      }
      scanned = it->commit;
      if (added) {
        batch.end = it->commit;
        batch.committed_at = it->committed_at;
      }
      if (batch.changes.size() >= max_changes) {
        full = true;
        break;
      }
    }
    if (!full) scanned = std::max(scanned, head_);
    batch.source_head = head_;
    if (full) return batch;
    // Nothing of ours is pending up to the head: the head is safe to confirm.
    batch.end = std::max(batch.end, scanned);
    if (stop.stop_requested() || std::chrono::steady_clock::now() >= deadline) return batch;
    const Lsn seen = head_;
    cv_.wait_until(lk, stop, deadline, [&] { return head_ != seen; });
  }
}

SlotInfo MemorySource::create_slot(const std::string& name) {
  std::lock_guard lk(mu_);
  auto it = slots_.find(name);
  if (it != slots_.end()) return it->second.info;
  SlotInfo info{name, head_};
  journal_locked(nlohmann::json{{"op", "slot"}, {"name", name}, {"at", head_.value}}.dump());
  slots_[name] = Slot{info, head_};
  return info;
}

std::optional<SlotInfo> MemorySource::slot(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = slots_.find(name);
  if (it == slots_.end()) return std::nullopt;
  return it->second.info;
}

std::optional<Lsn> MemorySource::confirmed(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = slots_.find(name);
  if (it == slots_.end()) return std::nullopt;
  return it->second.confirmed;
}

void MemorySource::confirm(const std::string& name, Lsn position) {
  std::lock_guard lk(mu_);
  auto it = slots_.find(name);
  if (it == slots_.end()) throw FatalError("replication slot " + name + " does not exist");
  if (position > head_) throw FatalError("confirmed position is beyond the head");
  if (position > it->second.confirmed) {
    journal_locked(
        nlohmann::json{{"op", "confirm"}, {"name", name}, {"at", position.value}}.dump());
    it->second.confirmed = position;
  }
  trim_locked();
}

void MemorySource::drop_slot(const std::string& name) {
  std::lock_guard lk(mu_);
  if (slots_.count(name)) journal_locked(nlohmann::json{{"op", "drop"}, {"name", name}}.dump());
  slots_.erase(name);
  trim_locked();
}

void MemorySource::trim_locked() {
  if (slots_.empty()) {
    log_.clear();
    return;
  }
  Lsn keep_after = head_;
  for (const auto& [n, s] : slots_) keep_after = std::min(keep_after, s.confirmed);
  auto it = std::upper_bound(log_.begin(), log_.end(), keep_after,
                             [](Lsn v, const Txn& t) { return v < t.commit; });
  log_.erase(log_.begin(), it);
}

std::size_t MemorySource::retained_transactions() const {
  std::lock_guard lk(mu_);
  return log_.size();
}

}  // namespace clickpipe::testing
