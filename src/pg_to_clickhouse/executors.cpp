#include "clickpipe/pg_to_clickhouse/executors.hpp"

#include <fmt/format.h>

#include <map>
#include <string_view>

#include "clickpipe/clickhouse/tables.hpp"
#include "clickpipe/error.hpp"
#include "clickpipe/postgres/stream.hpp"
#include "internal.hpp"

namespace clickpipe::pg_to_clickhouse {

std::string destination_table(const TableRef& t) {
  return t.schema == "public" ? t.name : t.schema + "_" + t.name;
}

void check_destination_names(std::span<const TableRef> tables) {
  std::map<std::string, std::size_t> first;  // destination name -> the first table landing there
  for (std::size_t i = 0; i < tables.size(); ++i) {
    const std::string field = fmt::format("tables[{}]", i);
    const std::string name = destination_table(tables[i]);
    for (const std::string_view suffix : {clickhouse::kResyncSuffix, clickhouse::kOldSuffix}) {
      if (name.ends_with(suffix)) {
        throw InvalidField(field, fmt::format("{} would land in the ClickHouse table {}, and names "
                                              "ending in {} are clickpipe's own during a resync",
                                              tables[i].qualified(), name, suffix));
      }
    }
    const auto [at, added] = first.emplace(name, i);
    if (!added) {
      throw InvalidField(
          field,
          fmt::format("{} and {} (tables[{}]) would both land in the ClickHouse table {}",
                      tables[i].qualified(), tables[at->second].qualified(), at->second, name));
    }
  }
}

std::string slot_name(const std::string& id) { return "clickpipe_" + id; }
std::string publication_name(const std::string& id) { return "clickpipe_" + id; }

namespace detail {

postgres::Connection source(const Config& c) { return postgres::Connection::open(c.source); }

clickhouse::TableLayout layout(clickhouse::Client& ch, const TableDefinition& def, bool resync) {
  std::string name = destination_table(def.table);
  if (resync) name += clickhouse::kResyncSuffix;
  return clickhouse::layout_for(def, name, ch.version());
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
