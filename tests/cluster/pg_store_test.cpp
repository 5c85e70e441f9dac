// PgStore against the test PostgreSQL: the StateStore contract (durable saves read back, newer
// formats refused, broken records named) and the lease protocol (a stale writer is fenced and
// changes nothing, claims never overlap, commands reach the owner).
#include <gtest/gtest.h>
#include <clickpipe/clickpipe.hpp>
#include <clickpipe/cluster/pg_store.hpp>
#include <clickpipe/store/file_store.hpp>

#include <atomic>
#include <set>
#include <thread>

#include "../expect.hpp"
#include "../servers.hpp"
#include "cluster.hpp"

using namespace std::chrono_literals;
using namespace clickpipe;
using cluster::PgStore;

namespace {

PipeRecord record(const std::string& id, std::optional<Lsn> confirmed = std::nullopt) {
  PipeRecord r;
  r.id = id;
  r.tables = {TableRef{"public", "t"}};
  r.confirmed = confirmed;
  return r;
}

class PgStoreTest : public ::testing::Test {
 protected:
  test::Schema schema;
  cluster::PgStoreOptions options(std::chrono::milliseconds lease = 10s) {
    cluster::PgStoreOptions o;
    o.connection = test::postgres_settings();
    o.schema = schema.name;
    o.lease = lease;
    return o;
  }
};

TEST_F(PgStoreTest, ASavedPipeReadsBackAsItWasSaved) {
  auto store = PgStore::open(options());
  store->join();
  PipeRecord r = record("orders", Lsn(0x1234));
  r.cdc_changes = 77;
  store->save(r);
  ASSERT_TRUE(store->holds("orders"));
  EXPECT_FALSE(store->holds("other"));
  auto loaded = PgStore::open(options())->load_all();  // another connection, another store
  ASSERT_EQ(loaded.records.size(), 1u);
  EXPECT_EQ(loaded.records[0], r);
  r.cdc_changes = 78;
  store->save(r);
  EXPECT_EQ(store->load_all().records.at(0).cdc_changes, 78u);
  store->remove("orders");
  EXPECT_FALSE(store->holds("orders"));
}

TEST_F(PgStoreTest, ASecondPipeOfTheSameIdIsRefusedAsAlreadyExisting) {
  auto a = PgStore::open(options());
  auto b = PgStore::open(options());
  a->join();
  b->join();
  a->save(record("orders"));
  EXPECT_STORE_ERROR(b->save(record("orders")), StoreErrorCode::AlreadyExists, "already exists");
}

TEST_F(PgStoreTest, AStoreThatHasNotJoinedReadsButNeverWrites) {
  auto store = PgStore::open(options());
  EXPECT_TRUE(store->load_all().records.empty());
  EXPECT_STORE_ERROR(store->save(record("orders")), StoreErrorCode::Refused, "has not joined");
  EXPECT_FALSE(store->holds("orders"));
}

TEST_F(PgStoreTest, ASchemaNewerThanThisBuildIsRefusedAndLeftAlone) {
  PgStore::open(options());
  schema.exec("UPDATE " + schema.table("meta") + " SET value = '99' WHERE key = 'schema_version'");
  EXPECT_STORE_ERROR(PgStore::open(options()), StoreErrorCode::Refused, "version 99");
  EXPECT_EQ(schema.query("SELECT value FROM " + schema.table("meta")), "99");
}

TEST_F(PgStoreTest, ARecordOfANewerFormatOrDamagedIsReportedByNameAndOthersStillLoad) {
  auto store = PgStore::open(options());
  store->join();
  store->save(record("good"));
  store->save(record("newer"));
  store->save(record("damaged"));
  const std::string text = encode_record(record("newer"), 1);
  std::string newer = text;
  const std::string key = "\"format_version\": " + std::to_string(PipeRecord::kFormatVersion);
  ASSERT_NE(newer.find(key), std::string::npos) << newer;
  newer.replace(newer.find(key), key.size(), "\"format_version\": 99");
  schema.exec("UPDATE " + schema.table("pipes") + " SET record = " + schema.literal(newer) +
              " WHERE id = 'newer'");
  schema.exec("UPDATE " + schema.table("pipes") +
              " SET record = left(record, 40) WHERE id = 'damaged'");
  const LoadResult loaded = store->load_all();
  ASSERT_EQ(loaded.records.size(), 1u);
  EXPECT_EQ(loaded.records[0].id, "good");
  ASSERT_EQ(loaded.broken.size(), 2u);
  EXPECT_EQ(loaded.broken[0].name, "damaged");
  EXPECT_EQ(loaded.broken[1].name, "newer");
  EXPECT_NE(loaded.broken[1].reason.find("format"), std::string::npos) << loaded.broken[1].reason;
}

TEST_F(PgStoreTest, BadOptionsAreRefusedNamingTheField) {
  auto o = options();
  o.schema = "Robert'); DROP";
  EXPECT_INVALID_FIELD(PgStore::open(o), "store.schema");
  o = options();
  o.lease = 10ms;
  EXPECT_INVALID_FIELD(PgStore::open(o), "store.lease_ms");
  for (const char* name :
       {"public", "pg_catalog", "a_name_that_is_fifty_seven_characters_long_and_too_long_x"}) {
    o = options();
    o.schema = name;
    EXPECT_INVALID_FIELD(PgStore::open(o), "store.schema");
  }
}

TEST_F(PgStoreTest, AWrongPasswordFailsWithoutSayingThePassword) {
  auto o = options();
  o.connection.password = "canary-pw-8f2c";
  try {
    PgStore::open(o);
    FAIL() << "opened with a wrong password";
  } catch (const StoreError& e) {
    EXPECT_EQ(std::string(e.what()).find("canary-pw-8f2c"), std::string::npos) << e.what();
  }
}

// The heart of fencing: a worker whose lease ran out (here its renewals stall, as in a pause)
// cannot save over the new owner, is told Fenced, and the new owner's record stays.
TEST_F(PgStoreTest, AWorkerWhoseLeaseRanOutIsFencedAndTheNewOwnersRecordStays) {
  std::atomic<bool> stall{false};
  auto ao = options(600ms);
  ao.hook = [&](std::string_view point) {
    while (point == "renewing" && stall) std::this_thread::sleep_for(10ms);
  };
  auto a = PgStore::open(ao);
  a->join();
  a->save(record("orders", Lsn(100)));
  a->check_writer("orders");  // owned and in lease: may write

  stall = true;
  auto b = PgStore::open(options(600ms));
  b->join();
  std::vector<cluster::Claim> claims;
  ASSERT_TRUE(test::poll_until(
      [&] {
        claims = b->claim(10);
        return !claims.empty();
      },
      5s))
      << "the lapsed lease was never taken over";
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].record, record("orders", Lsn(100)));
  b->save(record("orders", Lsn(200)));

  EXPECT_TRUE(a->lease_lost());
  EXPECT_STORE_ERROR(a->check_writer("orders"), StoreErrorCode::Fenced, "orders");
  EXPECT_STORE_ERROR(a->save(record("orders", Lsn(150))), StoreErrorCode::Fenced, "orders");
  EXPECT_STORE_ERROR(a->remove("orders"), StoreErrorCode::Fenced, "stale");
  EXPECT_EQ(b->load_all().records.at(0).confirmed, Lsn(200));
  EXPECT_EQ(a->take_fenced(), std::vector<std::string>{"orders"});
  stall = false;
}

// Even a writer that believes its lease still runs (its clock says so) is refused by the row:
// the token moved on.
TEST_F(PgStoreTest, ASaveWithAStaleTokenMatchesNoRowEvenWhileTheWriterThinksItOwns) {
  auto a = PgStore::open(options());
  a->join();
  a->save(record("orders", Lsn(100)));
  // Another worker takes the row by hand, as a claim would after the lease ran out.
  schema.exec("UPDATE " + schema.table("pipes") + " SET owner = NULL, token = token + 1000");
  auto b = PgStore::open(options());
  b->join();
  ASSERT_EQ(b->claim(5).size(), 1u);
  EXPECT_STORE_ERROR(a->save(record("orders", Lsn(150))), StoreErrorCode::Fenced, "stale");
  EXPECT_EQ(a->load_all().records.at(0).confirmed, Lsn(100));
}

// The database's own checks, with the writer's clock still saying yes: these pin the WHERE of
// the save, not check_writer.
TEST_F(PgStoreTest, ALeaseThatRanOutInTheDatabaseFencesASaveTheLocalClockStillAllows) {
  auto a = PgStore::open(options(60s));  // no renewal comes in between
  a->join();
  a->save(record("orders", Lsn(100)));
  schema.exec("UPDATE " + schema.table("workers") +
              " SET lease_until = clock_timestamp() - interval '1 second'");
  a->check_writer("orders");  // locally still fine
  EXPECT_STORE_ERROR(a->save(record("orders", Lsn(150))), StoreErrorCode::Fenced, "stale");
  EXPECT_EQ(a->load_all().records.at(0).confirmed, Lsn(100));
  // Nor may it insert a new pipe.
  EXPECT_STORE_ERROR(a->save(record("fresh")), StoreErrorCode::Fenced, "fresh");
  EXPECT_FALSE(a->holds("fresh"));
}

TEST_F(PgStoreTest, ATokenMovedOnUnderTheSameOwnerFencesSaveAndRemove) {
  auto a = PgStore::open(options());
  a->join();
  a->save(record("orders", Lsn(100)));
  a->save(record("users", Lsn(100)));
  schema.exec("UPDATE " + schema.table("pipes") + " SET token = token + 1000");
  EXPECT_STORE_ERROR(a->save(record("orders", Lsn(150))), StoreErrorCode::Fenced, "stale");
  EXPECT_STORE_ERROR(a->remove("users"), StoreErrorCode::Fenced, "stale");
  EXPECT_TRUE(a->holds("users"));
  EXPECT_EQ(a->load_all().records.at(0).confirmed, Lsn(100));
}

TEST_F(PgStoreTest, AReaderAttachesWithoutCreatingOrMigratingAnything) {
  EXPECT_STORE_ERROR(PgStore::attach(options()), StoreErrorCode::NotFound, schema.name);
  EXPECT_EQ(schema.query("SELECT count(*) FROM pg_namespace WHERE nspname = " +
                         schema.literal(schema.name)),
            "0");
  PgStore::open(options());
  auto reader = PgStore::attach(options());
  EXPECT_TRUE(reader->load_all().records.empty());
  schema.exec("UPDATE " + schema.table("meta") + " SET value = '7' WHERE key = 'schema_version'");
  EXPECT_STORE_ERROR(PgStore::attach(options()), StoreErrorCode::Refused, "version 7");
}

TEST_F(PgStoreTest, WhatTheStoreSaysThisWorkerHoldsIsWhatItBelieves) {
  auto a = PgStore::open(options());
  a->join();
  a->save(record("orders"));
  a->save(record("users"));
  // A release whose answer was lost, and a claim this worker never heard of, seen alike.
  schema.exec("UPDATE " + schema.table("pipes") + " SET owner = NULL WHERE id = 'users'");
  EXPECT_EQ(a->held().size(), 1u);
  EXPECT_EQ(a->owned(), std::vector<std::string>{"orders"});
}

TEST_F(PgStoreTest, WorkersClaimingAtOnceNeverTakeTheSamePipe) {
  {
    auto maker = PgStore::open(options());
    maker->join();
    for (int i = 0; i < 40; ++i) maker->save(record("p" + std::to_string(i)));
    maker->leave();  // releases all 40
  }
  std::vector<std::unique_ptr<PgStore>> workers;
  for (int i = 0; i < 4; ++i) {
    workers.push_back(PgStore::open(options()));
    workers.back()->join();
  }
  std::vector<std::vector<cluster::Claim>> got(4);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&, i] {
        for (int round = 0; round < 10; ++round) {
          for (auto& c : workers[i]->claim(3)) got[i].push_back(std::move(c));
        }
      });
    }
  }
  std::multiset<std::string> all;
  for (const auto& g : got) {
    for (const auto& c : g) all.insert(c.id);
  }
  EXPECT_EQ(all.size(), 40u);
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), 40u) << "a pipe taken twice";
}

TEST_F(PgStoreTest, ACommandReachesTheOwnerAndItsAnswerTheSender) {
  auto owner = PgStore::open(options());
  owner->join();
  owner->save(record("orders"));
  auto client = PgStore::open(options());  // not a worker: any host
  const auto seq = client->submit_command("orders", R"({"command":"pause"})");
  const auto cmds = owner->take_commands();
  ASSERT_EQ(cmds.size(), 1u);
  EXPECT_EQ(cmds[0].seq, seq);
  EXPECT_EQ(cmds[0].body, R"({"command":"pause"})");
  EXPECT_TRUE(owner->take_commands().empty()) << "a command taken twice";
  EXPECT_FALSE(client->command_answer(seq));
  owner->answer_command(seq, R"({"status":"accepted"})");
  EXPECT_EQ(client->command_answer(seq), R"({"status":"accepted"})");
  // A command given up by its sender before anyone took it never runs.
  const auto late = client->submit_command("orders", R"({"command":"resume"})");
  EXPECT_TRUE(client->withdraw_command(late, R"({"status":"unavailable"})"));
  EXPECT_TRUE(owner->take_commands().empty());
}

TEST_F(PgStoreTest, ANoticeWakesAListeningWorker) {
  auto a = PgStore::open(options());
  auto b = PgStore::open(options());
  EXPECT_FALSE(a->wait_for_notice(50ms));  // subscribes
  b->notify();
  EXPECT_TRUE(test::poll_until([&] { return a->wait_for_notice(200ms); }, 3s));
}

}  // namespace
