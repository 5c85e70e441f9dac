#include "clickpipe/pg_to_clickhouse/executors.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <unordered_map>

#include <spdlog/spdlog.h>

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

// Streams a partition from COPY into ClickHouse inserts of at most kRowsPerInsert rows, each
// counted back before its rows are reported to `copied`: PostgreSQL, this thread and ClickHouse
// work at the same time, and values needing no conversion are never decoded. Rows get `version`:
// the snapshot version, below every CDC change, unless told otherwise.
std::uint64_t copy_rows(const Config& c, postgres::Connection& conn, Client& ch,
                        const TableDefinition& table, const TableLayout& l,
                        const Partition& partition, const std::string& snapshot, ExecContext& ctx,
                        const std::function<void(std::uint64_t)>& copied,
                        std::uint64_t version = kSnapshotVersion) {
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
    auto report = [&](std::uint64_t rows) {
      ctx.progress.rows_copied(table.table, partition.index, rows);
    };
    try {
      return copy_rows(c_, conn, ch, table, l, partition, snapshot, ctx, report);
    } catch (const postgres::SnapshotGone&) {
      // After a restart the exported snapshot is gone: a fresh one is correct, CDC replays
      // everything after the slot's consistent point with higher versions.
      return copy_rows(c_, conn, ch, table, l, partition, "", ctx, report);
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

// Process-wide counts of paths the tests must prove they took.
std::atomic<std::uint64_t> g_toast_refilled{0};
std::atomic<std::uint64_t> g_columns_added{0};
std::atomic<std::uint64_t> g_tables_stopped{0};
std::atomic<std::uint64_t> g_partitions_backfilled{0};
std::atomic<std::uint64_t> g_truncates{0};

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
    (void)ch_->version();  // unreachable or refused: the pipe retries or fails, no table stops
    tables_.clear();
    pending_.clear();
    names_.clear();
    std::vector<TableDefinition> followed;
    bool partitioned = false;
    for (TableDefinition def : tables) {
      const TableDefinition saved = def;
      std::optional<std::string> why = identify(def);
      if (!why) {
        try {
          Held h = held(def);
          // Columns a definition gained but ClickHouse lacks (a crash or pause after the save,
          // before the ALTER): added now, or the table stops here rather than every insert fail.
          clickhouse::add_missing_columns(*ch_, h.layout);
          tables_.emplace(def.table, std::move(h));
        } catch (const TransientError&) {
          throw;
        } catch (const InvalidField& e) {
          why = "table " + def.table.qualified() + " cannot be written to ClickHouse: " + e.what();
        } catch (const clickhouse::ClickHouseFatalError& e) {
          why = "table " + def.table.qualified() +
                ": ClickHouse refused its new columns: " + e.what();
        }
      }
      if (why) {
        pending_.push_back(stop_table(saved, *why));
        continue;
      }
      if (def != saved) {
        pending_.push_back(SchemaChange{
            SchemaChange::Kind::Identified, def.table, def,
            "table " + def.table.qualified() +
                ": its OID and column numbers recorded (saved before they were kept)"});
      }
      partitioned = partitioned || !def.leaves.empty();
      followed.push_back(std::move(def));
    }
    // A publication made before partitioned tables were supported publishes their leaves under
    // their own names, which the pipe would not recognise.
    if (partitioned) postgres::publish_via_root(*sql_, publication_name(c_.pipe_id));
    stream_.emplace(c_.source, slot_name(c_.pipe_id), publication_name(c_.pipe_id), from,
                    std::move(followed), c_.stream);
    next_leaf_check_ = std::chrono::steady_clock::now();
    return from;
  }

  CdcBatch pull(ExecContext& ctx) override {
    CdcBatch batch =
        stream_->pull(ctx.settings.pull_batch_size, ctx.settings.sync_interval, ctx.stop);
    // What the executor finds itself (in the catalog, in ClickHouse) goes with a batch that ends a
    // transaction: saved at once, never held back with a large transaction's pieces.
    if (batch.partial) return batch;
    if (!pending_.empty()) {
      batch.schema_changes.insert(batch.schema_changes.begin(), pending_.begin(), pending_.end());
      pending_.clear();
    }
    if (std::chrono::steady_clock::now() >= next_leaf_check_) {
      check_leaves(batch);
      next_leaf_check_ = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    }
    return batch;
  }

  void apply(const CdcBatch& batch, ExecContext& ctx) override {
    for (const SchemaChange& sc : batch.schema_changes) {
      if (sc.kind != SchemaChange::Kind::TableStopped) follow(sc, ctx);
    }
    // Per table, the rows to write, each key's last change only: all changes of a transaction
    // share its version, so the last one must be the only one (or the last inserted).
    std::map<TableRef, std::vector<clickhouse::Row>> rows;
    std::map<TableRef, std::unordered_map<std::string, std::size_t>> slot_of;
    auto flush = [&] {
      for (auto& [t, r] : rows) write(c_, *ch_, tables_.at(t).layout, r);
      rows.clear();
      slot_of.clear();
    };
    auto put = [&](const Held& h, clickhouse::Row row) {
      auto [it, added] = slot_of[h.def.table].try_emplace(key_of(h, row.values));
      auto& out = rows[h.def.table];
      if (added) {
        it->second = out.size();
        out.push_back(std::move(row));
      } else {
        out[it->second] = std::move(row);
      }
    };
    for (const Change& c : batch.changes) {
      auto it = tables_.find(c.table);
      if (it == tables_.end()) continue;  // stopped in this batch, or left the pipe
      const Held& h = it->second;
      switch (c.kind) {
        case ChangeKind::Insert:
        case ChangeKind::Update:
          if (!c.old_key.empty()) {
            // A key change: the old key goes away (upstream leaves it behind).
            put(h, {deletion(h, c.old_key, c.values), c.version(ctx.row_versions), true});
          }
          put(h, {filled(h, c.values), c.version(ctx.row_versions), false});
          break;
        case ChangeKind::Delete:
          put(h, {deletion(h, c.values, {}), c.version(ctx.row_versions), true});
          break;
        case ChangeKind::Truncate:
          flush();  // everything before the truncate first
          clickhouse::delete_all(*ch_, h.layout, c.version(ctx.row_versions));
          g_truncates.fetch_add(1);
          break;
      }
    }
    flush();
    // A table stops after the changes that came before the change it cannot follow.
    for (const SchemaChange& sc : batch.schema_changes) {
      if (sc.kind == SchemaChange::Kind::TableStopped && tables_.erase(sc.table)) {
        g_tables_stopped.fetch_add(1);
      }
    }
  }

  void confirm(Lsn position, ExecContext&) override { stream_->confirm(position); }
  void stop(ExecContext&) override {
    stream_.reset();
    ch_.reset();
    sql_.reset();
  }

 private:
  struct Held {
    TableDefinition def;
    TableLayout layout;
    std::vector<std::size_t> key_at;  // definition columns of the key, in key order
  };
  Held held(const TableDefinition& def) {
    Held h{def, layout(*ch_, def), {}};
    for (const auto& k : def.primary_key) {
      for (std::size_t i = 0; i < def.columns.size(); ++i) {
        if (def.columns[i].name == k) h.key_at.push_back(i);
      }
    }
    return h;
  }
  static std::string key_of(const Held& h, const Values& v) {
    std::string key;
    for (std::size_t i : h.key_at) {
      if (i >= v.size() || v[i].is_null()) {
        key += "N;";
      } else {
        key += std::to_string(v[i].text.size()) + ':' + v[i].text;
      }
    }
    return key;
  }

  static SchemaChange stop_table(const TableDefinition& def, const std::string& why) {
    return SchemaChange{SchemaChange::Kind::TableStopped, def.table, def,
                        why +
                            ". Its changes are no longer applied (the rest of the pipe goes on); "
                            "resync the pipe to reload it"};
  }

  // Checks a saved definition against the catalog by OID (a table renamed, dropped or created
  // again while the pipe was stopped sends no Relation message until it changes), and completes
  // one saved before OIDs and attnums were kept. Returns why the table must stop, if it must.
  std::optional<std::string> identify(TableDefinition& def) {
    const std::string name = postgres::qualified(*sql_, def.table);
    postgres::Result r = sql_->exec("SELECT coalesce(to_regclass($1)::oid, 0)", {name});
    std::uint32_t now = 0;
    const auto text = r.value(0, 0);
    std::from_chars(text.data(), text.data() + text.size(), now);
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
        if (!cat.dropped && !c.dropped && c.attnum == 0 && c.name == cat.name)
          c.attnum = cat.attnum;
      }
    }
    return std::nullopt;
  }

  // Carries out a definition change before the batch's rows are written (TableStopped: after).
  void follow(const SchemaChange& sc, ExecContext& ctx) {
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
          g_columns_added.fetch_add(added.size());
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

  // Rows a partition held when it was attached never pass through the WAL: they are copied from
  // the snapshot a temporary slot exports, at the version of its consistent point. Exactly the
  // transactions that committed before that point are in the snapshot, so the copy wins over
  // every older change of the same keys (a key deleted before the attach, a row changed while
  // detached) and loses to every later one, which the stream brings.
  void backfill(const Held& h, const std::vector<TableRef>& leaves, ExecContext& ctx) {
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
    const TableLayout l = clickhouse::layout_for(present, h.layout.name, h.layout.server);
    for (const auto& leaf : leaves) {
      postgres::Connection conn = source(c_);
      Partition whole;
      whole.leaf = leaf;
      const std::uint64_t n = copy_rows(
          c_, conn, *ch_, present, l, whole, slot.snapshot_name, ctx,
          [this](std::uint64_t) { stream_->keep_alive(); }, version);
      g_partitions_backfilled.fetch_add(1);
      ctx.log.info("cdc: partition {} of {} attached: {} rows copied at {}", leaf.qualified(),
                   h.def.table.qualified(), n, to_string(slot.info.consistent_point));
    }
  }

  // Partitions attached or detached since the last look (PostgreSQL sends nothing for either).
  void check_leaves(CdcBatch& batch) {
    for (const auto& [t, h] : tables_) {
      // Those the batch already changes are looked at next time.
      if (std::any_of(batch.schema_changes.begin(), batch.schema_changes.end(),
                      [&](const SchemaChange& sc) { return sc.table == t; })) {
        continue;
      }
      // By OID: a table renamed meanwhile is the tracker's to stop, not a table without leaves.
      const std::optional<std::vector<TableRef>> found =
          postgres::leaf_partitions(*sql_, h.def.oid);
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

  // The table's current name, by OID (cached until it fails); empty when it no longer exists.
  std::string current_name(const TableDefinition& def) {
    if (def.oid == 0) return postgres::qualified(*sql_, def.table);
    auto it = names_.find(def.oid);
    if (it != names_.end()) return it->second;
    postgres::Result name = sql_->exec(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON "
        "n.oid = c.relnamespace WHERE c.oid = $1::oid",
        {std::to_string(def.oid)});
    if (name.rows() != 1) return "";
    return names_[def.oid] = std::string(name.value(0, 0));
  }

  // A row marking `key_row`'s key deleted: key columns from it, the rest placeholders (or the
  // new row's values, which satisfy every column's type).
  static Values deletion(const Held& h, const Values& key_row, const Values& fallback) {
    const TableDefinition& def = h.def;
    Values out(def.columns.size());
    for (std::size_t i = 0; i < def.columns.size(); ++i) {
      const bool key = std::find(h.key_at.begin(), h.key_at.end(), i) != h.key_at.end();
      if (key && i < key_row.size()) {
        out[i] = key_row[i];
      } else if (i < fallback.size() && fallback[i].kind == Datum::Kind::Text) {
        out[i] = fallback[i];
      } else {
        out[i] = placeholder(def.columns[i]);
      }
    }
    return out;
  }
  // The row in the definition's shape: rows decoded before a column was added lack it (NULL),
  // and a column dropped at the source gets NULL or, when ClickHouse's column is not Nullable,
  // the type's default. Unchanged TOAST values were not sent: they are read from the source row
  // by its key (a parameterized query). The value read is at least as new as the change; any later
  // change to it comes later in the stream, so the destination converges on the source. A row gone
  // since gets a placeholder: its delete follows in the stream.
  Values filled(const Held& h, const Values& v) {
    const TableDefinition& def = h.def;
    Values out = v;
    out.resize(def.columns.size());
    std::vector<std::size_t> missing;
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (def.columns[i].dropped && !(out[i].kind == Datum::Kind::Text)) {
        out[i] = placeholder(def.columns[i]);  // gone at the source: nothing to read back
      } else if (out[i].kind == Datum::Kind::UnchangedToast) {
        missing.push_back(i);
      }
    }
    if (missing.empty()) return out;
    g_toast_refilled.fetch_add(missing.size());
    std::string cols, where;
    std::vector<std::optional<std::string>> params;
    for (std::size_t i : missing)
      cols += (cols.empty() ? "" : ", ") + sql_->identifier(def.columns[i].name);
    for (std::size_t i : h.key_at) {
      params.push_back(out[i].is_null() ? std::nullopt : std::optional<std::string>(out[i].text));
      where += (where.empty() ? "" : " AND ") + sql_->identifier(def.columns[i].name) + " = $" +
               std::to_string(params.size());
    }
    // By OID, so a table renamed since is still found; one dropped since is not (nor a dropped
    // column): the stream says so next, and the table stops or the column gets NULL from then on.
    const std::string from = current_name(def);
    auto read = [&](const std::string& columns) -> std::optional<postgres::Result> {
      if (from.empty()) return std::nullopt;
      try {
        return sql_->exec("SELECT " + columns + " FROM " + from + " WHERE " + where, params);
      } catch (const postgres::PgFatalError& e) {
        if (e.sqlstate() != "42703" && e.sqlstate() != "42P01") throw;
        if (e.sqlstate() == "42P01") names_.erase(def.oid);
        return std::nullopt;
      }
    };
    std::optional<postgres::Result> found = read(cols);
    if (!found && !from.empty() && missing.size() > 1) {
      // One of them was dropped: read the others one by one, so only that one gets NULL.
      for (std::size_t i : missing) {
        auto one = read(sql_->identifier(def.columns[i].name));
        out[i] = !one || one->rows() == 0 ? placeholder(def.columns[i])
                 : one->is_null(0, 0)     ? Datum::null()
                                          : Datum::of(std::string(one->value(0, 0)));
      }
      return out;
    }
    for (std::size_t k = 0; k < missing.size(); ++k) {
      const std::size_t i = missing[k];
      if (!found || found->rows() == 0) {
        out[i] = placeholder(def.columns[i]);
      } else {
        out[i] = found->is_null(0, static_cast<int>(k))
                     ? Datum::null()
                     : Datum::of(std::string(found->value(0, static_cast<int>(k))));
      }
    }
    return out;
  }

  Config c_;
  std::optional<Client> ch_;
  std::optional<postgres::Connection> sql_;
  std::map<TableRef, Held> tables_;
  std::vector<SchemaChange> pending_;  // found by the executor itself: reported with the next pull
  std::map<std::uint32_t, std::string> names_;  // current table names by OID
  std::optional<postgres::LogicalStream> stream_;
  std::chrono::steady_clock::time_point next_leaf_check_;
};

}  // namespace

Counters counters() noexcept {
  const postgres::SpillCounters spilled = postgres::spill_counters();
  return Counters{g_toast_refilled.load(), spilled.transactions,    spilled.changes,
                  g_columns_added.load(),  g_tables_stopped.load(), g_partitions_backfilled.load(),
                  g_truncates.load()};
}

Executors make_executors(const Config& config) {
  return Executors{std::make_shared<Provisioner>(config), std::make_shared<TableSetup>(config),
                   std::make_shared<SnapshotCopier>(config), std::make_shared<CdcStreamer>(config)};
}

}  // namespace clickpipe::pg_to_clickhouse
