// The CdcStreamer (internal to pg_to_clickhouse). One class, its work in three files:
// cdc_streamer.cpp (the stream, and batches written to ClickHouse), cdc_schema.cpp (following the
// tables' definitions and partitions) and cdc_rows.cpp (the rows a change becomes).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/clickhouse/layout.hpp"
#include "clickpipe/executors/cdc_streamer.hpp"
#include "clickpipe/pg_to_clickhouse/executors.hpp"
#include "clickpipe/postgres/connection.hpp"
#include "clickpipe/postgres/stream.hpp"

namespace clickpipe::pg_to_clickhouse::detail {

class CdcStreamer final : public clickpipe::CdcStreamer {
 public:
  explicit CdcStreamer(Config c) : c_(std::move(c)) {}

  Lsn start(std::optional<Lsn> confirmed, std::span<const TableDefinition> tables,
            ExecContext&) override;
  CdcBatch pull(ExecContext& ctx) override;
  void apply(const CdcBatch& batch, ExecContext& ctx) override;
  void confirm(Lsn position, ExecContext&) override { stream_->confirm(position); }
  void stop(ExecContext&) override;

 private:
  struct Held {
    TableDefinition def;
    clickhouse::TableLayout layout;
    std::vector<std::size_t> key_at;  // definition columns of the key, in key order
  };
  Held held(const TableDefinition& def);
  static std::string key_of(const Held& h, const Values& v);
  static SchemaChange stop_table(const TableDefinition& def, const std::string& why);

  // cdc_schema.cpp

  // Checks a saved definition against the catalog by OID (a table renamed, dropped or created
  // again while the pipe was stopped sends no Relation message until it changes), and completes
  // one saved before OIDs and attnums were kept. Returns why the table must stop, if it must.
  std::optional<std::string> identify(TableDefinition& def);
  // Carries out a definition change before the batch's rows are written (TableStopped: after).
  void follow(const SchemaChange& sc, ExecContext& ctx);
  // Rows a partition held when it was attached never pass through the WAL: they are copied from
  // the snapshot a temporary slot exports, at the version of its consistent point. Exactly the
  // transactions that committed before that point are in the snapshot, so the copy wins over
  // every older change of the same keys (a key deleted before the attach, a row changed while
  // detached) and loses to every later one, which the stream brings.
  void backfill(const Held& h, const std::vector<TableRef>& leaves, ExecContext& ctx);
  // Partitions attached or detached since the last look (PostgreSQL sends nothing for either).
  void check_leaves(CdcBatch& batch);

  // cdc_rows.cpp

  // The table's current name, by OID (cached until it fails); empty when it no longer exists.
  std::string current_name(const TableDefinition& def);
  // A row marking `key_row`'s key deleted: key columns from it, the rest placeholders (or the
  // new row's values, which satisfy every column's type).
  static Values deletion(const Held& h, const Values& key_row, const Values& fallback);
  // The row in the definition's shape: rows decoded before a column was added lack it (NULL),
  // and a column dropped at the source gets NULL or, when ClickHouse's column is not Nullable,
  // the type's default. Unchanged TOAST values were not sent: they are read from the source row
  // by its key (a parameterized query). The value read is at least as new as the change; any
  // later change to it comes later in the stream, so the destination converges on the source. A
  // row gone since gets a placeholder: its delete follows in the stream.
  Values filled(const Held& h, const Values& v);

  Config c_;
  std::optional<clickhouse::Client> ch_;
  std::optional<postgres::Connection> sql_;
  std::map<TableRef, Held> tables_;
  std::vector<SchemaChange> pending_;  // found by the executor itself: reported with the next pull
  std::map<std::uint32_t, std::string> names_;  // current table names by OID
  std::optional<postgres::LogicalStream> stream_;
  std::chrono::steady_clock::time_point next_leaf_check_;
};

}  // namespace clickpipe::pg_to_clickhouse::detail
