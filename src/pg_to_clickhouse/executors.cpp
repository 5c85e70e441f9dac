#include "clickpipe/pg_to_clickhouse/executors.hpp"

#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>

#include "clickpipe/clickhouse/schema.hpp"
#include "clickpipe/postgres/catalog.hpp"
#include "clickpipe/postgres/replication.hpp"
#include "clickpipe/postgres/snapshot.hpp"
#include "clickpipe/postgres/stream.hpp"

namespace clickpipe::pg_to_clickhouse {

std::string destination_table(const TableRef& t) {
  return t.schema == "public" ? t.name : t.schema + "_" + t.name;
}
Config config_from_environment(const std::string& pipe_id) {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) throw InvalidField(name, "environment variable is not set");
    return std::string(v);
  };
  Config c;
  c.source.host = env("CLICKPIPE_PG_HOST");
  c.source.port = env("CLICKPIPE_PG_PORT");
  c.source.dbname = env("CLICKPIPE_PG_DATABASE");
  c.source.user = env("CLICKPIPE_PG_USER");
  c.source.password = env("CLICKPIPE_PG_PASSWORD");
  const char* url = std::getenv("CLICKPIPE_CH_URL");
  if (url && std::string_view(url).starts_with("chdb://")) {
    c.destination.url = url;  // embedded: no server, no credentials
  } else {
    c.destination.url = url && *url
                            ? std::string(url)
                            : "http://" + env("CLICKPIPE_CH_HOST") + ":" + env("CLICKPIPE_CH_PORT");
    c.destination.user = env("CLICKPIPE_CH_USER");
    c.destination.password = env("CLICKPIPE_CH_PASSWORD");
  }
  c.pipe_id = pipe_id;
  return c;
}

std::string slot_name(const std::string& id) { return "clickpipe_" + id; }
std::string publication_name(const std::string& id) { return "clickpipe_" + id; }

namespace {

using clickhouse::Client;
using clickhouse::TableLayout;

// Every connection pins the settings values are printed with (postgres::pinned_options).
postgres::Connection source(const Config& c) { return postgres::Connection::open(c.source); }

void write(const Config& c, Client& ch, const TableLayout& l,
           const std::vector<clickhouse::Row>& rows) {
  if (c.reconcile) {
    clickhouse::insert_reconciled(ch, l, rows);
  } else {
    clickhouse::insert(ch, l, rows);
  }
}

TableLayout layout(Client& ch, const TableDefinition& def, bool resync = false) {
  return clickhouse::layout_for(def, destination_table(def.table) + (resync ? "_resync" : ""),
                                ch.version());
}

// A value that satisfies a non-nullable column in a row that only marks a key as deleted.
Datum placeholder(const Column& c) {
  if (c.nullable || c.array_dimensions > 0)
    return c.array_dimensions > 0 ? Datum::of("{}") : Datum::null();
  static const std::map<std::string, std::string> values = {
      {"int2", "0"},
      {"int4", "0"},
      {"int8", "0"},
      {"float4", "0"},
      {"float8", "0"},
      {"numeric", "0"},
      {"bool", "f"},
      {"date", "1970-01-01"},
      {"timestamp", "1970-01-01 00:00:00"},
      {"timestamptz", "1970-01-01 00:00:00+00"},
      {"uuid", "00000000-0000-0000-0000-000000000000"}};
  auto it = values.find(c.type);
  return Datum::of(it == values.end() ? std::string() : it->second);
}

class Provisioner final : public clickpipe::Provisioner {
 public:
  explicit Provisioner(Config c) : c_(std::move(c)) {}
  void provision(const PipeInfo&, ExecContext& ctx) override {
    source(c_).exec("SELECT 1");
    Client ch(c_.destination);
    const auto v = ch.version();
    ctx.progress.note("source and destination reachable; ClickHouse " + v.to_string());
  }

 private:
  Config c_;
};

class TableSetup final : public clickpipe::TableSetup {
 public:
  explicit TableSetup(Config c) : c_(std::move(c)) {}

  std::vector<TableDefinition> read_definitions(std::span<const TableRef> tables,
                                                ExecContext&) override {
    postgres::Connection conn = source(c_);
    postgres::preflight(conn, tables);
    return postgres::read_definitions(conn, tables);
  }

  void create_tables(std::span<const TableDefinition> tables, TableTarget target,
                     ExecContext& ctx) override {
    Client ch(c_.destination);
    for (const auto& def : tables) {
      ctx.throw_if_stopped();
      const TableLayout l = layout(ch, def);
      if (target == TableTarget::Resync) {
        clickhouse::create_resync_table(ch, l);
      } else {
        ch.query(clickhouse::create_table_sql(l, c_.destination.database));
      }
    }
    std::vector<TableRef> refs;
    for (const auto& def : tables) refs.push_back(def.table);
    postgres::Connection conn = source(c_);
    postgres::ensure_publication(conn, publication_name(c_.pipe_id), refs);
  }

  void swap_resync_tables(std::span<const TableDefinition> tables, ExecContext& ctx) override {
    Client ch(c_.destination);
    for (const auto& def : tables) {
      ctx.throw_if_stopped();
      clickhouse::swap_resync(ch, destination_table(def.table));
    }
  }

  void remove_tables(std::span<const TableRef> tables, ExecContext&) override {
    postgres::Connection conn = source(c_);
    postgres::drop_from_publication(conn, publication_name(c_.pipe_id), tables);
  }

  void teardown(ExecContext&) override {
    postgres::Connection conn = source(c_);
    postgres::drop_slot(conn, slot_name(c_.pipe_id));
    postgres::drop_publication(conn, publication_name(c_.pipe_id));
  }

 private:
  Config c_;
};

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
      holder_->exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      snapshot_ = std::string(holder_->exec("SELECT pg_export_snapshot()").value(0, 0));
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
    try {
      return stream(conn, ch, table, l, partition, snapshot, ctx);
    } catch (const postgres::SnapshotGone&) {
      // After a restart the exported snapshot is gone: a fresh one is correct, CDC replays
      // everything after the slot's consistent point with higher versions.
      return stream(conn, ch, table, l, partition, "", ctx);
    }
  }

  void end(ExecContext&) override {
    std::lock_guard lk(mu_);
    holder_.reset();
    snapshot_.clear();
  }

 private:
  // Streams the partition from COPY into ClickHouse inserts of at most kRowsPerInsert rows, each
  // counted back before its rows are reported: PostgreSQL, this thread and ClickHouse work at
  // the same time, and values needing no conversion are never decoded.
  std::uint64_t stream(postgres::Connection& conn, Client& ch, const TableDefinition& table,
                       const TableLayout& l, const Partition& partition,
                       const std::string& snapshot, ExecContext& ctx) {
    // Below ClickHouse's max_insert_block_size (1,048,576 rows) and min_insert_block_size_bytes
    // (256 MiB): each insert is one block, refused whole when it fails. (A longer one may keep
    // the blocks before the failure: harmless, the partition is copied again with the same
    // versions, but a retry would then do more work.)
    constexpr std::uint64_t kRowsPerInsert = 1000000;
    constexpr std::uint64_t kBytesPerInsert = 128u << 20;
    postgres::CopyOut copy(conn, table, partition, snapshot);
    clickhouse::CopyTextEncoder encoder(l, 0, c_.reconcile);  // version 0: below all CDC
    const std::string sql = encoder.insert_sql(c_.destination.database);
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
      if (c_.reconcile) {
        const clickhouse::Reconciliation r = encoder.reconcile(ch);
        if (!r.complete()) throw clickhouse::RowsMissing(l.name, r);
      }
      ctx.progress.rows_copied(table.table, partition.index, rows);
    }
    return copy.rows();
  }

  Config c_;
  std::mutex mu_;
  std::optional<postgres::Connection> holder_;
  std::string snapshot_;
};

class CdcStreamer final : public clickpipe::CdcStreamer {
 public:
  explicit CdcStreamer(Config c) : c_(std::move(c)) {}

  Lsn start(std::optional<Lsn> confirmed, std::span<const TableDefinition> tables,
            ExecContext&) override {
    postgres::Connection sql = source(c_);
    Lsn from;
    if (!confirmed) {
      postgres::Connection repl = postgres::Connection::open(c_.source, true);
      from = postgres::create_slot(repl, sql, slot_name(c_.pipe_id)).info.consistent_point;
    } else {
      postgres::check_slot(sql, slot_name(c_.pipe_id), *confirmed);
      from = *confirmed;
    }
    ch_.emplace(c_.destination);
    sql_.emplace(source(c_));
    layouts_.clear();
    for (const auto& def : tables) layouts_.emplace(def.table, std::pair{def, layout(*ch_, def)});
    stream_.emplace(c_.source, slot_name(c_.pipe_id), publication_name(c_.pipe_id), from);
    return from;
  }

  CdcBatch pull(ExecContext& ctx) override {
    return stream_->pull(ctx.settings.pull_batch_size, ctx.settings.sync_interval, ctx.stop);
  }

  void apply(const CdcBatch& batch, ExecContext&) override {
    std::map<TableRef, std::vector<clickhouse::Row>> rows;
    auto flush = [&] {
      for (auto& [t, r] : rows) write(c_, *ch_, layouts_.at(t).second, r);
      rows.clear();
    };
    for (const Change& c : batch.changes) {
      auto it = layouts_.find(c.table);
      if (it == layouts_.end()) continue;  // a table no longer in the pipe
      const TableDefinition& def = it->second.first;
      const TableLayout& l = it->second.second;
      switch (c.kind) {
        case ChangeKind::Insert:
        case ChangeKind::Update: {
          if (!c.old_key.empty()) {
            // A key change: the old key goes away (upstream leaves it behind).
            rows[c.table].push_back({deletion(def, c.old_key, c.values), c.version(), true});
          }
          rows[c.table].push_back({filled(def, c.values), c.version(), false});
          break;
        }
        case ChangeKind::Delete:
          rows[c.table].push_back({deletion(def, c.values, {}), c.version(), true});
          break;
        case ChangeKind::Truncate: {
          flush();  // everything before the truncate first
          std::string cols;
          for (const auto& m : l.columns) cols += clickhouse::quote(m.name) + ", ";
          const std::string t =
              clickhouse::quote(c_.destination.database) + "." + clickhouse::quote(l.name);
          ch_->query("INSERT INTO " + t + " (" + cols +
                     "`_version`, `_is_deleted`, `_synced_at`) SELECT " + cols +
                     std::to_string(c.version()) + ", 1, now() FROM " + t +
                     " FINAL WHERE `_is_deleted` = 0");
          break;
        }
      }
    }
    flush();
  }

  void confirm(Lsn position, ExecContext&) override { stream_->confirm(position); }
  void stop(ExecContext&) override {
    stream_.reset();
    ch_.reset();
    sql_.reset();
  }

 private:
  // A row marking `key_row`'s key deleted: key columns from it, the rest placeholders (or the
  // new row's values, which satisfy every column's type).
  Values deletion(const TableDefinition& def, const Values& key_row, const Values& fallback) {
    Values out(def.columns.size());
    for (std::size_t i = 0; i < def.columns.size(); ++i) {
      const bool key = std::find(def.primary_key.begin(), def.primary_key.end(),
                                 def.columns[i].name) != def.primary_key.end();
      if (key && i < key_row.size()) {
        out[i] = key_row[i];
      } else if (i < fallback.size() && fallback[i].kind != Datum::Kind::UnchangedToast) {
        out[i] = fallback[i];
      } else {
        out[i] = placeholder(def.columns[i]);
      }
    }
    return out;
  }
  // Unchanged TOAST values were not sent: they are read from the source row by its key (a
  // parameterized query). The value read is at least as new as the change; any later change to
  // it comes later in the stream, so the destination converges on the source. A row gone since
  // gets a placeholder: its delete follows in the stream.
  Values filled(const TableDefinition& def, const Values& v) {
    std::vector<std::size_t> missing;
    for (std::size_t i = 0; i < v.size() && i < def.columns.size(); ++i) {
      if (v[i].kind == Datum::Kind::UnchangedToast) missing.push_back(i);
    }
    if (missing.empty()) return v;
    Values out = v;
    std::string cols, where;
    std::vector<std::optional<std::string>> params;
    for (std::size_t i : missing)
      cols += (cols.empty() ? "" : ", ") + sql_->identifier(def.columns[i].name);
    for (const auto& pk : def.primary_key) {
      for (std::size_t i = 0; i < def.columns.size(); ++i) {
        if (def.columns[i].name != pk) continue;
        params.push_back(v[i].is_null() ? std::nullopt : std::optional<std::string>(v[i].text));
        where += (where.empty() ? "" : " AND ") + sql_->identifier(pk) + " = $" +
                 std::to_string(params.size());
      }
    }
    postgres::Result r = sql_->exec(
        "SELECT " + cols + " FROM " + postgres::qualified(*sql_, def.table) + " WHERE " + where,
        params);
    for (std::size_t k = 0; k < missing.size(); ++k) {
      const std::size_t i = missing[k];
      if (r.rows() == 0) {
        out[i] = placeholder(def.columns[i]);
      } else {
        out[i] = r.is_null(0, static_cast<int>(k))
                     ? Datum::null()
                     : Datum::of(std::string(r.value(0, static_cast<int>(k))));
      }
    }
    return out;
  }

  Config c_;
  std::optional<Client> ch_;
  std::optional<postgres::Connection> sql_;
  std::map<TableRef, std::pair<TableDefinition, TableLayout>> layouts_;
  std::optional<postgres::LogicalStream> stream_;
};

}  // namespace

Executors make_executors(const Config& config) {
  return Executors{std::make_shared<Provisioner>(config), std::make_shared<TableSetup>(config),
                   std::make_shared<SnapshotCopier>(config), std::make_shared<CdcStreamer>(config)};
}

}  // namespace clickpipe::pg_to_clickhouse
