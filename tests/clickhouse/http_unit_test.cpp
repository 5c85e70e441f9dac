// The HTTP client against a local stand-in, without a server: what proxies and old servers
// answer is classified, and an exception inside a 200 is no success.
#include <gtest/gtest.h>

#include "../expect.hpp"
#include "ch_fixtures.hpp"
#include "clickpipe/clickhouse/client.hpp"

namespace clickpipe::clickhouse {
namespace {

using namespace chtest;

TEST(ClickHouse, ProxiesAndHttp200WithAnExceptionAreNotTakenAsSuccess) {
  FakeServer fake({http(503, "Service Unavailable"),
                   http(200, "1\nCode: 252, e.displayText() = DB::Exception: Too many parts"),
                   http(200, "partial", "X-ClickHouse-Exception-Code: 60\r\n"),
                   http(200, "fine\n")});
  ClientSettings st;
  st.url = fake.url();
  Client c(st);
  EXPECT_THROW(c.query("SELECT 1"), ClickHouseTransientError) << "a proxy's 503";
  const auto busy = test::expect_throws<ClickHouseTransientError>([&] { c.query("INSERT ..."); },
                                                                  "an exception inside a 200");
  ASSERT_TRUE(busy);
  EXPECT_EQ(busy->code(), 252) << "too many parts is worth retrying";
  EXPECT_THROW(c.query("SELECT 1"), ClickHouseFatalError) << "the exception header wins over 200";
  EXPECT_EQ(c.query("SELECT 1"), "fine\n");
}

// Seen on a loaded machine: ClickHouse 18.16 answered a count-back with a bare 400 when it read
// the request body too late; the kill tests' pipe then failed for good instead of retrying.
TEST(ClickHouse, Regression_AnEmpty400IsRetriedNotFatal) {
  FakeServer fake({http(400, ""), http(400, "Code: 62, e.displayText() = DB::Exception: Syntax")});
  ClientSettings st;
  st.url = fake.url();
  Client c(st);
  const auto empty =
      test::expect_throws<ClickHouseTransientError>([&] { c.query("SELECT 1"); }, "an empty 400");
  ASSERT_TRUE(empty);
  EXPECT_NE(test::message(empty).find("HTTP 400"), std::string::npos) << empty->what();
  EXPECT_THROW(c.query("SELEC 1"), ClickHouseFatalError) << "a 400 carrying an exception";
}

}  // namespace
}  // namespace clickpipe::clickhouse
