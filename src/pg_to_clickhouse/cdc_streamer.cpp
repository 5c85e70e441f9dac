// The CdcStreamer's stream and writes: the slot, the tables followed, batches pulled and written
// to ClickHouse, each key's last change only.
#include "cdc_streamer.hpp"

#include <unordered_map>

#include "clickpipe/clickhouse/insert.hpp"
#include "clickpipe/clickhouse/tables.hpp"
#include "clickpipe/postgres/replication.hpp"
#include "internal.hpp"

namespace clickpipe::pg_to_clickhouse::detail {
namespace {

void write(const Config& c, clickhouse::Client& ch, const clickhouse::TableLayout& l,
           const std::vector<clickhouse::Row>& rows) {
  if (c.reconcile) {
    clickhouse::insert_reconciled(ch, l, rows);
  } else {
    clickhouse::insert(ch, l, rows);
  }
}

}  // namespace

Lsn CdcStreamer::start(std::optional<Lsn> confirmed, std::span<const TableDefinition> tables,
                       ExecContext&) {
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
        why =
            "table " + def.table.qualified() + ": ClickHouse refused its new columns: " + e.what();
      }
    }
    if (why) {
      pending_.push_back(stop_table(saved, *why));
      continue;
    }
    if (def != saved) {
      pending_.push_back(
          SchemaChange{SchemaChange::Kind::Identified, def.table, def,
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

CdcBatch CdcStreamer::pull(ExecContext& ctx) {
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

void CdcStreamer::apply(const CdcBatch& batch, ExecContext& ctx) {
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
        path_counters().truncates.fetch_add(1);
        break;
    }
  }
  flush();
  // A table stops after the changes that came before the change it cannot follow.
  for (const SchemaChange& sc : batch.schema_changes) {
    if (sc.kind == SchemaChange::Kind::TableStopped && tables_.erase(sc.table)) {
      path_counters().tables_stopped.fetch_add(1);
    }
  }
}

void CdcStreamer::stop(ExecContext&) {
  stream_.reset();
  ch_.reset();
  sql_.reset();
}

CdcStreamer::Held CdcStreamer::held(const TableDefinition& def) {
  Held h{def, layout(*ch_, def), {}};
  for (const auto& k : def.primary_key) {
    for (std::size_t i = 0; i < def.columns.size(); ++i) {
      if (def.columns[i].name == k) h.key_at.push_back(i);
    }
  }
  return h;
}

std::string CdcStreamer::key_of(const Held& h, const Values& v) {
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

SchemaChange CdcStreamer::stop_table(const TableDefinition& def, const std::string& why) {
  return SchemaChange{SchemaChange::Kind::TableStopped, def.table, def,
                      why +
                          ". Its changes are no longer applied (the rest of the pipe goes on); "
                          "resync the pipe to reload it"};
}

std::shared_ptr<clickpipe::CdcStreamer> make_cdc_streamer(const Config& c) {
  return std::make_shared<CdcStreamer>(c);
}

}  // namespace clickpipe::pg_to_clickhouse::detail
