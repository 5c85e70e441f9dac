// The reference executors: PostgreSQL (libpq) to ClickHouse (HTTP), as the four executor
// interfaces the runtime drives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/executors/executors.hpp"
#include "clickpipe/postgres/connection.hpp"
#include "clickpipe/postgres/stream.hpp"

namespace clickpipe::pg_to_clickhouse {

struct Config {
  postgres::ConnectionSettings source;
  clickhouse::ClientSettings destination;
  // Names the slot and the publication "clickpipe_<pipe id>".
  std::string pipe_id;
  // After every insert, count the rows back (clickhouse::reconcile) and send the batch again
  // when ClickHouse holds fewer than it accepted. Costs one keyed FINAL read per insert.
  bool reconcile = true;
  // Memory bounds of the change stream: past them a transaction is spilled to a temporary file
  // and applied in several batches (confirmed after the last).
  postgres::StreamLimits stream;
};

// The ClickHouse table a source table lands in: its name, prefixed with the schema unless public.
std::string destination_table(const TableRef& table);
// What the reference TableSetup's check_tables asks: throws InvalidField naming `tables[i]` when
// it lands in the same ClickHouse table as an earlier one (`a.b` and `public.a_b` are both `a_b`:
// their rows would mix, and a TRUNCATE of one would empty the other), or in a table whose name
// ends in `_resync` or `_old`, the names a resync gives its copies.
void check_destination_names(std::span<const TableRef> tables);
std::string slot_name(const std::string& pipe_id);
std::string publication_name(const std::string& pipe_id);

// Process-wide counts of what the executors did on paths that are easy to miss (tests read them to
// prove a path ran).
struct Counters {
  std::uint64_t unchanged_toast_refilled = 0;  // values the source did not resend, read back
  std::uint64_t transactions_spilled = 0;      // transactions too large for memory, on disk
  std::uint64_t changes_spilled = 0;
  std::uint64_t columns_added = 0;          // ALTER TABLE ... ADD COLUMN run at the destination
  std::uint64_t tables_stopped = 0;         // by a schema change the pipe cannot follow
  std::uint64_t partitions_backfilled = 0;  // attached partitions whose rows were copied
  std::uint64_t truncates = 0;
  // Partitions of the initial load read under the slot's exported snapshot, and under a fresh one
  // (the exported snapshot was gone: after a restart, or a table added later).
  std::uint64_t partitions_in_exported_snapshot = 0;
  std::uint64_t partitions_in_fresh_snapshot = 0;
};
Counters counters() noexcept;

// The four executors for one pipe. They open connections as they need them; each call's own
// connections are closed when it returns, except the one holding an exported snapshot (open from
// SnapshotCopier::begin to end) and the replication stream (start to stop).
Executors make_executors(const Config& config);

}  // namespace clickpipe::pg_to_clickhouse
