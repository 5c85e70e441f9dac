// Logical replication on the test server (./scripts/test.sh; CLICKPIPE_PG_* must be set, these
// tests never skip): every kind of change decoded, transactions whole and in commit order,
// restarts from a confirmed position, keepalives on an idle slot, and a stop seen within a poll.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "../print.hpp"
#include "pg_fixtures.hpp"

namespace clickpipe::postgres {
namespace {

using namespace std::chrono_literals;
using namespace pgtest;

TEST(Postgres, CdcDecodesInsertsUpdatesKeyChangesDeletesTruncateAndToast) {
  Cdc x;
  Connection& c = x.c;
  const std::string big = [] {
    std::string s;
    std::mt19937 rng(3);
    for (int i = 0; i < 8000; ++i) s += static_cast<char>('a' + rng() % 26);  // incompressible
    return s;
  }();
  c.exec("INSERT INTO " + x.table + " VALUES (1, 'one', $1), (2, 'two', NULL)", {big});
  c.exec("UPDATE " + x.table + " SET v = 'uno' WHERE id = 1");  // big unchanged: TOASTed
  c.exec("UPDATE " + x.table + " SET id = 20 WHERE id = 2");    // a key change
  c.exec("DELETE FROM " + x.table + " WHERE id = 20");
  c.exec("TRUNCATE " + x.table);
  LogicalStream s(settings(), x.slot, x.publication, x.start);
  const auto changes = drain(s, 6);
  ASSERT_EQ(changes.size(), 6u);
  EXPECT_EQ(changes[0].kind, ChangeKind::Insert);
  EXPECT_EQ(changes[0].values[2].text, big);
  EXPECT_EQ(changes[1].kind, ChangeKind::Insert);
  EXPECT_TRUE(changes[1].values[2].is_null()) << "NULL stays NULL";
  EXPECT_EQ(changes[0].commit_lsn, changes[1].commit_lsn) << "one transaction, one commit LSN";
  EXPECT_EQ(changes[0].position, 0u);
  EXPECT_EQ(changes[1].position, 1u);
  EXPECT_EQ(changes[0].version(), changes[1].version()) << "a transaction's version is its commit";

  EXPECT_EQ(changes[2].kind, ChangeKind::Update);
  EXPECT_EQ(changes[2].values[1].text, "uno");
  EXPECT_EQ(changes[2].values[2].kind, Datum::Kind::UnchangedToast) << "not turned into NULL";
  EXPECT_TRUE(changes[2].old_key.empty());

  EXPECT_EQ(changes[3].kind, ChangeKind::Update);
  EXPECT_EQ(changes[3].values[0].text, "20");
  ASSERT_FALSE(changes[3].old_key.empty()) << "a key change carries the old key";
  EXPECT_EQ(changes[3].old_key[0].text, "2");

  EXPECT_EQ(changes[4].kind, ChangeKind::Delete);
  EXPECT_EQ(changes[4].values[0].text, "20");
  EXPECT_EQ(changes[5].kind, ChangeKind::Truncate);
  EXPECT_EQ(changes[5].table.name, x.name);
  for (std::size_t i = 1; i < changes.size(); ++i) {
    // Each statement above committed on its own: later transactions, higher versions.
    if (changes[i - 1].commit_lsn != changes[i].commit_lsn) {
      EXPECT_LT(changes[i - 1].version(), changes[i].version()) << i;
    }
  }
  EXPECT_LT(changes[1].version(), changes[5].version());
}

TEST(Postgres, RestartingFromAConfirmedPositionDeliversNothingBeforeIt) {
  Cdc x;
  for (int i = 0; i < 5; ++i) {
    x.c.exec("INSERT INTO " + x.table + " VALUES ($1, 'a')", {std::to_string(i)});
  }
  Lsn end;
  {
    LogicalStream s(settings(), x.slot, x.publication, x.start);
    ASSERT_EQ(drain(s, 5, &end).size(), 5u);
    s.confirm(end);
    ASSERT_TRUE(slot_confirms(x.c, x.slot, end)) << "the slot records what the stream confirmed";
  }
  for (int i = 5; i < 8; ++i) {
    x.c.exec("INSERT INTO " + x.table + " VALUES ($1, 'b')", {std::to_string(i)});
  }
  LogicalStream s(settings(), x.slot, x.publication, end);
  const auto changes = drain(s, 3);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].values[0].text, "5");
  EXPECT_GT(changes[0].commit_lsn, end);
}

TEST(Postgres, InterleavedTransactionsArriveWholeInCommitOrder) {
  Cdc x;
  Connection a = sql(), b = sql();
  a.exec("BEGIN");
  b.exec("BEGIN");
  a.exec("INSERT INTO " + x.table + " VALUES (1, 'a1')");
  b.exec("INSERT INTO " + x.table + " VALUES (2, 'b1')");
  a.exec("INSERT INTO " + x.table + " VALUES (3, 'a2')");
  b.exec("INSERT INTO " + x.table + " VALUES (4, 'b2')");
  b.exec("COMMIT");
  a.exec("COMMIT");
  LogicalStream s(settings(), x.slot, x.publication, x.start);
  const auto changes = drain(s, 4);
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(changes[0].values[1].text, "b1");
  EXPECT_EQ(changes[1].values[1].text, "b2");
  EXPECT_EQ(changes[2].values[1].text, "a1");
  EXPECT_EQ(changes[3].values[1].text, "a2");
  EXPECT_LT(changes[1].commit_lsn, changes[2].commit_lsn);
}

TEST(Postgres, RestartingBetweenInterleavedTransactionsLosesNeither) {
  Cdc x;
  Connection a = sql(), b = sql();
  a.exec("BEGIN");
  a.exec("INSERT INTO " + x.table + " VALUES (1, 'a1'), (2, 'a2')");  // two rows, one LSN
  b.exec("INSERT INTO " + x.table + " VALUES (3, 'b1')");             // commits first
  a.exec("INSERT INTO " + x.table + " VALUES (4, 'a3')");
  a.exec("COMMIT");
  Lsn after_b;
  {
    LogicalStream s(settings(), x.slot, x.publication, x.start);
    CdcBatch first = s.pull(1, 5s, {});  // B alone: one whole transaction
    ASSERT_EQ(first.changes.size(), 1u);
    EXPECT_EQ(first.changes[0].values[1].text, "b1");
    after_b = first.end;
    s.confirm(after_b);
  }
  // A began before B committed but commits after it: restarting after B replays A whole.
  LogicalStream s(settings(), x.slot, x.publication, after_b);
  const auto changes = drain(s, 3);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].values[1].text, "a1");
  EXPECT_EQ(changes[1].values[1].text, "a2");
  EXPECT_EQ(changes[2].values[1].text, "a3");
  EXPECT_EQ(changes[0].commit_lsn, changes[2].commit_lsn);
  EXPECT_EQ(changes[0].version(), changes[2].version()) << "the commit LSN versions all of A";
  EXPECT_LT(changes[0].position, changes[1].position);
}

TEST(Postgres, ManyRandomTransactionsReplayToTheSameTable) {
  Cdc x;
  std::mt19937 rng(42);
  for (int t = 0; t < 300; ++t) {
    x.c.exec("BEGIN");
    for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n; ++k) {
      const std::string id = std::to_string(rng() % 60);
      switch (rng() % 4) {
        case 0:
        case 1:
          x.c.exec("INSERT INTO " + x.table +
                       " VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = "
                       "excluded.v",
                   {id, fmt::format("v{}", rng() % 1000)});
          break;
        case 2:
          x.c.exec("UPDATE " + x.table +
                       " SET id = id + 1000 WHERE id = $1 AND NOT EXISTS (SELECT "
                       "1 FROM " +
                       x.table + " WHERE id = $1::int8 + 1000)",
                   {id});
          break;
        default: x.c.exec("DELETE FROM " + x.table + " WHERE id = $1", {id});
      }
    }
    x.c.exec("COMMIT");
  }
  std::map<std::string, std::string> source;
  Result r = x.c.exec("SELECT id::text, v FROM " + x.table);
  for (int i = 0; i < r.rows(); ++i)
    source[std::string(r.value(i, 0))] = std::string(r.value(i, 1));
  ASSERT_FALSE(source.empty());
  // Pulls until the replica matches, rather than up to a WAL position: with synchronous_commit
  // off (as on the test server) pg_current_wal_lsn() may still be behind the last commit.
  LogicalStream s(settings(), x.slot, x.publication, x.start);
  std::map<std::string, std::string> replica;
  std::size_t changes = 0;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (replica != source && std::chrono::steady_clock::now() < deadline) {
    CdcBatch b = s.pull(500, 300ms, {});
    for (const Change& c : b.changes) {
      if (!c.old_key.empty()) replica.erase(c.old_key[0].text);
      if (c.kind == ChangeKind::Delete) {
        replica.erase(c.values[0].text);
      } else {
        replica[c.values[0].text] = c.values[1].text;
      }
    }
    changes += b.changes.size();
    s.confirm(b.end);
  }
  EXPECT_EQ(replica, source) << changes << " changes replayed into " << replica.size()
                             << " rows; the source has " << source.size();
}

TEST(Postgres, AnIdleSlotAdvancesOnKeepalivesWhileOtherTablesWriteWal) {
  Cdc x;
  const std::string other = unique("other");
  x.c.exec("CREATE TABLE " + other + " (id int PRIMARY KEY)");
  LogicalStream s(settings(), x.slot, x.publication, x.start);
  (void)s.pull(100, 100ms, {});
  x.c.exec("INSERT INTO " + other + " SELECT g FROM generate_series(1, 1000) g");
  Lsn end = x.start;
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (end <= x.start && std::chrono::steady_clock::now() < deadline) {
    x.c.exec("SELECT pg_switch_wal()");
    CdcBatch b = s.pull(100, 300ms, {});
    EXPECT_TRUE(b.changes.empty());
    end = b.end;
  }
  EXPECT_GT(end, x.start) << "the position moves although none of our tables changed";
}

TEST(Postgres, StopIsSeenWithinOnePoll) {
  Cdc x;
  LogicalStream s(settings(), x.slot, x.publication, x.start);
  std::stop_source stop;
  std::thread t([&] {
    std::this_thread::sleep_for(100ms);
    stop.request_stop();
  });
  const auto t0 = std::chrono::steady_clock::now();
  (void)s.pull(100, 30s, stop.get_token());
  t.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

}  // namespace
}  // namespace clickpipe::postgres
