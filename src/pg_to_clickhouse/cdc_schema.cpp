// The CdcStreamer following its tables: saved definitions checked against the catalog, columns
// added at the source added in ClickHouse, partitions attached or detached found and backfilled.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "cdc_streamer.hpp"
#include "clickpipe/clickhouse/tables.hpp"
#include "clickpipe/postgres/catalog.hpp"
#include "clickpipe/postgres/replication.hpp"
#include "internal.hpp"

namespace clickpipe::pg_to_clickhouse::detail {

std::optional<std::string> CdcStreamer::identify(TableDefinition& def) {
  const std::uint32_t now = postgres::relation_oid(*sql_, def.table);
  if (now == 0) {
    return "table " + def.table.qualified() +
           " no longer exists under that name (renamed or dropped while the pipe was stopped)";
  }
  if (def.oid != 0 && def.oid != now) {
    return "table " + def.table.qualified() + " is a different table now (relation OID " +
           std::to_string(def.oid) + " became " + std::to_string(now) +
           "): it was dropped and created again";
  }
  const bool complete =
      def.oid != 0 && std::none_of(def.columns.begin(), def.columns.end(),
                                   [](const Column& c) { return c.attnum == 0 && !c.dropped; });
  if (complete) return std::nullopt;
  def.oid = now;
  for (const auto& cat : postgres::catalog_columns(*sql_, now)) {
    for (auto& c : def.columns) {
      if (!cat.dropped && !c.dropped && c.attnum == 0 && c.name == cat.name) c.attnum = cat.attnum;
    }
  }
  return std::nullopt;
}

void CdcStreamer::follow(const SchemaChange& sc, ExecContext& ctx) {
  auto it = tables_.find(sc.table);
  if (it == tables_.end()) return;
  switch (sc.kind) {
    case SchemaChange::Kind::TableStopped: return;
    case SchemaChange::Kind::Identified: it->second.def.oid = sc.definition.oid; return;
    case SchemaChange::Kind::ColumnsAdded:
    case SchemaChange::Kind::ColumnsDropped: {
      TableDefinition def = it->second.def;
      def.columns = sc.definition.columns;
      try {
        it->second = held(def);
        const auto added = clickhouse::add_missing_columns(*ch_, it->second.layout);
        path_counters().columns_added.fetch_add(added.size());
      } catch (const TransientError&) {
        throw;
      } catch (const Error& e) {
        // A column ClickHouse cannot take (a reserved name, a refused ALTER) stops this table,
        // not the pipe; the stop is saved with the next batch.
        tables_.erase(it);
        pending_.push_back(stop_table(def, "table " + sc.table.qualified() +
                                               ": the new columns cannot be added in " +
                                               "ClickHouse: " + e.what()));
      }
      return;
    }
    case SchemaChange::Kind::PartitionsChanged: {
      std::vector<TableRef> attached;
      for (const auto& leaf : sc.definition.leaves) {
        if (std::find(it->second.def.leaves.begin(), it->second.def.leaves.end(), leaf) ==
            it->second.def.leaves.end()) {
          attached.push_back(leaf);
        }
      }
      it->second.def.leaves = sc.definition.leaves;
      if (!attached.empty()) backfill(it->second, attached, ctx);
      return;
    }
  }
}

void CdcStreamer::backfill(const Held& h, const std::vector<TableRef>& leaves, ExecContext& ctx) {
  postgres::Connection repl = postgres::Connection::open(c_.source, true);
  stream_->keep_alive();
  // Slot names are cluster-wide: a random one (processes in containers share pids).
  std::random_device rd;
  std::optional<postgres::CreatedSlot> created;
  for (int attempt = 0; !created; ++attempt) {
    char name[40];
    std::snprintf(name, sizeof name, "clickpipe_attach_%08x%08x", rd(), rd());
    try {
      created = postgres::create_temporary_slot(repl, name);
    } catch (const postgres::PgFatalError& e) {
      if (e.sqlstate() != "42710" || attempt == 3) throw;  // 42710: the name is taken
    }
  }
  const postgres::CreatedSlot& slot = *created;
  stream_->keep_alive();
  const std::uint64_t version =
      Change{ChangeKind::Insert, {}, slot.info.consistent_point, 0, {}, {}}.version(
          ctx.row_versions);
  // Columns dropped at the source are left out: ClickHouse fills them with NULL or the default.
  TableDefinition present = h.def;
  std::erase_if(present.columns, [](const Column& c) { return c.dropped; });
  const clickhouse::TableLayout l = clickhouse::layout_for(present, h.layout.name, h.layout.server);
  for (const auto& leaf : leaves) {
    postgres::Connection conn = source(c_);
    Partition whole;
    whole.leaf = leaf;
    const std::uint64_t n = copy_rows(
        c_, conn, *ch_, present, l, whole, slot.snapshot_name, ctx,
        [this](std::uint64_t) { stream_->keep_alive(); }, version);
    path_counters().partitions_backfilled.fetch_add(1);
    ctx.log.info("cdc: partition {} of {} attached: {} rows copied at {}", leaf.qualified(),
                 h.def.table.qualified(), n, to_string(slot.info.consistent_point));
  }
}

void CdcStreamer::check_leaves(CdcBatch& batch) {
  for (const auto& [t, h] : tables_) {
    // Those the batch already changes are looked at next time.
    if (std::any_of(batch.schema_changes.begin(), batch.schema_changes.end(),
                    [&](const SchemaChange& sc) { return sc.table == t; })) {
      continue;
    }
    // By OID: a table renamed meanwhile is the tracker's to stop, not a table without leaves.
    const std::optional<std::vector<TableRef>> found = postgres::leaf_partitions(*sql_, h.def.oid);
    if (!found || *found == h.def.leaves) continue;
    const std::vector<TableRef>& now = *found;
    std::string attached, detached;
    for (const auto& l : now) {
      if (std::find(h.def.leaves.begin(), h.def.leaves.end(), l) == h.def.leaves.end())
        attached += (attached.empty() ? "" : ", ") + l.qualified();
    }
    for (const auto& l : h.def.leaves) {
      if (std::find(now.begin(), now.end(), l) == now.end())
        detached += (detached.empty() ? "" : ", ") + l.qualified();
    }
    TableDefinition def = h.def;
    def.leaves = now;
    std::string what = "table " + t.qualified() + ":";
    if (!attached.empty()) what += " partition(s) attached: " + attached + " (their rows copied)";
    if (!detached.empty()) {
      what += (attached.empty() ? "" : ";") + std::string(" partition(s) detached: ") + detached +
              " (their rows stay in ClickHouse until a resync)";
    }
    batch.schema_changes.push_back(
        SchemaChange{SchemaChange::Kind::PartitionsChanged, t, std::move(def), what});
  }
}

}  // namespace clickpipe::pg_to_clickhouse::detail
