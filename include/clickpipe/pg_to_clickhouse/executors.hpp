// The reference executors: PostgreSQL (libpq) to ClickHouse (HTTP), as the four executor
// interfaces the runtime drives.
#pragma once

#include <cstddef>
#include <string>

#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/postgres/connection.hpp"
#include "clickpipe/runtime/pipe.hpp"

namespace clickpipe::pg_to_clickhouse {

struct Config {
  postgres::ConnectionSettings source;
  clickhouse::ClientSettings destination;
  // Names the slot and the publication "clickpipe_<pipe id>".
  std::string pipe_id;
  // After every insert, count the rows back (clickhouse::reconcile) and send the batch again
  // when ClickHouse holds fewer than it accepted. Costs one keyed FINAL read per insert.
  bool reconcile = true;
};

// The servers the scripts in scripts/ start for the demo, tests and benchmarks, as they export
// them: CLICKPIPE_PG_{HOST,PORT,DATABASE,USER,PASSWORD}, and CLICKPIPE_CH_{HOST,PORT,USER,PASSWORD}
// (plain HTTP) unless CLICKPIPE_CH_URL names the destination (chdb://DIR: embedded, no
// credentials). Throws InvalidField naming the first variable that is not set.
Config config_from_environment(const std::string& pipe_id);

// The ClickHouse table a source table lands in: its name, prefixed with the schema unless public.
std::string destination_table(const TableRef& table);
std::string slot_name(const std::string& pipe_id);
std::string publication_name(const std::string& pipe_id);

// The four executors for one pipe. They open connections as they need them; each call's own
// connections are closed when it returns, except the one holding an exported snapshot (open from
// SnapshotCopier::begin to end) and the replication stream (start to stop).
Executors make_executors(const Config& config);

}  // namespace clickpipe::pg_to_clickhouse
