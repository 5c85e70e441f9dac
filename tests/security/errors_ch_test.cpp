// What ClickHouse's errors leave in clickpipe's, against the server ./scripts/test.sh starts
// (18.16 over HTTP; the embedded 26 too where CLICKPIPE_CH_URL names it): a wrong password is
// named by user, never shown; a row ClickHouse cannot parse keeps its code but not its values; an
// answer over max_response_bytes is refused. CLICKPIPE_CH_* must be set: without a server these
// tests fail, they never skip.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "../clickhouse/ch_fixtures.hpp"
#include "../expect.hpp"
#include "../servers.hpp"
#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/clickhouse/quote.hpp"

namespace clickpipe::clickhouse {
namespace {

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

TEST(SecretsInErrors, AWrongPasswordNamesTheUserNotThePassword) {
  ClientSettings wrong = test::http_clickhouse_settings();  // only HTTP has passwords
  wrong.password = "CANARY-wrong-password";
  const auto e = test::expect_throws<ClickHouseFatalError>([&] { Client(wrong).query("SELECT 1"); },
                                                           "a wrong password");
  ASSERT_TRUE(e);
  EXPECT_TRUE(is_authentication_code(e->code())) << e->code();
  EXPECT_TRUE(contains(e->what(), "authentication failed for user " + wrong.user)) << e->what();
  EXPECT_FALSE(contains(e->what(), "CANARY")) << e->what();
}

TEST(SecretsInErrors, ARowTheServerCannotParseKeepsItsCodeButNotItsValues) {
  Client c(test::clickhouse_settings());
  const std::string t = chtest::unique("errors_canary");
  c.query("CREATE TABLE " + quote(t) + " (id Int64, v Int32) ENGINE = Memory");
  const auto e = test::expect_throws<ClickHouseFatalError>(
      [&] { c.insert("INSERT INTO " + quote(t) + " (id, v)", "1\tCANARY-row-value\n"); },
      "an unparsable row");
  c.query("DROP TABLE " + quote(t));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), 27);  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  EXPECT_TRUE(contains(e->what(), "INSERT")) << e->what();
  EXPECT_TRUE(contains(e->what(), "Code: 27")) << e->what();
  EXPECT_FALSE(contains(e->what(), "CANARY")) << e->what();
  EXPECT_LE(std::string_view(e->what()).size(), 600u) << e->what();

  // A value in the statement itself, which servers repeat in their errors.
  const auto lit = test::expect_throws<ClickHouseFatalError>(
      [&] { c.query("SELECT toInt32('CANARY-literal')"); }, "an unparsable literal");
  ASSERT_TRUE(lit);
  EXPECT_EQ(lit->code(), 6);  // CANNOT_PARSE_TEXT
  EXPECT_TRUE(contains(lit->what(), "SELECT")) << lit->what();
  EXPECT_FALSE(contains(lit->what(), "CANARY")) << lit->what();
}

TEST(Limits, AnAnswerOverMaxResponseBytesIsRefusedNamingTheLimit) {
  ClientSettings s = test::clickhouse_settings();
  s.max_response_bytes = 64;
  Client c(s);
  EXPECT_EQ(c.query("SELECT 1"), "1\n") << "an answer under the limit";
  const auto e = test::expect_throws<ClickHouseFatalError>(
      [&] { c.query("SELECT number FROM system.numbers LIMIT 1000"); }, "about 3.9 KB");
  ASSERT_TRUE(e);
  EXPECT_TRUE(contains(e->what(), "max_response_bytes (64 bytes)")) << e->what();
  EXPECT_EQ(c.query("SELECT 2"), "2\n") << "the client is usable afterwards";
}

}  // namespace
}  // namespace clickpipe::clickhouse
