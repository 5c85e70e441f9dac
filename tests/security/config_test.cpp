// Hostile configuration files, no server needed: every wrong type, number out of range (negative,
// huge, fractional, past 24 h), unknown key at any level, a URL carrying a secret and a typo'd
// sslmode is refused by `clickpipe::cli::parse_config` with InvalidField naming the field, and no
// message repeats the canary password. Plus the 24 h cap of every duration in Settings.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../../tools/cli/config.hpp"
#include "../expect.hpp"
#include "clickpipe/error.hpp"
#include "clickpipe/json.hpp"
#include "clickpipe/postgres/connection.hpp"
#include "clickpipe/settings.hpp"

namespace clickpipe {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::string kCanary = "CANARY-cfg-9b2f71";

// A valid config for a remote source and destination, the passwords set to the canary.
json valid() {
  json j = json::parse(R"({
    "id": "sec_cfg", "store": "/nonexistent/clickpipe-store", "tables": ["public.t"],
    "source": {"host": "db.example.com", "port": 5432, "dbname": "app", "user": "repl"},
    "destination": {"url": "https://ch.example.com:8443", "user": "ingest"}
  })");
  j["source"]["password"] = kCanary;
  j["destination"]["password"] = kCanary;
  return j;
}

class HostileConfig : public ::testing::Test {
 protected:
  // libpq's variables would change what effective_sslmode sees.
  void SetUp() override {
    for (const char* v : {"PGSSLMODE", "PGHOST", "PGHOSTADDR", "PGSSLROOTCERT"}) ::unsetenv(v);
  }
};

TEST_F(HostileConfig, TheValidBaseParsesWithSafeDefaults) {
  const cli::CliConfig c = cli::parse_config(valid());
  EXPECT_EQ(c.pipes.at(0).executors.source.password, kCanary);
  EXPECT_EQ(c.pipes.at(0).executors.source.port, "5432");
  EXPECT_EQ(c.pipes.at(0).executors.source.sslmode, "");
  EXPECT_EQ(postgres::effective_sslmode(c.pipes.at(0).executors.source), "require")
      << "a remote source without sslmode gets TLS";
  EXPECT_EQ(c.pipes.at(0).executors.source.connect_timeout, 10s);
  EXPECT_TRUE(c.pipes.at(0).executors.destination.verify_peer);
  EXPECT_TRUE(c.pipes.at(0).executors.destination.ca_file.empty());
}

TEST_F(HostileConfig, TlsAndTimeoutsAreSettable) {
  json j = valid();
  j["source"]["sslmode"] = "verify-full";
  j["source"]["ca_file"] = "/etc/ssl/pg-ca.pem";
  j["source"]["connect_timeout_s"] = 7;
  j["source"]["port"] = "6543";
  j["destination"]["ca_file"] = "/etc/ssl/ch-ca.pem";
  j["destination"]["verify_peer"] = false;
  j["destination"]["connect_timeout_ms"] = 2500;
  j["destination"]["timeout_ms"] = 86'400'000;
  j["destination"]["reconcile"] = false;
  j["settings"] = {{"sync_interval_ms", 86'400'000},
                   {"cdc_retry", {{"max_attempts", 4294967295u}, {"max_backoff_ms", 86'400'000}}}};
  const cli::CliConfig c = cli::parse_config(j);
  EXPECT_EQ(c.pipes.at(0).executors.source.sslmode, "verify-full");
  EXPECT_EQ(c.pipes.at(0).executors.source.ca_file, "/etc/ssl/pg-ca.pem");
  EXPECT_EQ(c.pipes.at(0).executors.source.connect_timeout, 7s);
  EXPECT_EQ(c.pipes.at(0).executors.source.port, "6543");
  EXPECT_EQ(c.pipes.at(0).executors.destination.ca_file, "/etc/ssl/ch-ca.pem");
  EXPECT_FALSE(c.pipes.at(0).executors.destination.verify_peer);
  EXPECT_EQ(c.pipes.at(0).executors.destination.connect_timeout, 2500ms);
  EXPECT_EQ(c.pipes.at(0).executors.destination.timeout, 86'400'000ms);
  EXPECT_FALSE(c.pipes.at(0).executors.reconcile);
  EXPECT_EQ(c.pipes.at(0).pipe.settings.sync_interval, 86'400'000ms) << "24 h exactly is allowed";
  EXPECT_EQ(c.pipes.at(0).pipe.settings.cdc_retry.max_attempts, 4294967295u);
}

struct Hostile {
  std::string what;
  std::function<void(json&)> change;
  std::string field;  // what InvalidField::field() must say
};

// Sets j at a path of keys, creating objects on the way.
std::function<void(json&)> set(std::vector<std::string> path, json value) {
  return [path = std::move(path), value = std::move(value)](json& j) {
    json* at = &j;
    for (const auto& k : path) at = &(*at)[k];
    *at = value;
  };
}

std::function<void(json&)> drop(std::string parent, std::string key) {
  return [parent = std::move(parent), key = std::move(key)](json& j) {
    (parent.empty() ? j : j[parent]).erase(key);
  };
}

const json kHuge = json::parse("1e30");
const json kBeyondUint64 = json::parse("99999999999999999999999");  // parsed as a float
const json kUint64Max = json::parse("18446744073709551615");
const json kInt64Max = json::parse("9223372036854775807");

std::vector<Hostile> hostile_configs() {
  std::vector<Hostile> v = {
      // The document and its top level.
      {"root is a list", [](json& j) { j = json::array(); }, "(config)"},
      {"unknown top-level key", set({"bogus"}, 1), "bogus"},
      {"id a number", set({"id"}, 5), "id"},
      {"mode a boolean", set({"mode"}, true), "mode"},
      {"mode unknown", set({"mode"}, "everything"), "mode"},
      {"store a list", set({"store"}, json::array()), "store"},
      {"store empty", set({"store"}, ""), "store"},
      {"tables a string", set({"tables"}, "public.t"), "tables"},
      {"tables empty", set({"tables"}, json::array()), "tables"},
      {"a table a number", set({"tables"}, json::array({5})), "tables[0]"},
      {"a table without a name", set({"tables"}, json::array({"public."})), "tables[0]"},
      // source
      {"source a string", set({"source"}, "db"), "source"},
      {"source missing", drop("", "source"), "source"},
      {"source: unknown key", set({"source", "hostname"}, "x"), "source.hostname"},
      {"source: ssl_mode typo", set({"source", "ssl_mode"}, "verify-full"), "source.ssl_mode"},
      {"source.host a number", set({"source", "host"}, 5), "source.host"},
      {"source.host empty", set({"source", "host"}, ""), "source.host"},
      {"source.host missing", drop("source", "host"), "source.host"},
      {"source.port a word", set({"source", "port"}, "abc"), "source.port"},
      {"source.port a boolean", set({"source", "port"}, true), "source.port"},
      {"source.port 0", set({"source", "port"}, 0), "source.port"},
      {"source.port \"0\"", set({"source", "port"}, "0"), "source.port"},
      {"source.port 65536", set({"source", "port"}, 65536), "source.port"},
      {"source.port \"99999\"", set({"source", "port"}, "99999"), "source.port"},
      {"source.port negative", set({"source", "port"}, -1), "source.port"},
      {"source.port fractional", set({"source", "port"}, 5432.5), "source.port"},
      {"source.port 1e30", set({"source", "port"}, kHuge), "source.port"},
      {"source.port past uint64", set({"source", "port"}, kBeyondUint64), "source.port"},
      {"source.dbname null", set({"source", "dbname"}, nullptr), "source.dbname"},
      {"source.user an object", set({"source", "user"}, json::object()), "source.user"},
      {"source.password a number", set({"source", "password"}, 123), "source.password"},
      {"source.password and password_env", set({"source", "password_env"}, "PG_PASSWORD"),
       "source.password"},
      {"source.password_env a number",
       [](json& j) {
         j["source"].erase("password");
         j["source"]["password_env"] = 1;
       },
       "source.password_env"},
      {"source.password_env holding the password itself",
       [](json& j) {
         j["source"].erase("password");
         j["source"]["password_env"] = kCanary;
       },
       "source.password_env"},
      {"source.sslmode a number", set({"source", "sslmode"}, 1), "source.sslmode"},
      {"source.sslmode misspelt", set({"source", "sslmode"}, "verify_full"), "source.sslmode"},
      {"source.sslmode prefer off loopback", set({"source", "sslmode"}, "prefer"),
       "source.sslmode"},
      {"source.sslmode allow off loopback", set({"source", "sslmode"}, "allow"), "source.sslmode"},
      {"source.ca_file a boolean", set({"source", "ca_file"}, false), "source.ca_file"},
      {"source.connect_timeout_s a string", set({"source", "connect_timeout_s"}, "10"),
       "source.connect_timeout_s"},
      {"source.connect_timeout_s 0", set({"source", "connect_timeout_s"}, 0),
       "source.connect_timeout_s"},
      {"source.connect_timeout_s negative", set({"source", "connect_timeout_s"}, -5),
       "source.connect_timeout_s"},
      {"source.connect_timeout_s past 24 h", set({"source", "connect_timeout_s"}, 86401),
       "source.connect_timeout_s"},
      {"source.connect_timeout_s fractional", set({"source", "connect_timeout_s"}, 2.5),
       "source.connect_timeout_s"},
      {"source.connect_timeout_s uint64 max", set({"source", "connect_timeout_s"}, kUint64Max),
       "source.connect_timeout_s"},
      // destination
      {"destination a list", set({"destination"}, json::array()), "destination"},
      {"destination: unknown key", set({"destination", "verifypeer"}, false),
       "destination.verifypeer"},
      {"destination: nested unknown key", set({"destination", "tls", "ca"}, "x"),
       "destination.tls"},
      {"destination.url a number", set({"destination", "url"}, 1), "destination.url"},
      {"destination.url empty", set({"destination", "url"}, ""), "destination.url"},
      {"destination.url with user:password@",
       set({"destination", "url"}, "https://ingest:" + kCanary + "@ch.example.com:8443"),
       "destination.url"},
      {"destination.url with user@", set({"destination", "url"}, "http://" + kCanary + "@ch:8123"),
       "destination.url"},
      {"destination.url with a query string",
       set({"destination", "url"}, "https://ch.example.com:8443/?password=" + kCanary),
       "destination.url"},
      {"destination.user a number", set({"destination", "user"}, 1), "destination.user"},
      {"destination.password a list", set({"destination", "password"}, json::array({kCanary})),
       "destination.password"},
      {"destination.password_env unset",
       [](json& j) {
         j["destination"].erase("password");
         j["destination"]["password_env"] = "CLICKPIPE_SURELY_UNSET_VARIABLE";
       },
       "destination.password_env"},
      {"destination.database a number", set({"destination", "database"}, 1),
       "destination.database"},
      {"destination.chdb_library a number", set({"destination", "chdb_library"}, 1),
       "destination.chdb_library"},
      {"destination.reconcile a string", set({"destination", "reconcile"}, "yes"),
       "destination.reconcile"},
      {"destination.ca_file a number", set({"destination", "ca_file"}, 1), "destination.ca_file"},
      {"destination.verify_peer a string", set({"destination", "verify_peer"}, "false"),
       "destination.verify_peer"},
      {"destination.verify_peer a number", set({"destination", "verify_peer"}, 0),
       "destination.verify_peer"},
      {"destination.connect_timeout_ms a string", set({"destination", "connect_timeout_ms"}, "1"),
       "destination.connect_timeout_ms"},
      {"destination.connect_timeout_ms 0", set({"destination", "connect_timeout_ms"}, 0),
       "destination.connect_timeout_ms"},
      {"destination.connect_timeout_ms negative", set({"destination", "connect_timeout_ms"}, -1),
       "destination.connect_timeout_ms"},
      {"destination.connect_timeout_ms past 24 h",
       set({"destination", "connect_timeout_ms"}, 86'400'001), "destination.connect_timeout_ms"},
      {"destination.timeout_ms a boolean", set({"destination", "timeout_ms"}, true),
       "destination.timeout_ms"},
      {"destination.timeout_ms 1e30", set({"destination", "timeout_ms"}, kHuge),
       "destination.timeout_ms"},
      {"destination.timeout_ms fractional", set({"destination", "timeout_ms"}, 0.5),
       "destination.timeout_ms"},
      {"destination.timeout_ms int64 max", set({"destination", "timeout_ms"}, kInt64Max),
       "destination.timeout_ms"},
      // settings
      {"settings a list", set({"settings"}, json::array()), "settings"},
      {"settings: unknown key (the C++ name)", set({"settings", "sync_interval"}, 1000),
       "settings.sync_interval"},
      {"settings.sync_interval_ms a string", set({"settings", "sync_interval_ms"}, "60000"),
       "settings.sync_interval_ms"},
      {"settings.sync_interval_ms past 24 h", set({"settings", "sync_interval_ms"}, 86'400'001),
       "settings.sync_interval_ms"},
      {"settings.sync_interval_ms negative", set({"settings", "sync_interval_ms"}, -1),
       "settings.sync_interval_ms"},
      {"settings.sync_interval_ms 1e30", set({"settings", "sync_interval_ms"}, kHuge),
       "settings.sync_interval_ms"},
      {"settings.sync_interval_ms fractional", set({"settings", "sync_interval_ms"}, 1.5),
       "settings.sync_interval_ms"},
      {"settings.sync_interval_ms uint64 max", set({"settings", "sync_interval_ms"}, kUint64Max),
       "settings.sync_interval_ms"},
      {"settings.sync_interval_ms 0", set({"settings", "sync_interval_ms"}, 0),
       "settings.sync_interval"},
      {"settings.pull_batch_size a string", set({"settings", "pull_batch_size"}, "x"),
       "settings.pull_batch_size"},
      {"settings.pull_batch_size negative", set({"settings", "pull_batch_size"}, -1),
       "settings.pull_batch_size"},
      {"settings.pull_batch_size past int64", set({"settings", "pull_batch_size"}, kUint64Max),
       "settings.pull_batch_size"},
      {"settings.pull_batch_size past uint64", set({"settings", "pull_batch_size"}, kBeyondUint64),
       "settings.pull_batch_size"},
      {"settings.partitions_in_parallel 0", set({"settings", "partitions_in_parallel"}, 0),
       "settings.partitions_in_parallel"},
      {"settings.cdc_retry a number", set({"settings", "cdc_retry"}, 5), "settings.cdc_retry"},
      {"settings.cdc_retry: unknown key", set({"settings", "cdc_retry", "max_atempts"}, 3),
       "settings.cdc_retry.max_atempts"},
      {"settings.cdc_retry.max_attempts past uint32",
       set({"settings", "cdc_retry", "max_attempts"}, 4294967296u),
       "settings.cdc_retry.max_attempts"},
      {"settings.cdc_retry.max_attempts negative",
       set({"settings", "cdc_retry", "max_attempts"}, -1), "settings.cdc_retry.max_attempts"},
      {"settings.cdc_retry.max_attempts fractional",
       set({"settings", "cdc_retry", "max_attempts"}, 1.5), "settings.cdc_retry.max_attempts"},
      {"settings.cdc_retry.initial_backoff_ms past 24 h",
       set({"settings", "cdc_retry", "initial_backoff_ms"}, 86'400'001),
       "settings.cdc_retry.initial_backoff_ms"},
      {"settings.setup_retry.max_backoff_ms int64 max",
       set({"settings", "setup_retry", "max_backoff_ms"}, kInt64Max),
       "settings.setup_retry.max_backoff_ms"},
      {"settings.provisioning_retry.max_backoff_ms 1e30",
       set({"settings", "provisioning_retry", "max_backoff_ms"}, kHuge),
       "settings.provisioning_retry.max_backoff_ms"},
      {"settings.snapshot_partition_retry.initial_backoff_ms negative",
       set({"settings", "snapshot_partition_retry", "initial_backoff_ms"}, -5),
       "settings.snapshot_partition_retry.initial_backoff_ms"},
      {"settings.setup_retry.multiplier a string",
       set({"settings", "setup_retry", "multiplier"}, "2"), "settings.setup_retry.multiplier"},
      {"settings.setup_retry.jitter above 1", set({"settings", "setup_retry", "jitter"}, 1.5),
       "settings.setup_retry.jitter"},
  };
  return v;
}

TEST_F(HostileConfig, EveryHostileDocumentIsRefusedByNameWithoutTheSecret) {
  ASSERT_EQ(::getenv("CLICKPIPE_SURELY_UNSET_VARIABLE"), nullptr);
  for (const Hostile& h : hostile_configs()) {
    json j = valid();
    h.change(j);
    const auto e = test::expect_throws<InvalidField>([&] { cli::parse_config(j); }, h.what);
    if (!e) continue;
    EXPECT_EQ(e->field(), h.field) << h.what << ": " << e->what();
    EXPECT_EQ(std::string(e->what()).find(kCanary), std::string::npos)
        << h.what << ": " << e->what();
    EXPECT_EQ(e->field().find(kCanary), std::string::npos) << h.what;
  }
}

TEST_F(HostileConfig, APasswordFromTheEnvironmentIsReadAndNeverRepeated) {
  ::setenv("CLICKPIPE_CONFIG_TEST_PW", kCanary.c_str(), 1);
  json j = valid();
  j["source"].erase("password");
  j["source"]["password_env"] = "CLICKPIPE_CONFIG_TEST_PW";
  EXPECT_EQ(cli::parse_config(j).pipes.at(0).executors.source.password, kCanary);
  j["source"]["port"] = -1;  // a later error: the password is already read
  const auto e = test::expect_throws<InvalidField>([&] { cli::parse_config(j); }, "bad port");
  EXPECT_EQ(test::message(e).find(kCanary), std::string::npos) << test::message(e);
  ::unsetenv("CLICKPIPE_CONFIG_TEST_PW");
}

// The C++ API has the same caps as the JSON: no duration past 24 h.
TEST(SettingsCap, EveryDurationIsAtMost24Hours) {
  const auto past = kMaxSettingDuration + 1ms;
  EXPECT_EQ(kMaxSettingDuration, 24h);
  Settings ok;
  ok.sync_interval = kMaxSettingDuration;
  ok.cdc_retry.initial_backoff = kMaxSettingDuration;
  ok.cdc_retry.max_backoff = kMaxSettingDuration;
  EXPECT_NO_THROW(ok.validate());

  struct Case {
    std::function<void(Settings&)> change;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[&](Settings& s) { s.sync_interval = past; }, "settings.sync_interval"},
      {[&](Settings& s) { s.sync_interval = std::chrono::milliseconds::max(); },
       "settings.sync_interval"},
      {[&](Settings& s) { s.provisioning_retry.max_backoff = past; },
       "settings.provisioning_retry.max_backoff"},
      {[&](Settings& s) { s.setup_retry.max_backoff = 25h; }, "settings.setup_retry.max_backoff"},
      {[&](Settings& s) {
         s.snapshot_partition_retry.initial_backoff = past;
         s.snapshot_partition_retry.max_backoff = past;
       },
       "settings.snapshot_partition_retry.initial_backoff"},
      {[&](Settings& s) { s.cdc_retry.max_backoff = std::chrono::milliseconds::max(); },
       "settings.cdc_retry.max_backoff"},
  };
  for (const Case& c : cases) {
    Settings s;
    c.change(s);
    const auto e = test::expect_throws<InvalidField>([&] { s.validate(); }, c.field);
    if (e) {
      EXPECT_EQ(e->field(), c.field) << e->what();
    }
  }
}

// What the store and update_settings read goes through the same parser.
TEST(SettingsCap, JsonSettingsPastTheCapAreRefused) {
  const auto e = test::expect_throws<InvalidField>(
      [] {
        (void)json{{"cdc_retry", {{"max_backoff_ms", 86'400'001}}}}.get<Settings>();
      },
      "max_backoff_ms past 24 h");
  if (e) {
    EXPECT_EQ(e->field(), "settings.cdc_retry.max_backoff_ms");
  }
  const Settings back = json(Settings{}).get<Settings>();
  EXPECT_EQ(back, Settings{}) << "the defaults still round-trip";
}

}  // namespace
}  // namespace clickpipe
