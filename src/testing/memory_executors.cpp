#include "clickpipe/testing/memory_executors.hpp"

#include <algorithm>
#include <thread>

#include "clickpipe/clock.hpp"
#include "clickpipe/error.hpp"

namespace clickpipe::testing {

// ---- provisioning ----

void MemoryService::provision(const PipeInfo& pipe, const ExecContext& ctx) {
  // One bring-up at a time: pipes that arrive meanwhile wait, then find the service up.
  std::lock_guard serial(bring_up_mu_);
  bool up = false;
  {
    std::lock_guard lk(mu_);
    up = up_;
  }
  if (!up) {
    // Bringing the shared infrastructure up is the slow part; only the first pipe pays it.
    sleep_unless_stopped(bring_up_, ctx.stop);
    ctx.throw_if_stopped();
  }
  std::lock_guard lk(mu_);
  if (!up_) {
    up_ = true;
    ++bring_ups_;
  }
  pipes_.insert(pipe.id);
}

int MemoryService::bring_ups() const {
  std::lock_guard lk(mu_);
  return bring_ups_;
}

std::set<std::string> MemoryService::pipes() const {
  std::lock_guard lk(mu_);
  return pipes_;
}

void MemoryProvisioner::provision(const PipeInfo& pipe, ExecContext& ctx) {
  service_->provision(pipe, ctx);
}

// ---- table setup ----

std::vector<TableDefinition> MemoryTableSetup::read_definitions(std::span<const TableRef> tables,
                                                                ExecContext& ctx) {
  std::vector<TableDefinition> out;
  for (const auto& t : tables) {
    ctx.throw_if_stopped();
    auto def = source_->definition(t);
    if (!def) throw FatalError("source table " + t.qualified() + " does not exist");
    out.push_back(std::move(*def));
  }
  return out;
}

void MemoryTableSetup::create_tables(std::span<const TableDefinition> tables, TableTarget target,
                                     ExecContext& ctx) {
  for (const auto& def : tables) {
    ctx.throw_if_stopped();
    if (target == TableTarget::Resync) {
      // A resync starts from an empty copy, whatever an interrupted one left.
      dest_->drop_table(destination_name(def.table, true));
      dest_->create_table(destination_name(def.table, true), def);
    } else {
      dest_->create_table(destination_name(def.table), def);
    }
  }
  std::lock_guard lk(mu_);
  for (const auto& def : tables) publication_.insert(def.table);
}

void MemoryTableSetup::swap_resync_tables(std::span<const TableDefinition> tables,
                                          ExecContext& ctx) {
  for (const auto& def : tables) {
    ctx.throw_if_stopped();
    const std::string main = destination_name(def.table);
    const std::string copy = destination_name(def.table, true);
    if (!dest_->has_table(copy)) continue;  // swapped and dropped before a restart
    dest_->create_table(main, def);
    dest_->exchange(main, copy);
    dest_->drop_table(copy);
  }
}

void MemoryTableSetup::remove_tables(std::span<const TableRef> tables, ExecContext& ctx) {
  ctx.throw_if_stopped();
  std::lock_guard lk(mu_);
  for (const auto& t : tables) publication_.erase(t);
}

void MemoryTableSetup::teardown(ExecContext& ctx) {
  ctx.throw_if_stopped();
  source_->drop_slot(slot_);
  std::lock_guard lk(mu_);
  publication_.clear();
}

void MemoryTableSetup::drop_destination_tables(std::span<const TableRef> tables, ExecContext& ctx) {
  for (const auto& t : tables) {
    ctx.throw_if_stopped();
    dest_->drop_table(destination_name(t));
    dest_->drop_table(destination_name(t, true));
  }
}

std::set<TableRef> MemoryTableSetup::publication() const {
  std::lock_guard lk(mu_);
  return publication_;
}

// ---- snapshot ----

std::optional<SlotInfo> MemorySnapshotCopier::begin(std::span<const TableDefinition> tables,
                                                    bool keep_slot, ExecContext& ctx) {
  ctx.throw_if_stopped();
  std::optional<SlotInfo> slot;
  // The slot first, then the view: a view at or after the slot's point is consistent with CDC.
  if (keep_slot) slot = source_->create_slot(slot_);
  std::vector<TableRef> refs;
  for (const auto& d : tables) refs.push_back(d.table);
  auto snap = source_->snapshot(refs);
  std::lock_guard lk(mu_);
  view_ = std::move(snap);
  return slot;
}

std::shared_ptr<const MemorySource::Snapshot> MemorySnapshotCopier::view() const {
  std::lock_guard lk(mu_);
  if (!view_) throw FatalError("snapshot: copy before begin");
  return view_;
}

std::vector<Partition> MemorySnapshotCopier::plan_partitions(const TableDefinition& table,
                                                             ExecContext& ctx) {
  auto snap = view();
  const auto& rows = snap->rows.at(table.table);
  const std::size_t n = rows.size();
  const std::size_t max_parts = std::max<std::size_t>(1, ctx.settings.max_partitions_per_table);
  std::size_t per = std::max<std::size_t>(1, ctx.settings.rows_per_partition);
  if ((n + per - 1) / per > max_parts) per = (n + max_parts - 1) / max_parts;

  std::vector<Partition> parts;
  std::string begin;  // "" is unbounded below
  std::size_t count = 0;
  for (const auto& [key, row] : rows) {
    if (count == per) {
      parts.push_back(Partition{static_cast<std::uint32_t>(parts.size()), begin, key, count});
      begin = key;
      count = 0;
    }
    ++count;
  }
  // The last partition is unbounded above, so rows inserted after planning are never missed.
  parts.push_back(Partition{static_cast<std::uint32_t>(parts.size()), begin, "", count});
  return parts;
}

std::uint64_t MemorySnapshotCopier::copy_partition(const TableDefinition& table,
                                                   const Partition& partition, TableTarget target,
                                                   ExecContext& ctx) {
  auto snap = view();
  const auto& rows = snap->rows.at(table.table);
  auto it = partition.begin.empty() ? rows.begin() : rows.lower_bound(partition.begin);
  auto end = partition.end.empty() ? rows.end() : rows.lower_bound(partition.end);
  const std::string name = destination_name(table.table, target == TableTarget::Resync);
  std::uint64_t copied = 0;
  while (it != end) {
    ctx.throw_if_stopped();
    std::vector<std::pair<Key, VersionedRow>> chunk;
    for (; it != end && chunk.size() < kChunkRows; ++it) {
      chunk.emplace_back(it->first, VersionedRow{it->second, 0, false});
    }
    const std::size_t n = chunk.size();
    dest_->insert(name, std::move(chunk));
    copied += n;
    ctx.progress.rows_copied(table.table, partition.index, n);
  }
  return copied;
}

void MemorySnapshotCopier::end(ExecContext&) {
  std::lock_guard lk(mu_);
  view_.reset();
}

// ---- CDC ----

Lsn MemoryCdcStreamer::start(std::optional<Lsn> confirmed, std::span<const TableDefinition> tables,
                             ExecContext& ctx) {
  ctx.throw_if_stopped();
  tables_.clear();
  for (const auto& d : tables) tables_[d.table] = d;
  std::optional<Lsn> slot_confirmed = source_->confirmed(slot_);
  if (!confirmed) {
    cursor_ = source_->create_slot(slot_).consistent_point;
  } else {
    if (!slot_confirmed) {
      throw FatalError("replication slot " + slot_ + " is missing: changes may be lost; resync");
    }
    if (*slot_confirmed > *confirmed) {
      throw FatalError("replication slot " + slot_ +
                       " is ahead of the saved position: changes "
                       "may be lost; resync");
    }
    cursor_ = *confirmed;
  }
  open_ = true;
  return cursor_;
}

CdcBatch MemoryCdcStreamer::pull(ExecContext& ctx) {
  if (!open_) throw FatalError("cdc: pull before start");
  std::set<TableRef> wanted;
  for (const auto& [t, d] : tables_) wanted.insert(t);
  CdcBatch batch = source_->read_changes(cursor_, wanted, ctx.settings.pull_batch_size,
                                         ctx.settings.sync_interval, ctx.stop);
  cursor_ = batch.end;
  return batch;
}

void MemoryCdcStreamer::apply(const CdcBatch& batch, ExecContext& ctx) {
  std::map<std::string, std::vector<std::pair<Key, VersionedRow>>> out;
  for (const Change& c : batch.changes) {
    auto it = tables_.find(c.table);
    if (it == tables_.end()) continue;
    const TableDefinition& def = it->second;
    const std::string name = destination_name(c.table);
    auto& rows = out[name];
    switch (c.kind) {
      case ChangeKind::Insert:
      case ChangeKind::Update: {
        if (!c.old_key.empty()) {
          // A key change: the old key goes away, as a delete (upstream would leave it behind).
          rows.emplace_back(key_of(def, c.old_key),
                            VersionedRow{c.old_key, c.version(ctx.row_versions), true});
        }
        Values values = c.values;
        const Key key = key_of(def, values);
        if (std::any_of(values.begin(), values.end(),
                        [](const Datum& d) { return d.kind == Datum::Kind::UnchangedToast; })) {
          // Keep what the destination has for values the source did not resend.
          dest_->insert(name, std::move(rows));
          rows.clear();
          auto current = dest_->latest(name, key);
          for (std::size_t i = 0; i < values.size(); ++i) {
            if (values[i].kind == Datum::Kind::UnchangedToast) {
              values[i] =
                  current && i < current->values.size() ? current->values[i] : Datum::null();
            }
          }
        }
        rows.emplace_back(key, VersionedRow{std::move(values), c.version(ctx.row_versions), false});
        break;
      }
      case ChangeKind::Delete:
        rows.emplace_back(key_of(def, c.values),
                          VersionedRow{c.values, c.version(ctx.row_versions), true});
        break;
      case ChangeKind::Truncate:
        dest_->insert(name, std::move(rows));
        rows.clear();
        for (const auto& [key, values] : dest_->final_rows(name)) {
          rows.emplace_back(key, VersionedRow{values, c.version(ctx.row_versions), true});
        }
        break;
    }
  }
  // Once started, a batch is applied whole: a stop request is honoured by pull, not here.
  (void)ctx;
  for (auto& [name, rows] : out) dest_->insert(name, std::move(rows));
}

void MemoryCdcStreamer::confirm(Lsn position, ExecContext&) { source_->confirm(slot_, position); }

void MemoryCdcStreamer::stop(ExecContext&) { open_ = false; }

Executors MemoryWorld::executors(const std::string& pipe_id) const {
  const std::string slot = slot_name(pipe_id);
  return Executors{std::make_shared<MemoryProvisioner>(service),
                   std::make_shared<MemoryTableSetup>(source, destination, slot),
                   std::make_shared<MemorySnapshotCopier>(source, destination, slot),
                   std::make_shared<MemoryCdcStreamer>(source, destination, slot)};
}

Lsn IdleCdcStreamer::start(std::optional<Lsn> confirmed, std::span<const TableDefinition>,
                           ExecContext&) {
  ++starts_;
  return confirmed.value_or(Lsn{1});
}

CdcBatch IdleCdcStreamer::pull(ExecContext& ctx) {
  sleep_unless_stopped(ctx.settings.sync_interval, ctx.stop);
  CdcBatch b;
  b.end = Lsn{1};
  b.source_head = Lsn{1};
  return b;
}

}  // namespace clickpipe::testing
