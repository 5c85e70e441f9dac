#include "clickpipe/postgres/replication.hpp"

#include <charconv>
#include <chrono>
#include <thread>

#include "clickpipe/postgres/catalog.hpp"

namespace clickpipe::postgres {

void ensure_publication(Connection& conn, const std::string& name,
                        std::span<const TableRef> tables) {
  // publish_via_partition_root: a partitioned table's changes arrive as its own (one relation,
  // one ClickHouse table), including those of partitions attached later.
  Result exists = conn.exec("SELECT pubviaroot FROM pg_publication WHERE pubname = $1", {name});
  std::string list;
  if (exists.rows() == 0) {
    for (const auto& t : tables) list += (list.empty() ? "" : ", ") + qualified(conn, t);
    try {
      conn.exec("CREATE PUBLICATION " + conn.identifier(name) + " FOR TABLE " + list +
                " WITH (publish_via_partition_root = true)");
      return;
    } catch (const PgFatalError& e) {
      if (e.sqlstate() != "42710") throw;  // created meanwhile: fall through and add tables
    }
  } else {
    bool partitioned = false;
    for (const auto& t : tables) {
      partitioned =
          partitioned ||
          conn.exec("SELECT 1 FROM pg_class WHERE oid = to_regclass($1) AND relkind = 'p'",
                    {qualified(conn, t)})
                  .rows() == 1;
    }
    if (partitioned) publish_via_root(conn, name);
  }
  for (const auto& t : tables) {
    Result has = conn.exec(
        "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND "
        "tablename = $3",
        {name, t.schema, t.name});
    if (has.rows() == 0) {
      conn.exec("ALTER PUBLICATION " + conn.identifier(name) + " ADD TABLE " + qualified(conn, t));
    }
  }
}

void publish_via_root(Connection& conn, const std::string& name) {
  Result r = conn.exec("SELECT pubviaroot FROM pg_publication WHERE pubname = $1", {name});
  if (r.rows() == 0 || r.value(0, 0) == "t") return;
  try {
    conn.exec("ALTER PUBLICATION " + conn.identifier(name) +
              " SET (publish_via_partition_root = true)");
  } catch (const PgFatalError& e) {
    if (e.sqlstate() != "42501") throw;
    throw PgFatalError("publication " + name +
                           " does not publish partitioned tables through their root, which the "
                           "pipe needs, and this user may not change it: its owner must run "
                           "ALTER PUBLICATION ... SET (publish_via_partition_root = true)",
                       e.sqlstate());
  }
}

void drop_from_publication(Connection& conn, const std::string& name,
                           std::span<const TableRef> tables) {
  for (const auto& t : tables) {
    Result has = conn.exec(
        "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND "
        "tablename = $3",
        {name, t.schema, t.name});
    if (has.rows() > 0) {
      conn.exec("ALTER PUBLICATION " + conn.identifier(name) + " DROP TABLE " + qualified(conn, t));
    }
  }
}

void drop_publication(Connection& conn, const std::string& name) {
  conn.exec("DROP PUBLICATION IF EXISTS " + conn.identifier(name));
}

std::optional<SlotStatus> slot_status(Connection& conn, const std::string& slot) {
  Result r = conn.exec(
      "SELECT confirmed_flush_lsn::text, restart_lsn::text, coalesce(wal_status, ''), "
      "coalesce(pg_current_wal_lsn() - restart_lsn, 0)::bigint FROM pg_replication_slots "
      "WHERE slot_name = $1",
      {slot});
  if (r.rows() == 0) return std::nullopt;
  SlotStatus s;
  if (auto l = parse_lsn(r.value(0, 0))) s.confirmed_flush = *l;
  if (auto l = parse_lsn(r.value(0, 1))) s.restart = *l;
  s.wal_status = std::string(r.value(0, 2));
  auto v = r.value(0, 3);
  std::from_chars(v.data(), v.data() + v.size(), s.retained_bytes);
  return s;
}

namespace {
CreatedSlot create(Connection& replication, const std::string& slot, const char* kind) {
  Result r = replication.exec("CREATE_REPLICATION_SLOT " + replication.identifier(slot) + kind +
                              " LOGICAL pgoutput EXPORT_SNAPSHOT");
  auto lsn = parse_lsn(r.value(0, 1));
  if (!lsn)
    throw PgFatalError("unexpected consistent point '" + std::string(r.value(0, 1)) + "'", "");
  return CreatedSlot{SlotInfo{slot, *lsn}, std::string(r.value(0, 2))};
}
}  // namespace

CreatedSlot create_slot(Connection& replication, Connection& sql, const std::string& slot) {
  if (auto existing = slot_status(sql, slot)) {
    // A slot that lost WAL it needed can never stream again: made anew, it begins past the
    // pipe's saved position, which only a resync (a full reload) accepts; CDC refuses it.
    if (existing->wal_status != "lost") {
      return CreatedSlot{SlotInfo{slot, existing->confirmed_flush}, {}};
    }
    drop_slot(sql, slot);
  }
  return create(replication, slot, "");
}

CreatedSlot create_temporary_slot(Connection& replication, const std::string& slot) {
  return create(replication, slot, " TEMPORARY");
}

void drop_slot(Connection& sql, const std::string& slot) {
  // A stream closed just before still holds the slot until its walsender has noticed and exited
  // (55006, object in use): wait for that, a few seconds at most, instead of failing teardown.
  for (int attempt = 0;; ++attempt) {
    try {
      sql.exec(
          "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE "
          "slot_name = $1",
          {slot});
      return;
    } catch (const PgTransientError& e) {
      if (e.sqlstate() != "55006" || attempt == 100) throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void check_slot(Connection& sql, const std::string& slot, Lsn saved) {
  auto s = slot_status(sql, slot);
  if (!s) {
    throw FatalError("replication slot " + slot + " is missing (dropped?): changes since " +
                     to_string(saved) + " may be lost; resync the pipe");
  }
  if (s->wal_status == "lost") {
    throw SlotInvalidated("replication slot " + slot +
                          " was invalidated: the server removed WAL it needed "
                          "(max_slot_wal_keep_size); only a resync recovers");
  }
  if (s->confirmed_flush > saved) {
    throw FatalError("replication slot " + slot + " is at " + to_string(s->confirmed_flush) +
                     ", ahead of the saved position " + to_string(saved) +
                     " (moved by someone else, or dropped and recreated): changes would be "
                     "skipped; resync the pipe");
  }
}

}  // namespace clickpipe::postgres
