// What the source-changes tests share: a pipe's settings for them, PostgreSQL and ClickHouse read
// into the same shape and compared value by value, and a writer that keeps changing rows.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/clickhouse/quote.hpp"
#include "clickpipe/clickhouse/tab_separated.hpp"
#include "clickpipe/clickhouse/tables.hpp"
#include "clickpipe/pg_to_clickhouse/executors.hpp"
#include "clickpipe/postgres/connection.hpp"
#include "clickpipe/testing/helpers.hpp"
#include "e2e.hpp"

namespace clickpipe::sctest {

using Rows = std::map<std::string, std::vector<std::string>>;

// Names unique to this process, so runs can share the servers.
inline std::string tag() { return std::to_string(::getpid()); }

// Quick syncs, small partitions and retries in milliseconds.
inline Settings fast() {
  Settings s;
  s.sync_interval = std::chrono::milliseconds(100);
  s.rows_per_partition = 2000;
  testing::fast_retries(s, std::chrono::milliseconds(20), std::chrono::milliseconds(200));
  return s;
}

// id -> the columns' text ("<null>" for NULL), as PostgreSQL has them.
inline Rows source(postgres::Connection& pg, const std::string& table,
                   const std::vector<std::string>& cols) {
  std::string sql = "SELECT id::text";
  for (const auto& c : cols) sql += ", coalesce(" + pg.identifier(c) + "::text, '<null>')";
  postgres::Result r = pg.exec(sql + " FROM " + pg.identifier(table));
  Rows out;
  for (int i = 0; i < r.rows(); ++i) {
    auto& row = out[std::string(r.value(i, 0))];
    for (int c = 1; c < r.columns(); ++c) row.emplace_back(r.value(i, c));
  }
  return out;
}

// The same, as ClickHouse's FINAL view without deleted rows has them.
inline Rows destination(const pg_to_clickhouse::Config& cfg, const std::string& table,
                        const std::vector<std::string>& cols) {
  clickhouse::Client ch(cfg.destination);
  if (!clickhouse::table_exists(ch, table)) return {};
  std::string sql = "SELECT toString(id)";
  for (const auto& c : cols) sql += ", ifNull(toString(" + clickhouse::quote(c) + "), '<null>')";
  sql += " FROM " + clickhouse::quote(cfg.destination.database) + "." + clickhouse::quote(table) +
         " FINAL WHERE _is_deleted = 0";
  Rows out;
  for (auto& row : clickhouse::parse_tab_separated(ch.query(sql))) {
    auto& r = out[*row.at(0)];
    for (std::size_t c = 1; c < row.size(); ++c) r.push_back(row[c] ? *row[c] : "<null>");
  }
  return out;
}

// The first row that differs between `a` (PostgreSQL) and `b` (ClickHouse), "" when none.
inline std::string first_difference(const Rows& a, const Rows& b) {
  for (const auto& [id, row] : a) {
    auto it = b.find(id);
    if (it == b.end()) return "id " + id + " missing in ClickHouse";
    if (it->second != row) {
      std::string s = "id " + id + ":";
      for (std::size_t i = 0; i < row.size(); ++i) {
        const std::string theirs = i < it->second.size() ? it->second[i] : "(none)";
        if (row[i] != theirs) {
          s += " column " + std::to_string(i) + " PostgreSQL '" + row[i].substr(0, 40) +
               "' ClickHouse '" + theirs.substr(0, 40) + "'";
        }
      }
      return s;
    }
  }
  for (const auto& [id, row] : b) {
    if (!a.count(id)) return "id " + id + " only in ClickHouse";
  }
  return "";
}

// Waits until ClickHouse equals PostgreSQL on `cols`; the failure names the first difference.
inline ::testing::AssertionResult converges(
    postgres::Connection& pg, const pg_to_clickhouse::Config& cfg, const std::string& table,
    const std::vector<std::string>& cols, std::chrono::seconds timeout = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string diff;
  do {
    const Rows src = source(pg, table, cols);
    try {
      diff = first_difference(src, destination(cfg, table, cols));
    } catch (const Error& e) {
      diff = e.what();  // e.g. a column the pipe has not added yet
    }
    if (diff.empty()) return ::testing::AssertionSuccess() << src.size() << " rows equal";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() < deadline);
  return ::testing::AssertionFailure() << table << ": " << diff;
}

// Writes to `v` of some tables until stopped: inserts, updates and deletes, in short transactions.
class Writer {
 public:
  explicit Writer(std::vector<std::string> tables)
      : tables_(std::move(tables)), thread_([this] { loop(); }) {}
  ~Writer() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  long transactions() const { return transactions_; }

 private:
  void loop() {
    postgres::Connection pg = postgres::Connection::open(test::postgres_settings());
    std::mt19937 rng(7);
    long next = 500000;
    while (!stop_) {
      const std::string t = pg.identifier(tables_[rng() % tables_.size()]);
      const std::string some = std::to_string(1 + rng() % 200);
      try {
        switch (rng() % 4) {
          case 0:
            pg.exec("INSERT INTO " + t + " (id, v) VALUES ($1, 'w')", {std::to_string(next++)});
            break;
          case 3: pg.exec("DELETE FROM " + t + " WHERE id = $1", {some}); break;
          default: pg.exec("UPDATE " + t + " SET v = v || '.' WHERE id = $1", {some});
        }
        ++transactions_;
      } catch (const Error&) {
        // A table being altered or renamed under the writer: try another statement.
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  std::vector<std::string> tables_;
  std::atomic<bool> stop_{false};
  std::atomic<long> transactions_{0};
  std::thread thread_;
};

// Whether the status records a schema change of `kind` on `table`.
inline bool has_event(const PipeStatus& s, const std::string& table, SchemaChange::Kind kind) {
  return std::any_of(s.schema_changes.begin(), s.schema_changes.end(),
                     [&](const SchemaEvent& e) { return e.table.name == table && e.kind == kind; });
}

// The ClickHouse type of `column`, "" when the table has no such column.
inline std::string column_type(const pg_to_clickhouse::Config& cfg, const std::string& table,
                               const std::string& column) {
  clickhouse::Client ch(cfg.destination);
  for (const auto& row : clickhouse::parse_tab_separated(
           ch.query("DESCRIBE TABLE " + clickhouse::quote(cfg.destination.database) + "." +
                    clickhouse::quote(table)))) {
    if (row.size() > 1 && row[0] == column) return *row[1];
  }
  return "";
}

}  // namespace clickpipe::sctest
