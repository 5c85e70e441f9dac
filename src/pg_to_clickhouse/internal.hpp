// What the reference executors share (internal to pg_to_clickhouse): one file per executor,
// these helpers in executors.cpp and snapshot_copier.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/clickhouse/layout.hpp"
#include "clickpipe/pg_to_clickhouse/executors.hpp"
#include "clickpipe/postgres/connection.hpp"

namespace clickpipe::pg_to_clickhouse::detail {

// Every connection pins the settings values are printed with (postgres::pinned_options).
postgres::Connection source(const Config& c);

// Where `def` lands on this server: its table, or that table's resync copy.
clickhouse::TableLayout layout(clickhouse::Client& ch, const TableDefinition& def,
                               bool resync = false);

// Streams a partition from COPY into ClickHouse inserts of at most a million rows, each counted
// back (when the config says so) before its rows are reported to `copied`: PostgreSQL, this
// thread and ClickHouse work at the same time, and values needing no conversion are never
// decoded. Rows get `version`: the snapshot version, below every CDC change, unless told
// otherwise. Returns the rows copied.
std::uint64_t copy_rows(const Config& c, postgres::Connection& conn, clickhouse::Client& ch,
                        const TableDefinition& table, const clickhouse::TableLayout& l,
                        const Partition& partition, const std::string& snapshot, ExecContext& ctx,
                        const std::function<void(std::uint64_t)>& copied,
                        std::uint64_t version = kSnapshotVersion);

// Process-wide counts of paths the tests must prove they took (read by counters()).
struct PathCounters {
  std::atomic<std::uint64_t> toast_refilled{0};
  std::atomic<std::uint64_t> columns_added{0};
  std::atomic<std::uint64_t> tables_stopped{0};
  std::atomic<std::uint64_t> partitions_backfilled{0};
  std::atomic<std::uint64_t> truncates{0};
  std::atomic<std::uint64_t> exported_snapshots{0};
  std::atomic<std::uint64_t> fresh_snapshots{0};
};
PathCounters& path_counters() noexcept;

// The four executors, one file each.
std::shared_ptr<clickpipe::Provisioner> make_provisioner(const Config& c);
std::shared_ptr<clickpipe::TableSetup> make_table_setup(const Config& c);
std::shared_ptr<clickpipe::SnapshotCopier> make_snapshot_copier(const Config& c);
std::shared_ptr<clickpipe::CdcStreamer> make_cdc_streamer(const Config& c);

}  // namespace clickpipe::pg_to_clickhouse::detail
