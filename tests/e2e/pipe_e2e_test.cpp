// A real pipe: PostgreSQL 15 to ClickHouse through the runtime and the reference executors,
// against the servers ./scripts/test.sh starts.
#include <gtest/gtest.h>
#include <spdlog/logger.h>

#include <cstdlib>
#include <map>
#include <thread>

#include "../servers.hpp"
#include "clickpipe/clickhouse/schema.hpp"
#include "clickpipe/pg_to_clickhouse/executors.hpp"
#include "clickpipe/postgres/catalog.hpp"
#include "clickpipe/postgres/replication.hpp"
#include "clickpipe/store/memory_store.hpp"
#include "clickpipe/testing/helpers.hpp"

namespace clickpipe {
namespace {

using namespace std::chrono_literals;

pg_to_clickhouse::Config config(const std::string& id) {
  pg_to_clickhouse::Config c;
  c.source = test::postgres_settings();
  c.destination = test::clickhouse_settings();
  c.pipe_id = id;
  return c;
}

// id -> v, as each side has it.
std::map<std::string, std::string> source_rows(postgres::Connection& pg, const std::string& t) {
  std::map<std::string, std::string> out;
  postgres::Result r = pg.exec("SELECT id::text, coalesce(v, '<null>') FROM " + t);
  for (int i = 0; i < r.rows(); ++i) out[std::string(r.value(i, 0))] = std::string(r.value(i, 1));
  return out;
}

std::map<std::string, std::string> destination_rows(const pg_to_clickhouse::Config& c,
                                                    const std::string& t) {
  clickhouse::Client ch(c.destination);
  std::map<std::string, std::string> out;
  if (!clickhouse::table_exists(ch, t)) return out;
  const TableDefinition def{
      TableRef{"public", t},
      {Column{"id", "int8", 20, -1, false, 0}, Column{"v", "text", 25, -1, true, 0}},
      {"id"}};
  for (const auto& row : clickhouse::read_final(ch, clickhouse::layout_for(def, t, ch.version()))) {
    out[*row[0]] = row[1] ? *row[1] : "<null>";
  }
  return out;
}

bool converges(postgres::Connection& pg, const pg_to_clickhouse::Config& c, const std::string& t,
               std::chrono::seconds timeout = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (source_rows(pg, t) == destination_rows(c, t)) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

TEST(EndToEnd, APipeCopiesStreamsPausesResumesAndResyncs) {
  const std::string id = "e2e_" + std::to_string(::getpid());
  const pg_to_clickhouse::Config cfg = config(id);
  postgres::Connection pg = postgres::Connection::open(cfg.source);
  const std::string t = "e2e_orders_" + std::to_string(::getpid());
  pg.exec("CREATE TABLE " + t + " (id int8 PRIMARY KEY, v text, big text)");
  pg.exec("INSERT INTO " + t + " SELECT g, 'row ' || g, NULL FROM generate_series(1, 20000) g");
  pg.exec("ANALYZE " + t);

  Settings s;
  s.sync_interval = 200ms;
  s.rows_per_partition = 4000;
  PipeOptions o;
  o.logger = std::make_shared<spdlog::logger>("e2e");
  o.store = std::make_shared<MemoryStore>();
  Pipe pipe(PipeConfig{id, Mode::InitialLoadAndCdc, {TableRef{"public", t}}, s},
            pg_to_clickhouse::make_executors(cfg), o);
  pipe.start();
  ASSERT_TRUE(pipe.wait_for(State::Running, 60s)) << to_string(pipe.state());
  EXPECT_GE(pipe.status().snapshot.at(0).partitions_total, 2u);
  EXPECT_TRUE(converges(pg, cfg, t)) << "after the initial load";

  // CDC: inserts, updates, a key change, deletes, an unchanged TOAST value.
  std::string big(6000, 'z');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7919) % 26);
  pg.exec("UPDATE " + t + " SET big = $1 WHERE id = 1", {big});
  pg.exec("UPDATE " + t + " SET v = 'changed, big untouched' WHERE id = 1");
  pg.exec("INSERT INTO " + t + " VALUES (30001, 'new', NULL)");
  pg.exec("UPDATE " + t + " SET id = 40002 WHERE id = 2");
  pg.exec("DELETE FROM " + t + " WHERE id BETWEEN 10 AND 20");
  EXPECT_TRUE(converges(pg, cfg, t)) << "after CDC";
  {
    clickhouse::Client ch(cfg.destination);
    EXPECT_EQ(ch.query("SELECT length(big) FROM " + clickhouse::quote(t) +
                       " FINAL WHERE id = 1 AND _is_deleted = 0"),
              "6000\n")
        << "an unchanged TOAST value is kept, not blanked";
  }

  ASSERT_TRUE(testing::drive_to(pipe, State::Paused, 30s));
  pg.exec("INSERT INTO " + t + " VALUES (30002, 'while paused', NULL)");
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(destination_rows(cfg, t).count("30002"), 0u) << "a paused pipe moves nothing";
  ASSERT_TRUE(pipe.resume());
  EXPECT_TRUE(converges(pg, cfg, t)) << "after resume";

  ASSERT_TRUE(pipe.resync());
  ASSERT_TRUE(testing::wait_until(
      pipe,
      [](const PipeStatus& st) {
        return st.state == State::Running && st.history.back().trigger == Trigger::SwapDone;
      },
      60s));
  pg.exec("INSERT INTO " + t + " VALUES (30003, 'after resync', NULL)");
  EXPECT_TRUE(converges(pg, cfg, t)) << "after resync";

  ASSERT_TRUE(testing::drive_to(pipe, State::Terminated, 30s));
  EXPECT_FALSE(postgres::slot_status(pg, pg_to_clickhouse::slot_name(id)).has_value())
      << "delete drops the slot";
}

}  // namespace
}  // namespace clickpipe
