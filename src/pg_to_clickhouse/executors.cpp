#include "clickpipe/pg_to_clickhouse/executors.hpp"

#include "clickpipe/postgres/stream.hpp"
#include "internal.hpp"

namespace clickpipe::pg_to_clickhouse {

std::string destination_table(const TableRef& t) {
  return t.schema == "public" ? t.name : t.schema + "_" + t.name;
}

std::string slot_name(const std::string& id) { return "clickpipe_" + id; }
std::string publication_name(const std::string& id) { return "clickpipe_" + id; }

namespace detail {

postgres::Connection source(const Config& c) { return postgres::Connection::open(c.source); }

clickhouse::TableLayout layout(clickhouse::Client& ch, const TableDefinition& def, bool resync) {
  return clickhouse::layout_for(def, destination_table(def.table) + (resync ? "_resync" : ""),
                                ch.version());
}

PathCounters& path_counters() noexcept {
  static PathCounters counters;
  return counters;
}

}  // namespace detail

Counters counters() noexcept {
  const postgres::SpillCounters spilled = postgres::spill_counters();
  const detail::PathCounters& c = detail::path_counters();
  return Counters{
      c.toast_refilled.load(), spilled.transactions,        spilled.changes,
      c.columns_added.load(),  c.tables_stopped.load(),     c.partitions_backfilled.load(),
      c.truncates.load(),      c.exported_snapshots.load(), c.fresh_snapshots.load()};
}

Executors make_executors(const Config& config) {
  return Executors{detail::make_provisioner(config), detail::make_table_setup(config),
                   detail::make_snapshot_copier(config), detail::make_cdc_streamer(config)};
}

}  // namespace clickpipe::pg_to_clickhouse
