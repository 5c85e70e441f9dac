// The config's `pipes` form (issue 15): several pipes sharing a store and servers, each field named
// by its path when wrong, and pipes that would write one ClickHouse table refused.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "../../tools/cli/config.hpp"
#include "../expect.hpp"
#include "clickpipe/error.hpp"

namespace clickpipe {
namespace {

using nlohmann::json;

json two_pipes() {
  return json::parse(R"({
    "store": "/nonexistent/store",
    "source": {"host": "127.0.0.1", "port": 5432, "dbname": "app", "user": "repl"},
    "destination": {"url": "http://127.0.0.1:8123"},
    "pipes": [
      {"id": "orders", "tables": ["public.orders"], "settings": {"pull_batch_size": 500}},
      {"id": "users", "mode": "cdc_only", "tables": ["users"],
       "destination": {"url": "http://127.0.0.1:8123", "database": "other"}}
    ]
  })");
}

std::string field_of(const json& j) {
  try {
    cli::parse_config(j);
  } catch (const InvalidField& e) {
    return e.field();
  }
  return "(accepted)";
}

TEST(PipesConfig, SeveralPipesShareTheStoreAndTheServersUnlessTheyNameTheirOwn) {
  const cli::CliConfig c = cli::parse_config(two_pipes());
  EXPECT_EQ(c.store, "/nonexistent/store");
  ASSERT_EQ(c.pipes.size(), 2u);
  EXPECT_EQ(c.pipes[0].pipe.id, "orders");
  EXPECT_EQ(c.pipes[0].pipe.settings.pull_batch_size, 500u);
  EXPECT_EQ(c.pipes[0].executors.pipe_id, "orders");
  EXPECT_EQ(c.pipes[0].executors.destination.database, "default");
  EXPECT_EQ(c.pipes[1].pipe.mode, Mode::CdcOnly);
  EXPECT_EQ(c.pipes[1].pipe.tables.at(0), (TableRef{"public", "users"}));
  EXPECT_EQ(c.pipes[1].executors.destination.database, "other");
  EXPECT_EQ(c.pipes[1].executors.source.dbname, "app") << "the shared source";
}

// Issue 16: a store shared by workers, named by URL or as an object; a password never in the URL.
TEST(PipesConfig, APostgresStoreIsNamedByUrlOrObjectAndNeverCarriesAPasswordInTheUrl) {
  json j = two_pipes();
  j["store"] = "postgresql://clickpipe@db.internal:5432/meta";
  cli::CliConfig c = cli::parse_config(j);
  ASSERT_TRUE(c.pg_store.has_value());
  EXPECT_EQ(c.pg_store->connection.conninfo, "postgresql://clickpipe@db.internal:5432/meta");
  EXPECT_EQ(c.pg_store->schema, "clickpipe");
  EXPECT_EQ(c.pg_store->lease, std::chrono::milliseconds(10000));

  ::setenv("PIPES_CONFIG_TEST_STORE_PW", "s3cret-store", 1);
  j["store"] = json::parse(R"({"url": "postgres://clickpipe@db/meta", "schema": "cp_workers",
                               "lease_ms": 3000, "password_env": "PIPES_CONFIG_TEST_STORE_PW"})");
  c = cli::parse_config(j);
  ASSERT_TRUE(c.pg_store.has_value());
  EXPECT_EQ(c.pg_store->schema, "cp_workers");
  EXPECT_EQ(c.pg_store->lease, std::chrono::milliseconds(3000));
  EXPECT_EQ(c.pg_store->connection.password, "s3cret-store");
  EXPECT_EQ(c.store, "postgres://clickpipe@db/meta");

  j["store"] = "/a/directory";
  EXPECT_FALSE(cli::parse_config(j).pg_store.has_value());

  for (const char* url : {"postgresql://clickpipe:pw@db/meta", "postgres://:pw@db/meta",
                          "postgresql://db/meta?sslmode=require&password=pw@",
                          "postgresql://db/meta?%70assword=pw@"}) {
    j["store"] = url;
    try {
      cli::parse_config(j);
      ADD_FAILURE() << url << " accepted";
    } catch (const InvalidField& e) {
      EXPECT_EQ(e.field(), "store");
      EXPECT_EQ(std::string(e.what()).find("pw@"), std::string::npos) << e.what();
    }
  }
  const std::pair<const char*, const char*> bad[] = {
      {R"({"url": "postgres://db/meta", "schema": "Bad-Name"})", "store.schema"},
      {R"({"url": "postgres://db/meta", "lease_ms": 5})", "store.lease_ms"},
      {R"({"url": "postgres://db/meta", "password": "x"})", "store.password"},
      {R"({"url": "/not/a/url"})", "store.url"},
      {R"({"url": "postgres://db/meta", "password_env": "PIPES_CONFIG_TEST_UNSET"})",
       "store.password_env"},
  };
  for (const auto& [store, field] : bad) {
    j["store"] = json::parse(store);
    EXPECT_EQ(field_of(j), field) << store;
  }
}

TEST(PipesConfig, TheSinglePipeFormStillReads) {
  const cli::CliConfig c = cli::parse_config(json::parse(R"({
    "id": "one", "store": "/s", "tables": ["t"],
    "source": {"host": "127.0.0.1", "dbname": "app", "user": "repl"},
    "destination": {"url": "http://127.0.0.1:8123"}})"));
  ASSERT_EQ(c.pipes.size(), 1u);
  EXPECT_EQ(c.pipes[0].pipe.id, "one");
}

TEST(PipesConfig, AWrongFieldIsNamedByItsPathInTheList) {
  const struct {
    std::function<void(json&)> change;
    const char* field;
  } cases[] = {
      {[](json& j) { j["pipes"][1]["tabels"] = json::array(); }, "pipes[1].tabels"},
      {[](json& j) { j["pipes"][1]["id"] = "Users-1"; }, "pipes[1].id"},
      {[](json& j) { j["pipes"][0]["settings"]["pull_batch_size"] = 0; },
       "pipes[0].settings.pull_batch_size"},
      {[](json& j) { j["pipes"][1]["mode"] = "sometimes"; }, "pipes[1].mode"},
      {[](json& j) { j["pipes"][1]["destination"]["url"] = "ftp://x"; },
       "pipes[1].destination.url"},
      {[](json& j) { j["pipes"][1]["tables"] = json::array(); }, "pipes[1].tables"},
      {[](json& j) { j["pipes"] = json::array(); }, "pipes"},
      {[](json& j) { j["id"] = "both"; }, "id"},
      {[](json& j) { j.erase("source"); }, "source"},
      {[](json& j) { j["pipes"][1]["id"] = "orders"; }, "pipes[1].id"},
  };
  for (const auto& c : cases) {
    json j = two_pipes();
    c.change(j);
    EXPECT_EQ(field_of(j), c.field) << j.dump();
  }
}

TEST(PipesConfig, TwoPipesThatWouldWriteOneClickHouseTableAreRefused) {
  json j = two_pipes();
  j["pipes"][1].erase("destination");  // now both write database default
  j["pipes"][1]["tables"] = {"public.orders"};
  const auto e = test::expect_throws<InvalidField>([&] { cli::parse_config(j); }, "shared table");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field(), "pipes[1].tables");
  EXPECT_NE(std::string(e->what()).find("'orders' and 'users'"), std::string::npos) << e->what();

  j["pipes"][1]["tables"] = {"public.orders_old"};  // a name a resync would take
  EXPECT_EQ(field_of(j), "pipes[1].tables[0]");
  j["pipes"][1]["tables"] = {"a.b"};
  j["pipes"][0]["tables"] = {"public.a_b"};  // both land in ClickHouse table a_b
  EXPECT_EQ(field_of(j), "pipes[1].tables");
  j["pipes"][1]["tables"] = {"public.users"};
  EXPECT_EQ(field_of(j), "(accepted)");
}

}  // namespace
}  // namespace clickpipe
