// A real pipe: PostgreSQL 15 to ClickHouse through the runtime and the reference executors,
// against the servers ./scripts/test.sh starts.
#include <gtest/gtest.h>
#include <spdlog/logger.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/clickhouse/insert.hpp"
#include "clickpipe/clickhouse/layout.hpp"
#include "clickpipe/clickhouse/quote.hpp"
#include "clickpipe/clickhouse/tab_separated.hpp"
#include "clickpipe/clickhouse/tables.hpp"
#include "clickpipe/clickhouse/transport.hpp"
#include "clickpipe/pg_to_clickhouse/executors.hpp"
#include "clickpipe/postgres/catalog.hpp"
#include "clickpipe/postgres/replication.hpp"
#include "clickpipe/postgres/snapshot.hpp"
#include "clickpipe/store/memory_store.hpp"
#include "clickpipe/testing/faults.hpp"
#include "clickpipe/testing/helpers.hpp"
#include "e2e.hpp"

namespace clickpipe {
namespace {

using namespace std::chrono_literals;

using test::config;

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

bool rows_converge(postgres::Connection& pg, const pg_to_clickhouse::Config& c,
                   const std::string& t, std::chrono::seconds timeout = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (source_rows(pg, t) == destination_rows(c, t)) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

// A second pipe over a table of its own (CDC only, its pulls counted): the positive event the
// paused-pipe check waits for instead of a sleep. Once it has applied a row written after the
// paused pipe's row, and pulled `pulls` times more, a pipe that was streaming would have moved
// that row too. Deleted at the end, slot and all.
class Witness {
 public:
  explicit Witness(const std::string& tag)
      : cfg_(config("witness_" + tag)),
        table_("witness_" + tag),
        pg_(postgres::Connection::open(cfg_.source)) {
    pg_.exec("CREATE TABLE " + table_ + " (id int8 PRIMARY KEY, v text)");
    Settings s;
    s.sync_interval = 200ms;
    pipe_ = std::make_unique<Pipe>(
        PipeConfig{cfg_.pipe_id, Mode::CdcOnly, {TableRef{"public", table_}}, s},
        testing::with_faults(pg_to_clickhouse::make_executors(cfg_), faults_),
        test::pipe_options(cfg_));
    pipe_->start();
  }
  ~Witness() { testing::drive_to(*pipe_, State::Terminated, 30s); }

  bool saw_a_later_write(std::uint32_t pulls = 2, std::chrono::seconds timeout = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    // Its slot exists once it has a confirmed position: a row written earlier would be missed.
    if (!testing::wait_until(
            *pipe_, [](const PipeStatus& st) { return st.cdc.confirmed.has_value(); }, timeout)) {
      return false;
    }
    const std::string id = std::to_string(++marker_);
    pg_.exec("INSERT INTO " + table_ + " VALUES ($1, 'marker')", {id});
    while (destination_rows(cfg_, table_).count(id) == 0) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(50ms);
    }
    const std::uint32_t seen = faults_->calls(testing::op::pull);
    while (faults_->calls(testing::op::pull) < seen + pulls) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }

 private:
  pg_to_clickhouse::Config cfg_;
  std::string table_;
  postgres::Connection pg_;
  std::shared_ptr<testing::FaultPlan> faults_ = std::make_shared<testing::FaultPlan>();
  std::unique_ptr<Pipe> pipe_;
  int marker_ = 0;
};

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
  auto faults = std::make_shared<testing::FaultPlan>();  // counts the pipe's pulls
  const auto before = pg_to_clickhouse::counters();
  Pipe pipe(PipeConfig{id, Mode::InitialLoadAndCdc, {TableRef{"public", t}}, s},
            testing::with_faults(pg_to_clickhouse::make_executors(cfg), faults),
            test::pipe_options(cfg));
  pipe.start();
  Witness witness(std::to_string(::getpid()));
  ASSERT_TRUE(pipe.wait_for(State::Running, 60s)) << to_string(pipe.state());
  EXPECT_GE(pipe.status().snapshot.at(0).partitions_total, 2u);
  // Every partition, copied in parallel on its own connection, read the slot's exported snapshot:
  // none fell back to a fresh one (which CDC would quietly repair, hiding the fault).
  const auto loaded = pg_to_clickhouse::counters();
  EXPECT_EQ(loaded.partitions_in_exported_snapshot - before.partitions_in_exported_snapshot,
            pipe.status().snapshot.at(0).partitions_total);
  EXPECT_EQ(loaded.partitions_in_fresh_snapshot - before.partitions_in_fresh_snapshot, 0u);
  EXPECT_TRUE(rows_converge(pg, cfg, t)) << "after the initial load";

  // CDC: inserts, updates, a key change, deletes, an unchanged TOAST value.
  std::string big(6000, 'z');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7919) % 26);
  pg.exec("UPDATE " + t + " SET big = $1 WHERE id = 1", {big});
  pg.exec("UPDATE " + t + " SET v = 'changed, big untouched' WHERE id = 1");
  pg.exec("INSERT INTO " + t + " VALUES (30001, 'new', NULL)");
  pg.exec("UPDATE " + t + " SET id = 40002 WHERE id = 2");
  pg.exec("DELETE FROM " + t + " WHERE id BETWEEN 10 AND 20");
  EXPECT_TRUE(rows_converge(pg, cfg, t)) << "after CDC";
  {
    clickhouse::Client ch(cfg.destination);
    EXPECT_EQ(ch.query("SELECT length(big) FROM " + clickhouse::quote(t) +
                       " FINAL WHERE id = 1 AND _is_deleted = 0"),
              "6000\n")
        << "an unchanged TOAST value is kept, not blanked";
  }

  ASSERT_TRUE(testing::drive_to(pipe, State::Paused, 30s));
  const auto pulls = faults->calls(testing::op::pull);
  pg.exec("INSERT INTO " + t + " VALUES (30002, 'while paused', NULL)");
  ASSERT_TRUE(witness.saw_a_later_write()) << "a running pipe would have moved the row by now";
  EXPECT_EQ(faults->calls(testing::op::pull), pulls) << "a paused pipe pulls nothing";
  EXPECT_EQ(destination_rows(cfg, t).count("30002"), 0u) << "a paused pipe moves nothing";
  ASSERT_TRUE(pipe.resume());
  EXPECT_TRUE(rows_converge(pg, cfg, t)) << "after resume";

  ASSERT_TRUE(pipe.resync());
  ASSERT_TRUE(testing::wait_until(
      pipe,
      [](const PipeStatus& st) {
        return st.state == State::Running && st.history.back().trigger == Trigger::SwapDone;
      },
      60s));
  pg.exec("INSERT INTO " + t + " VALUES (30003, 'after resync', NULL)");
  EXPECT_TRUE(rows_converge(pg, cfg, t)) << "after resync";

  ASSERT_TRUE(testing::drive_to(pipe, State::Terminated, 30s));
  EXPECT_FALSE(postgres::slot_status(pg, pg_to_clickhouse::slot_name(id)).has_value())
      << "delete drops the slot";
}

// The initial load streams COPY text into ClickHouse, passing most values through untouched; the
// result must be exactly what decoding every value and encoding it again gives.
TEST(EndToEnd, StreamedCopyTextLandsExactlyLikeDecodedRows) {
  const pg_to_clickhouse::Config cfg = config("copytext");
  postgres::Connection pg = postgres::Connection::open(cfg.source);
  pg.exec("SET TimeZone = 'UTC'");
  const std::string t = "copytext_" + std::to_string(::getpid());
  pg.exec("CREATE TABLE " + t +
          " (id int8 PRIMARY KEY, i2 int2, d numeric(12,3), u numeric, f float8, f4 float4, "
          "tx text, b bool, dt date, ts timestamptz, tsn timestamp, id2 uuid, j jsonb, by bytea, "
          "arr int4[], sa text[], other interval)");
  pg.exec("INSERT INTO " + t + R"sql( VALUES
    (1, -32768, -123456789.123, 3.14159265358979323846, 'NaN', '-Infinity',
     E'tab\there\nnew \\ back \x0b vt \b bs \f ff ''q'' ü 日本', true, '1999-12-31',
     '2024-02-29 23:59:59.123456+00', '2024-01-01 00:00:00',
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k": [1, "x\ty"]}',
     E'\\x00ff0a5c09', '{1,NULL,-3}', E'{"a b",NULL,"it''s","x\\"y","t\tz"}', '1 day 02:03:04'),
    (2, NULL, NULL, NULL, 'Infinity', 1.5, '', false, NULL, '2024-01-01 00:00:00.5+00',
     NULL, NULL, NULL, NULL, NULL, '{}', NULL),
    (3, 7, 0.001, -0, -1.25e-300, 0, NULL, NULL, '2000-02-29', NULL,
     '1970-01-01 00:00:00.000001', NULL, 'null', '\x', '{}', '{""}', '-1 mons'))sql");
  const TableRef ref{"public", t};
  const TableDefinition def = postgres::read_definitions(pg, std::span(&ref, 1)).at(0);
  clickhouse::Client ch(cfg.destination);
  const auto streamed = clickhouse::layout_for(def, t + "_streamed", ch.version());
  const auto decoded = clickhouse::layout_for(def, t + "_decoded", ch.version());
  for (const auto& l : {streamed, decoded}) ch.query(clickhouse::create_table_sql(l, "default"));

  {
    postgres::CopyOut copy(pg, def, Partition{}, "");
    clickhouse::CopyTextEncoder encoder(streamed, 0);
    std::optional<std::string_view> line = copy.next();
    ch.insert_streamed(encoder.insert_sql("default"), [&](std::string& piece) {
      for (; line; line = copy.next()) encoder.add(*line, piece);
      return false;
    });
    EXPECT_TRUE(encoder.reconcile(ch).complete());
  }
  postgres::copy_partition(pg, def, Partition{}, "", [&](std::vector<Values>&& rows) {
    std::vector<clickhouse::Row> out;
    for (auto& v : rows) out.push_back(clickhouse::Row{std::move(v), 0, false});
    clickhouse::insert(ch, decoded, out);
  });
  const auto want = clickhouse::read_final(ch, decoded);
  ASSERT_EQ(want.size(), 3u);
  EXPECT_EQ(clickhouse::read_final(ch, streamed), want);
}

TEST(EndToEnd, AStreamedInsertThatFailsMidwayReportsTheSourceError) {
  const pg_to_clickhouse::Config cfg = config("midway");
  clickhouse::Client ch(cfg.destination);
  const TableDefinition def{
      TableRef{"public", "midway"}, {Column{"id", "int8", 20, -1, false, 0}}, {"id"}};
  const auto l = clickhouse::layout_for(def, "midway_" + std::to_string(::getpid()), ch.version());
  ch.query(clickhouse::create_table_sql(l, "default"));
  clickhouse::CopyTextEncoder encoder(l, 0);
  int pieces = 0;
  EXPECT_THROW(ch.insert_streamed(encoder.insert_sql("default"),
                                  [&](std::string& piece) {
                                    if (++pieces == 3) throw TransientError("source went away");
                                    encoder.add(std::to_string(pieces), piece);
                                    return true;
                                  }),
               TransientError);
  EXPECT_EQ(ch.query("SELECT count() FROM " + clickhouse::quote(l.name)), "0\n")
      << "an aborted insert stores nothing";
  EXPECT_EQ(ch.query("SELECT 1"), "1\n") << "the client is usable afterwards";
}

// Fails the count-back (the query that reads uploaded keys) the next `failures` times it runs,
// after the rows it checks were inserted: a transient error (the server went away) or a fatal one
// (a server refusing the SQL, as 26.x did with ALIAS_REQUIRED).
struct CountBackFault {
  std::atomic<int> failures{0};
  std::atomic<int> fired{0};
  bool fatal = false;

  class Transport final : public clickhouse::Transport {
   public:
    Transport(std::unique_ptr<clickhouse::Transport> inner, CountBackFault& f)
        : inner_(std::move(inner)), f_(f) {}
    std::string query(std::string_view sql) override { return inner_->query(sql); }
    std::string query(std::string_view sql, const clickhouse::ExternalTable& table) override {
      if (f_.failures.fetch_sub(1) > 0) {
        ++f_.fired;
        if (f_.fatal) throw clickhouse::ClickHouseFatalError("injected: ALIAS_REQUIRED", 206);
        throw clickhouse::ClickHouseTransientError("injected: connection reset", 0);
      }
      return inner_->query(sql, table);
    }
    void insert(std::string_view sql, std::span<const clickhouse::Setting> settings,
                const clickhouse::Producer& produce) override {
      inner_->insert(sql, settings, produce);
    }
    std::string describe() const override { return inner_->describe(); }

   private:
    std::unique_ptr<clickhouse::Transport> inner_;
    CountBackFault& f_;
  };

  void install(pg_to_clickhouse::Config& c) {
    c.destination.wrap = [this](std::unique_ptr<clickhouse::Transport> t) {
      return std::make_unique<Transport>(std::move(t), *this);
    };
  }
};

struct CountBackPipe {
  std::string id, t;
  pg_to_clickhouse::Config cfg;
  CountBackFault fault;
  postgres::Connection pg;
  std::unique_ptr<Pipe> pipe;

  explicit CountBackPipe(const std::string& name)
      : id(name + "_" + std::to_string(::getpid())),
        t(id),
        cfg(config(id)),
        pg(postgres::Connection::open(cfg.source)) {
    fault.install(cfg);
    pg.exec("CREATE TABLE " + t + " (id int8 PRIMARY KEY, v text)");
    pg.exec("INSERT INTO " + t + " SELECT g, 'row ' || g FROM generate_series(1, 100) g");
    Settings s;
    s.sync_interval = 100ms;
    testing::fast_retries(s, 20ms, 200ms);
    pipe = test::start_pipe(cfg, t, s);
  }
  ~CountBackPipe() { testing::drive_to(*pipe, State::Terminated, 30s); }
  bool ever_failed() const {
    for (const auto& h : pipe->status().history) {
      if (h.to == State::Failed) return true;
    }
    return false;
  }
};

// A count-back that fails transiently after its batch was inserted: the batch stays unconfirmed,
// CDC restarts from the confirmed position, the batch is inserted and counted again, and the
// pipe never fails.
TEST(EndToEnd, ATransientCountBackFailureIsRetriedWithTheBatchReapplied) {
  CountBackPipe p("cbtransient");
  ASSERT_TRUE(p.pipe->wait_for(State::Running, 60s));
  p.fault.failures = 1;
  p.pg.exec("INSERT INTO " + p.t + " VALUES (1001, 'cdc')");
  p.pg.exec("UPDATE " + p.t + " SET v = 'changed' WHERE id = 7");
  EXPECT_TRUE(rows_converge(p.pg, p.cfg, p.t));
  EXPECT_EQ(p.fault.fired, 1) << "the fault was hit";
  EXPECT_FALSE(p.ever_failed());
  EXPECT_EQ(p.pipe->state(), State::Running);
}

// The bug this pins: a count-back the server refused (ALIAS_REQUIRED on 26.x) left the pipe
// Failed with its batch inserted, and nothing said which query or what happens to the batch. Now
// the error names the query, the batch's position is not confirmed, and `retry` applies it again:
// shown by emptying the destination table while the pipe is Failed.
TEST(EndToEnd, Regression_ARefusedCountBackFailsNamingTheQueryAndRetryReappliesTheBatch) {
  CountBackPipe p("cbfatal");
  ASSERT_TRUE(p.pipe->wait_for(State::Running, 60s));
  p.fault.fatal = true;
  p.fault.failures = 1;
  const std::string before =
      std::string(p.pg.exec("SELECT pg_current_wal_insert_lsn()::text").value(0, 0));
  p.pg.exec("INSERT INTO " + p.t + " VALUES (1001, 'cdc')");
  ASSERT_TRUE(p.pipe->wait_for(State::Failed, 30s)) << to_string(p.pipe->state());
  EXPECT_EQ(p.fault.fired, 1);
  const PipeStatus st = p.pipe->status();
  ASSERT_TRUE(st.last_error.has_value());
  EXPECT_NE(st.last_error->message.find("counting back the rows just written to " + p.t),
            std::string::npos)
      << st.last_error->message;
  EXPECT_NE(st.last_error->message.find("Query: SELECT countIf("), std::string::npos)
      << st.last_error->message;
  EXPECT_NE(st.last_error->message.find("written again on retry"), std::string::npos);
  EXPECT_TRUE(*parse_lsn(p.pg.exec("SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                                   "WHERE slot_name = $1",
                                   {pg_to_clickhouse::slot_name(p.id)})
                             .value(0, 0)) <= *parse_lsn(before))
      << "the batch was not confirmed to the source";
  EXPECT_TRUE(st.cdc.confirmed <= *parse_lsn(before)) << "nor saved as applied";

  clickhouse::Client ch(p.cfg.destination);
  ch.query("TRUNCATE TABLE " + clickhouse::quote(p.t));
  ASSERT_TRUE(p.pipe->retry());
  ASSERT_TRUE(p.pipe->wait_for(State::Running, 30s));
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (destination_rows(p.cfg, p.t).count("1001") == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(destination_rows(p.cfg, p.t), (std::map<std::string, std::string>{{"1001", "cdc"}}))
      << "the unconfirmed batch was applied again, and only it";
}

}  // namespace
}  // namespace clickpipe
