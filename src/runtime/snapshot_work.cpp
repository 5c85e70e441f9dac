// Snapshot work: the initial load (or a resync's, or an addition's) through the snapshot copier,
// its partitions planned, saved and copied by a PartitionScheduler.
#include <fmt/format.h>
#include <spdlog/logger.h>

#include "partition_scheduler.hpp"
#include "pipe_impl.hpp"

namespace clickpipe {

Pipe::Impl::Outcome Pipe::Impl::snapshot(std::stop_token stop) {
  std::vector<TableRef> refs;
  std::vector<TableRef> undefined;
  bool resyncing = false;
  bool adding = false;
  Mode mode{};
  {
    std::lock_guard lk(mu);
    resyncing = d.life.context().resyncing;
    adding = d.life.context().adding_tables;
    mode = d.life.mode();
    refs = adding ? d.pending_added : d.tables;
    for (const auto& r : refs) {
      if (!d.definitions.count(r)) undefined.push_back(r);
    }
  }
  // A resync can start before Setup of added tables ran, and re-reads the definitions of tables
  // whose changes stopped: read those first. A resync's tables are made as `_resync` copies below;
  // the tables they replace may have the old layout, which creating them would refuse to adopt.
  if (!undefined.empty()) set_up_tables(undefined, stop, !resyncing);
  const std::vector<TableDefinition> defs = definitions_of(refs);
  const TableTarget target = resyncing ? TableTarget::Resync : TableTarget::Main;
  if (resyncing) {
    // Fresh `_resync` copies only for tables whose load has not begun: after a restart, the
    // copies of tables already planned hold committed partitions.
    std::vector<TableDefinition> fresh;
    {
      std::lock_guard lk(mu);
      for (const auto& def : defs) {
        auto it = d.load.find(def.table);
        if (it == d.load.end() || !it->second.planned) fresh.push_back(def);
      }
    }
    if (!fresh.empty()) {
      with_retry({Operation::CreateResyncTables, {}}, &Settings::setup_retry, stop,
                 [&](ExecContext& ctx) { ex.table_setup->create_tables(fresh, target, ctx); });
    }
  }

  const bool keep_slot = mode != Mode::SnapshotOnly;
  auto opened =
      with_retry({Operation::BeginSnapshot, {}}, &Settings::setup_retry, stop,
                 [&](ExecContext& ctx) { return ex.snapshot->begin(defs, keep_slot, ctx); });
  // From here the view is released however Snapshot ends: an exported snapshot left open holds
  // back vacuum on the source for as long as the pipe sits Failed.
  struct EndView {
    Impl& self;
    std::stop_token stop;
    ~EndView() {
      try {
        ExecContext ctx = self.context(stop);
        self.ex.snapshot->end(ctx);
      } catch (const std::exception& e) {
        self.log->warn("snapshot: releasing the view failed: {}", e.what());
      }
    }
  } end_view{*this, stop};
  if (keep_slot && !opened) throw FatalError("snapshot: the copier returned no replication slot");
  bool adopted = false;
  if (opened) {
    save_with_retry(Operation::SaveSlot, stop, [&](Durable& dur) {
      if (!dur.slot) dur.slot = *opened;
      // CDC of a first load starts where the slot began; a resync or an addition keeps its
      // place.
      if (!dur.cdc.confirmed) {
        dur.cdc.confirmed = opened->consistent_point;
      } else if (target == TableTarget::Resync && opened->consistent_point > *dur.cdc.confirmed) {
        // A slot that begins past the saved position is a new one: the old was dropped or lost
        // (the reason the pipe failed). A resync reloads every table from a view no older than
        // it, so CDC starts where it begins and nothing is skipped; an addition never does this
        // (the other tables would lose what the old slot held). Partitions this resync copied
        // under the old slot are forgotten: changes to them before the new slot are in no stream.
        dur.slot = *opened;
        dur.cdc.confirmed = opened->consistent_point;
        for (const auto& def : defs) dur.load.erase(def.table);
        adopted = true;
      }
    });
  }
  if (adopted) {
    with_retry({Operation::CreateResyncTables, {}}, &Settings::setup_retry, stop,
               [&](ExecContext& ctx) { ex.table_setup->create_tables(defs, target, ctx); });
  }

  for (const auto& def : defs) plan(def, stop);
  copy_partitions(defs, target, stop);
  return Outcome::done(Trigger::SnapshotDone);
}

void Pipe::Impl::plan(const TableDefinition& def, std::stop_token stop) {
  {
    std::lock_guard lk(mu);
    if (d.load[def.table].planned) return;
  }
  auto parts = with_retry({Operation::PlanPartitions, def.table.qualified()},
                          &Settings::snapshot_partition_retry, stop,
                          [&](ExecContext& ctx) { return ex.snapshot->plan_partitions(def, ctx); });
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].index != i) {
      throw FatalError(fmt::format("snapshot: partition {} of {} has index {}", i,
                                   def.table.qualified(), parts[i].index));
    }
  }
  // The plan is saved: partitions marked done later refer to these bounds.
  save_with_retry(Operation::SavePlan, stop, [&](Durable& dur) {
    TableLoad& tl = dur.load[def.table];
    tl.planned = true;
    tl.done.assign(parts.size(), false);
    tl.partitions = parts;
  });
}

// Copies every partition not yet done, honouring partitions-per-table and tables-at-once.
void Pipe::Impl::copy_partitions(const std::vector<TableDefinition>& defs, TableTarget target,
                                 std::stop_token stop) {
  std::vector<runtime_detail::PartitionScheduler::Table> tables;
  std::size_t workers = 1;
  {
    std::lock_guard lk(mu);
    for (const auto& def : defs) {
      runtime_detail::PartitionScheduler::Table t{&def, {}};
      const TableLoad& tl = d.load[def.table];
      for (std::size_t i = 0; i < tl.partitions.size(); ++i) {
        if (!tl.done[i]) t.waiting.push_back(tl.partitions[i]);
      }
      tables.push_back(std::move(t));
    }
    // As many as the settings let copy at once; the scheduler lowers it to the partitions that
    // wait and to its hard cap.
    workers = d.settings.tables_in_parallel * d.settings.partitions_in_parallel;
  }

  runtime_detail::PartitionScheduler::Steps steps;
  steps.limits = [this] {
    std::lock_guard lk(mu);  // live settings: applied at the next partition
    return runtime_detail::PartitionScheduler::Limits{d.settings.partitions_in_parallel,
                                                      d.settings.tables_in_parallel};
  };
  steps.copy = [this, target](const TableDefinition& def, const Partition& part,
                              std::stop_token copy_stop) {
    return with_retry(
        {Operation::CopyPartition, fmt::format("{}#{}", def.table.qualified(), part.index)},
        &Settings::snapshot_partition_retry, copy_stop,
        [&](ExecContext& ctx) { return ex.snapshot->copy_partition(def, part, target, ctx); });
  };
  steps.done = [this](const TableDefinition& def, const Partition& part, std::uint64_t rows,
                      std::stop_token done_stop) {
    partition_done(def.table, part.index, rows, done_stop);
  };
  runtime_detail::PartitionScheduler(std::move(tables), partition_limit).run(workers, steps, stop);
}

// Called once the destination committed the partition; it counts as done once saved.
void Pipe::Impl::partition_done(const TableRef& table, std::uint32_t index, std::uint64_t rows,
                                std::stop_token stop) {
  save_with_retry(Operation::SavePartition, stop, [&](Durable& dur) {
    TableLoad& tl = dur.load[table];
    if (index < tl.done.size() && !tl.done[index]) {
      tl.done[index] = true;
      tl.rows_done += rows;
    }
    tl.rows_in_flight.erase(index);
  });
}

}  // namespace clickpipe
