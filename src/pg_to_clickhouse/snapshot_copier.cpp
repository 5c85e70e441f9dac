// The SnapshotCopier: partitions of a table copied from one exported snapshot, COPY text streamed
// into ClickHouse inserts.
#include "clickpipe/executors/snapshot_copier.hpp"

#include <mutex>
#include <optional>

#include "clickpipe/clickhouse/insert.hpp"
#include "clickpipe/postgres/replication.hpp"
#include "clickpipe/postgres/snapshot.hpp"
#include "internal.hpp"

namespace clickpipe::pg_to_clickhouse::detail {

using clickhouse::Client;
using clickhouse::TableLayout;

std::uint64_t copy_rows(const Config& c, postgres::Connection& conn, Client& ch,
                        const TableDefinition& table, const TableLayout& l,
                        const Partition& partition, const std::string& snapshot, ExecContext& ctx,
                        const std::function<void(std::uint64_t)>& copied, std::uint64_t version) {
  // Below ClickHouse's max_insert_block_size (1,048,576 rows) and min_insert_block_size_bytes
  // (256 MiB): each insert is one block, refused whole when it fails. (A longer one may keep
  // the blocks before the failure: harmless, the partition is copied again with the same
  // versions, but a retry would then do more work.)
  constexpr std::uint64_t kRowsPerInsert = 1000000;
  constexpr std::uint64_t kBytesPerInsert = 128u << 20;
  postgres::CopyOut copy(conn, table, partition, snapshot);
  clickhouse::CopyTextEncoder encoder(l, version, c.reconcile);
  const std::string sql = encoder.insert_sql(c.destination.database);
  std::optional<std::string_view> line = copy.next();
  while (line) {
    std::uint64_t rows = 0, bytes = 0;
    ch.insert_streamed(sql, [&](std::string& piece) {
      ctx.throw_if_stopped();
      const std::size_t from = piece.size();
      while (line && piece.size() < (1u << 20) && rows < kRowsPerInsert) {
        encoder.add(*line, piece);
        ++rows;
        line = copy.next();
      }
      bytes += piece.size() - from;
      return line.has_value() && rows < kRowsPerInsert && bytes < kBytesPerInsert;
    });
    if (c.reconcile) {
      const clickhouse::Reconciliation r = encoder.reconcile(ch);
      if (!r.complete()) throw clickhouse::RowsMissing(l.name, r);
    }
    copied(rows);
  }
  return copy.rows();
}

namespace {

class SnapshotCopier final : public clickpipe::SnapshotCopier {
 public:
  explicit SnapshotCopier(Config c) : c_(std::move(c)) {}

  std::optional<SlotInfo> begin(std::span<const TableDefinition>, bool keep_slot,
                                ExecContext&) override {
    std::lock_guard lk(mu_);
    snapshot_.clear();
    holder_.reset();
    std::optional<SlotInfo> slot;
    if (keep_slot) {
      // The replication connection that created the slot holds its exported snapshot: keep it
      // open (and idle) until end().
      holder_.emplace(postgres::Connection::open(c_.source, true));
      postgres::Connection sql = source(c_);
      const postgres::CreatedSlot created =
          postgres::create_slot(*holder_, sql, slot_name(c_.pipe_id));
      snapshot_ = created.snapshot_name;  // empty when the slot existed: fresh views then
      slot = created.info;
    } else {
      holder_.emplace(source(c_));
      snapshot_ = postgres::export_snapshot(*holder_);
    }
    return slot;
  }

  std::vector<Partition> plan_partitions(const TableDefinition& table, ExecContext& ctx) override {
    postgres::Connection conn = source(c_);
    return postgres::plan_partitions(conn, table, ctx.settings.rows_per_partition,
                                     ctx.settings.max_partitions_per_table);
  }

  std::uint64_t copy_partition(const TableDefinition& table, const Partition& partition,
                               TableTarget target, ExecContext& ctx) override {
    std::string snapshot;
    {
      std::lock_guard lk(mu_);
      snapshot = snapshot_;
    }
    postgres::Connection conn = source(c_);
    Client ch(c_.destination);
    const TableLayout l = layout(ch, table, target == TableTarget::Resync);
    auto report = [&](std::uint64_t rows) {
      ctx.progress.rows_copied(table.table, partition.index, rows);
    };
    try {
      const std::uint64_t rows =
          copy_rows(c_, conn, ch, table, l, partition, snapshot, ctx, report);
      ++(snapshot.empty() ? path_counters().fresh_snapshots : path_counters().exported_snapshots);
      return rows;
    } catch (const postgres::SnapshotGone&) {
      // After a restart the exported snapshot is gone: a fresh one is correct, CDC replays
      // everything after the slot's consistent point with higher versions.
      const std::uint64_t rows = copy_rows(c_, conn, ch, table, l, partition, "", ctx, report);
      ++path_counters().fresh_snapshots;
      return rows;
    }
  }

  void end(ExecContext&) override {
    std::lock_guard lk(mu_);
    holder_.reset();
    snapshot_.clear();
  }

 private:
  Config c_;
  std::mutex mu_;
  std::optional<postgres::Connection> holder_;
  std::string snapshot_;
};

}  // namespace

std::shared_ptr<clickpipe::SnapshotCopier> make_snapshot_copier(const Config& c) {
  return std::make_shared<SnapshotCopier>(c);
}

}  // namespace clickpipe::pg_to_clickhouse::detail
