// Sessions on the test server (./scripts/test.sh; CLICKPIPE_PG_* must be set, these tests never
// skip): no password in any error, errors classified by SQLSTATE, and the settings every session
// pins whatever the server's defaults or a pooler leave.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "../expect.hpp"
#include "../print.hpp"
#include "clickpipe/postgres/catalog.hpp"
#include "clickpipe/postgres/snapshot.hpp"
#include "pg_fixtures.hpp"

namespace clickpipe::postgres {
namespace {

using namespace pgtest;

TEST(Postgres, APasswordNeverAppearsInErrors) {
  const std::string canary = "CANARY-7f3e-secret";
  for (int variant = 0; variant < 3; ++variant) {
    ConnectionSettings s = settings();
    s.password = canary;
    if (variant == 1) s.port = "1";             // nothing listens there
    if (variant == 2) s.dbname = "no_such_db";  // refused
    const std::string what = test::message(test::expect_throws<Error>(
        [&] { Connection::open(s); }, "variant " + std::to_string(variant)));
    EXPECT_EQ(what.find(canary), std::string::npos) << what;
    EXPECT_NE(what.find("host=127.0.0.1"), std::string::npos) << "names the server: " << what;
  }
  ConnectionSettings s = settings();
  s.password = canary;
  test::expect_throws<PgFatalError>([&] { Connection::open(s); },
                                    "a wrong password is fatal, not retried");
  EXPECT_EQ(settings().describe().find(settings().password), std::string::npos);
}

TEST(Postgres, SqlErrorsAreClassified) {
  Connection c = sql();
  EXPECT_THROW(c.exec("SELEC 1"), PgFatalError);
  const auto missing = test::expect_throws<PgFatalError>(
      [&] { c.exec("SELECT * FROM no_such_table_anywhere"); }, "a missing table");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->sqlstate(), "42P01");
  EXPECT_TRUE(is_transient_sqlstate("40001"));
  EXPECT_TRUE(is_transient_sqlstate("08006"));
  EXPECT_TRUE(is_transient_sqlstate("55006"));  // a slot held by a walsender going away
  EXPECT_FALSE(is_transient_sqlstate("23505"));
}

// The server ./scripts/test.sh starts differs from the defaults the way real servers do: a test
// of the pinned settings that ran against a UTC/ISO server would prove nothing.
void expect_hostile_server(Connection& c) {
  const char* friendly = std::getenv("CLICKPIPE_PG_FRIENDLY");
  if (friendly && std::string(friendly) == "1") return;
  // What the server's configuration says (this session's own values are pinned).
  Result r = c.exec(
      "SELECT name, setting FROM pg_file_settings WHERE applied AND name IN ('timezone', "
      "'datestyle', 'bytea_output', 'extra_float_digits') ORDER BY name");
  std::map<std::string, std::string> got;
  for (int i = 0; i < r.rows(); ++i) got[std::string(r.value(i, 0))] = r.value(i, 1);
  EXPECT_EQ(got["datestyle"], "SQL, DMY");
  EXPECT_EQ(got["timezone"], "Asia/Kolkata");
  EXPECT_EQ(got["bytea_output"], "escape");
  EXPECT_EQ(got["extra_float_digits"], "0");
  EXPECT_EQ(c.exec("SHOW TimeZone").value(0, 0), "UTC") << "and this session pins its own";
}

constexpr const char* kAwkwardRow =
    "(1, '2024-01-02 03:04:05.123456+00', '2024-02-29', '\\x00ff5c', 0.1::float8 + 0.2, "
    "'1 day 02:03:04', '{\"2024-01-02 03:04:05+00\"}')";
// The same row as every session of clickpipe prints it, whatever the server's defaults.
const std::vector<std::string> kPinnedText = {"1",
                                              "2024-01-02 03:04:05.123456+00",
                                              "2024-02-29",
                                              "\\x00ff5c",
                                              "0.30000000000000004",
                                              "1 day 02:03:04",
                                              "{\"2024-01-02 03:04:05+00\"}"};
constexpr const char* kAwkwardColumns =
    " (id int8 PRIMARY KEY, ts timestamptz, d date, b bytea, f float8, i interval, "
    "a timestamptz[])";

// The bug this pins: only the SQL sessions set TimeZone; the replication connection kept the
// server's settings, so CDC delivered timestamptz in +05:30 (and the destination dropped the
// offset), dates as 29/02/2024, bytea escaped and floats rounded.
TEST(Postgres, Regression_CdcValuesArriveInThePinnedSettingsNotTheServers) {
  Connection c = sql();
  expect_hostile_server(c);
  const std::string t = unique("pinned_cdc");
  c.exec("CREATE TABLE " + t + kAwkwardColumns);
  const std::string slot = unique("pinned_slot"), publication = unique("pinned_pub");
  const std::vector<TableRef> refs{{"public", t}};
  ensure_publication(c, publication, refs);
  Lsn start;
  {
    Connection repl = Connection::open(settings(), true);
    start = create_slot(repl, c, slot).info.consistent_point;
  }
  c.exec("INSERT INTO " + t + " VALUES " + kAwkwardRow);
  {
    LogicalStream s(settings(), slot, publication, start);
    const auto changes = drain(s, 1);
    ASSERT_EQ(changes.size(), 1u);
    ASSERT_EQ(changes[0].values.size(), kPinnedText.size());
    for (std::size_t i = 0; i < kPinnedText.size(); ++i) {
      EXPECT_EQ(changes[0].values[i].text, kPinnedText[i]) << "column " << i;
    }
  }
  drop_slot(c, slot);
  drop_publication(c, publication);
}

// The same for the initial load: COPY text follows the session's settings.
TEST(Postgres, Regression_SnapshotValuesArriveInThePinnedSettingsNotTheServers) {
  Connection c = sql();
  expect_hostile_server(c);
  const std::string t = unique("pinned_copy");
  c.exec("CREATE TABLE " + t + kAwkwardColumns);
  c.exec("INSERT INTO " + t + " VALUES " + kAwkwardRow);
  const TableRef ref{"public", t};
  const TableDefinition def = read_definitions(c, std::span(&ref, 1)).at(0);
  std::vector<Values> rows;
  copy_partition(c, def, Partition{}, "", [&](std::vector<Values>&& b) {
    for (auto& r : b) rows.push_back(std::move(r));
  });
  ASSERT_EQ(rows.size(), 1u);
  for (std::size_t i = 0; i < kPinnedText.size(); ++i) {
    EXPECT_EQ(rows[0][i].text, kPinnedText[i]) << "column " << i;
  }
}

// What a pooler that drops startup options leaves: a session in the server's settings. The pins
// are set in the session instead, on SQL and replication connections alike.
TEST(Postgres, SettingsDroppedOnTheWayArePinnedInTheSession) {
  for (const bool replication : {false, true}) {
    Connection c = Connection::open(settings(), replication);
    c.exec("SET TimeZone = 'Asia/Kolkata'");
    c.exec("SET DateStyle = 'SQL, DMY'");
    c.exec("SET bytea_output = 'escape'");
    ensure_pinned_settings(c);
    EXPECT_EQ(c.exec("SHOW TimeZone").value(0, 0), "UTC");
    EXPECT_EQ(c.exec("SHOW DateStyle").value(0, 0), "ISO, MDY");
    EXPECT_EQ(c.exec("SHOW bytea_output").value(0, 0), "hex");
  }
}

TEST(Postgres, OptionsOfAConnectionStringAreKeptBesideThePinnedOnes) {
  ConnectionSettings s = settings();
  s.conninfo = "options='-c application_name=from_conninfo -c statement_timeout=12345'";
  Connection c = Connection::open(s);
  EXPECT_EQ(c.exec("SHOW statement_timeout").value(0, 0), "12345ms");
  EXPECT_EQ(c.exec("SHOW TimeZone").value(0, 0), "UTC");
  EXPECT_EQ(c.exec("SHOW client_encoding").value(0, 0), "UTF8");
  ::setenv("PGOPTIONS", "-c lock_timeout=4321", 1);
  Connection env = Connection::open(s);
  ::unsetenv("PGOPTIONS");
  EXPECT_EQ(env.exec("SHOW lock_timeout").value(0, 0), "4321ms") << "PGOPTIONS kept";
  EXPECT_EQ(env.exec("SHOW statement_timeout").value(0, 0), "12345ms");
}

}  // namespace
}  // namespace clickpipe::postgres
