// What errors may carry, without a server: destination URLs never show user info or a query, a
// server's error text keeps its code and first clause but no rows and no statement, bodies are
// read only so far, the runtime stores at most kMaxErrorBytes of any error, and a snapshot starts
// no more threads than there are partitions to copy.
#include <gtest/gtest.h>
#include <spdlog/logger.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../clickhouse/ch_fixtures.hpp"
#include "../crash/checks.hpp"
#include "../expect.hpp"
#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/runtime/pipe.hpp"
#include "clickpipe/status.hpp"
#include "clickpipe/store/memory_store.hpp"
#include "clickpipe/testing/helpers.hpp"
#include "clickpipe/testing/manual_clock.hpp"
#include "clickpipe/testing/memory_executors.hpp"
#include "clickpipe/utf8.hpp"

namespace clickpipe {
namespace {

using namespace std::chrono_literals;
using clickhouse::ClientSettings;
using clickhouse::error_summary;
using clickhouse::chtest::FakeServer;
using clickhouse::chtest::http;

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// The check the assertions below rely on, on the cases that tell a strict one from a loose one.
static_assert(valid_utf8("a\xC3\xA9\xE2\x80\xA6\xF0\x9F\x90\x98"));
static_assert(!valid_utf8("\xC0\xAF"));          // overlong
static_assert(!valid_utf8("\xED\xA0\x80"));      // a surrogate
static_assert(!valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
static_assert(!valid_utf8("\xE2\x80"));          // cut short

// ---- destination URLs ----

TEST(SecretsInErrors, DescribeNeverShowsUserInfoOrAQuery) {
  ClientSettings s;
  s.user = "reader";
  s.password = "CANARY-password";
  s.url = "https://admin:CANARY-in-url@ch.example:8443/base?password=CANARY-query#CANARY-frag";
  EXPECT_EQ(s.describe(), "https://ch.example:8443/base as reader (database default)");
  // A password with an unescaped '@', '/', '?' or '#' of its own: everything up to the last '@'
  // goes.
  s.url = "http://admin:CANARY/x?y#z@ch.example:8123";
  EXPECT_EQ(s.describe(), "http://ch.example:8123 as reader (database default)");
  s.url = "chdb:///var/lib/ch?CANARY";
  EXPECT_EQ(s.describe(), "chdb:///var/lib/ch (database default)");
  EXPECT_FALSE(contains(s.describe(), "CANARY"));
}

TEST(SecretsInErrors, AUrlWithUserInfoOrAQueryIsRefusedWithoutRepeatingIt) {
  const char* refused[] = {
      "http://admin:CANARY-pw@127.0.0.1:8123",  // user and password
      "http://CANARY-user@127.0.0.1:8123",      // a user alone (or a token)
      "https://127.0.0.1:8443/?password=CANARY-pw",
      "http://127.0.0.1:8123/#CANARY-frag",
      "ftp://CANARY-host/",
      "CANARY-no-scheme:8123",
      "http://",
      "http:///path-CANARY",
  };
  for (const char* url : refused) {
    ClientSettings s;
    s.url = url;
    const auto e = test::expect_throws<InvalidField>([&] { s.validate(); }, url);
    ASSERT_TRUE(e) << url;
    EXPECT_EQ(e->field(), "destination.url") << url;
    EXPECT_FALSE(contains(e->what(), "CANARY")) << e->what();
    // Making a client checks the same: nothing is sent to such a URL.
    const auto c = test::expect_throws<InvalidField>([&] { clickhouse::Client{s}; }, url);
    ASSERT_TRUE(c) << url;
    EXPECT_FALSE(contains(c->what(), "CANARY")) << c->what();
  }
  for (const char* url : {"http://127.0.0.1:8123", "https://ch.example:8443/base", "chdb:///tmp/x",
                          "chdb://relative/dir"}) {
    ClientSettings s;
    s.url = url;
    EXPECT_NO_THROW(s.validate()) << url;
  }
  ClientSettings zero;
  zero.max_response_bytes = 0;
  const auto e = test::expect_throws<InvalidField>([&] { zero.validate(); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->field(), "destination.max_response_bytes");
}

// ---- what a message keeps of a server's error ----

struct Seen {
  const char* what;
  std::string body;
  std::string sql;
  std::string summary;  // exactly
};

TEST(SecretsInErrors, ServerErrorsKeepCodeAndFirstClauseNotRowsOrTheStatement) {
  const std::vector<Seen> cases = {
      // ClickHouse 18.16 over HTTP, an insert it could not parse (as captured from the server).
      {"18.16 parse error",
       "Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected \\n before: "
       "CANARY-row\\n: (at row 1)\n\nRow 1:\nColumn 0,   name: id, type: Int64, parsed text: "
       "\"1\"\nColumn 1,   name: v,  type: Int32, ERROR: text \"CANARY-row<LINE FEED>\" is not "
       "like Int32\n\n, e.what() = DB::Exception\n",
       "INSERT INTO t (id, v) FORMAT TabSeparated", "Code: 27. Cannot parse input"},
      {"18.16 bad literal",
       "Code: 6, e.displayText() = DB::Exception: Cannot parse string 'CANARY-lit' as Int32: "
       "syntax error at begin of string. Note: there are toInt32OrZero and toInt32OrNull "
       "functions, which returns zero/NULL instead of throwing exception., e.what() = "
       "DB::Exception\n",
       "SELECT toInt32('CANARY-lit')", "Code: 6. Cannot parse string '\xE2\x80\xA6' as Int32"},
      {"18.16 missing table",
       "Code: 60, e.displayText() = DB::Exception: Table default.gone doesn't exist., e.what() = "
       "DB::Exception\n",
       "SELECT 1 FROM gone", "Code: 60. Table default.gone doesn't exist"},
      // ClickHouse 26 (the texts libchdb 26.7 gives, with the HTTP server's version suffix).
      {"26 parse error",
       "Code: 27. DB::Exception: Cannot parse input: expected '\\n' before: 'CANARY-row\\n': (at "
       "row 1)\n: \nRow 1:\nColumn 0,   name: id, type: Int64, parsed text: \"1\"\nColumn 1,   "
       "name: v,  type: Int32, ERROR: text \"CANARY-row<LINE FEED>\" is not like Int32\n\n: While "
       "executing ParallelParsingBlockInputFormat. (CANNOT_PARSE_INPUT_ASSERTION_FAILED) (version "
       "26.7.3.1)\n",
       "INSERT INTO t (id, v) FORMAT TabSeparated",
       "Code: 27. Cannot parse input (CANNOT_PARSE_INPUT_ASSERTION_FAILED)"},
      {"26 query echoed",
       "Code: 60. DB::Exception: Unknown table expression identifier 'CANARY_t' in scope SELECT * "
       "FROM CANARY_t WHERE v = 'CANARY-v'. (UNKNOWN_TABLE) (version 26.7.3.1)",
       "SELECT * FROM CANARY_t WHERE v = 'CANARY-v'",
       "Code: 60. Unknown table expression identifier '\xE2\x80\xA6' (UNKNOWN_TABLE)"},
      {"26 literal in VALUES",
       "Code: 6. DB::Exception: Cannot parse string 'CANARY-val' as Int32: syntax error at begin "
       "of string. Note: ...: while executing 'FUNCTION if(isNull(-dummy-0) : 3, "
       "_CAST(-dummy-0, 'Int32') :: 4) Int32 : 1': While executing ValuesBlockInputFormat. "
       "(CANNOT_PARSE_TEXT)",
       "INSERT INTO t (id, v) VALUES (1, 'CANARY-val')",
       "Code: 6. Cannot parse string '\xE2\x80\xA6' as Int32 (CANNOT_PARSE_TEXT)"},
      {"statement repeated in the first clause",
       "Code: 47. DB::Exception: Missing columns for INSERT INTO t_CANARY (a) FORMAT "
       "TabSeparated. (UNKNOWN_IDENTIFIER)",
       "INSERT INTO t_CANARY (a) FORMAT TabSeparated",
       "Code: 47. Missing columns for (UNKNOWN_IDENTIFIER)"},
      {"a proxy's page", "Service Unavailable\r\n<p>CANARY-detail</p>", "SELECT 1",
       "Service Unavailable"},
  };
  for (const Seen& c : cases) {
    const std::string got = error_summary(c.body, c.sql);
    EXPECT_EQ(got, c.summary) << c.what;
    EXPECT_FALSE(contains(got, "CANARY")) << c.what << ": " << got;
  }
}

TEST(SecretsInErrors, SummariesAreShortValidUtf8AndCodesNeverOverflow) {
  const std::string huge = "Code: 1. DB::Exception: " + std::string(100000, 'x');
  EXPECT_LE(error_summary(huge).size(), clickhouse::kMaxServerErrorBytes);
  const std::string bytes = "\xff\xfe<html>\xc0\x80 bad \xed\xa0\x80 bytes";
  EXPECT_TRUE(valid_utf8(error_summary(bytes))) << error_summary(bytes);
  // std::stoi threw std::out_of_range on this: an unclassified exception from a server's text.
  EXPECT_EQ(clickhouse::exception_code("Code: 99999999999999999999. DB::Exception: x"), 0);
  EXPECT_EQ(clickhouse::exception_code("Code: 62, e.displayText() = DB::Exception: Syntax"), 62);
  EXPECT_EQ(clickhouse::exception_code("partial\nCode: 252. DB::Exception: Too many parts"), 252);
  EXPECT_EQ(clickhouse::statement_kind("  insert into t FORMAT TabSeparated"), "INSERT");
  EXPECT_EQ(clickhouse::statement_kind("(SELECT 1)"), "SELECT");
  EXPECT_EQ(clickhouse::statement_kind("CANARY SELECT"), "statement");
}

// ---- the same through a client, against a stand-in server ----

ClientSettings fake_settings(const FakeServer& fake) {
  ClientSettings s;
  s.url = fake.url();
  s.user = "reader";
  s.password = "CANARY-password";
  return s;
}

TEST(SecretsInErrors, AClientsErrorsNameTheStatementAndCodeButNoRowsOrPassword) {
  const std::string body18 =
      "Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected \\n before: "
      "CANARY-row\\n: (at row 1)\n\nRow 1:\nColumn 1,   name: v,  type: Int32, ERROR: text "
      "\"CANARY-row<LINE FEED>\" is not like Int32\n\n, e.what() = DB::Exception\n";
  const std::string body26 =
      "Code: 60. DB::Exception: Unknown table expression identifier 'CANARY_t' in scope SELECT * "
      "FROM CANARY_t. (UNKNOWN_TABLE) (version 26.7.3.1)\n";
  FakeServer fake({http(200, "18.16.1\n"), http(500, body18, "X-ClickHouse-Exception-Code: 27\r\n"),
                   http(404, body26, "X-ClickHouse-Exception-Code: 60\r\n"),
                   http(401,
                        "Code: 516. DB::Exception: reader: Authentication failed: password "
                        "is incorrect. (AUTHENTICATION_FAILED) (version 26.7.3.1)\n")});
  clickhouse::Client c(fake_settings(fake));
  const auto parse = test::expect_throws<clickhouse::ClickHouseFatalError>(
      [&] { c.insert("INSERT INTO t (id, v)", "1\tCANARY-row\n"); }, "an unparsable row");
  ASSERT_TRUE(parse);
  EXPECT_EQ(parse->code(), 27);
  const std::string p = parse->what();
  EXPECT_TRUE(contains(p, ": INSERT: HTTP 500: Code: 27. Cannot parse input")) << p;
  EXPECT_FALSE(contains(p, "CANARY")) << p;

  const auto missing = test::expect_throws<clickhouse::ClickHouseFatalError>(
      [&] { c.query("SELECT * FROM CANARY_t"); }, "an unknown table");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->code(), 60);
  EXPECT_TRUE(contains(missing->what(), ": SELECT: HTTP 404: Code: 60.")) << missing->what();
  EXPECT_FALSE(contains(missing->what(), "CANARY")) << missing->what();

  const auto login = test::expect_throws<clickhouse::ClickHouseFatalError>(
      [&] { c.query("SELECT 1"); }, "a refused login");
  ASSERT_TRUE(login);
  EXPECT_EQ(login->code(), 516);
  EXPECT_TRUE(contains(login->what(), "authentication failed for user reader")) << login->what();
  EXPECT_FALSE(contains(login->what(), "CANARY")) << login->what();
}

TEST(Limits, ResponseBodiesAreReadOnlySoFar) {
  // The client stops reading an overlong body; the stand-in's writes may then fail, which must
  // not kill the test process.
  std::signal(SIGPIPE, SIG_IGN);
  const std::string big_error = std::string(200 * 1024, 'x') + " 'CANARY-at-the-end'";
  FakeServer fake({http(200, std::string(1000, 'r')), http(500, big_error)});
  ClientSettings s = fake_settings(fake);
  s.max_response_bytes = 100;
  clickhouse::Client c(s);
  const auto over = test::expect_throws<clickhouse::ClickHouseFatalError>(
      [&] { c.query("SELECT big"); }, "an answer over max_response_bytes");
  ASSERT_TRUE(over);
  EXPECT_TRUE(contains(over->what(), "max_response_bytes (100 bytes)")) << over->what();
  // An error body is cut (the client does not wait for all of it) and so is its message.
  const auto error = test::expect_throws<clickhouse::ClickHouseTransientError>(
      [&] { c.query("SELECT 1"); }, "a huge 500");
  ASSERT_TRUE(error);
  EXPECT_LE(std::string_view(error->what()).size(), 600u);
  EXPECT_FALSE(contains(error->what(), "CANARY"));
}

// ---- the runtime keeps at most kMaxErrorBytes of any error ----

// About 1 MB: a name, then "é" (two bytes) over and over, so a cut at a fixed byte count falls
// inside a character half the time.
std::string megabyte(const std::string& head) {
  std::string s = head + " ";
  while (s.size() < (1u << 20)) s += "\xC3\xA9";
  return s;
}

class LoudProvisioner final : public Provisioner {
 public:
  void provision(const PipeInfo&, ExecContext&) override {
    if (calls_++ == 0) throw TransientError(megabyte("first: transient"));
    throw FatalError(megabyte("second: fatal"));
  }

 private:
  std::atomic<int> calls_{0};
};

TEST(Limits, TheRuntimeStoresAtMostKMaxErrorBytesOfAnError) {
  testing::MemoryWorld mem;
  const TableRef t{"public", "t"};
  mem.source->create_table(TableDefinition{
      t, {Column{"id", "int8", 20, -1, false, 0}, Column{"v", "text", 25, -1, true, 0}}, {"id"}});
  Executors ex = mem.executors("capped");
  ex.provisioner = std::make_shared<LoudProvisioner>();
  auto store = std::make_shared<MemoryStore>();
  auto listener = std::make_shared<testing::RecordingListener>();
  PipeOptions opts;
  opts.logger = std::make_shared<spdlog::logger>("test");  // no sinks
  opts.clock = std::make_shared<testing::ManualClock>(true);
  opts.store = store;
  opts.seed = 1;
  Settings settings;
  testing::fast_retries(settings, 1ms, 1ms, 0.0);
  Pipe p(PipeConfig{"capped", Mode::InitialLoadAndCdc, {t}, settings}, ex, opts);
  p.add_listener(listener);
  p.start();
  ASSERT_TRUE(p.wait_for(State::Failed, 10s));

  const auto retries = listener->retries();
  ASSERT_FALSE(retries.empty());
  const std::string& retried = retries.front().last_error;
  EXPECT_LE(retried.size(), kMaxErrorBytes);
  EXPECT_TRUE(retried.starts_with("first: transient")) << retried.substr(0, 40);
  EXPECT_TRUE(retried.ends_with("\xE2\x80\xA6")) << "marked as cut";
  EXPECT_TRUE(valid_utf8(retried)) << "cut inside a character";

  const PipeStatus s = p.status();
  ASSERT_TRUE(s.last_error);
  EXPECT_LE(s.last_error->message.size(), kMaxErrorBytes);
  EXPECT_TRUE(contains(s.last_error->message, "second: fatal"));
  EXPECT_TRUE(valid_utf8(s.last_error->message));
  const LoadResult saved = store->load_all();
  ASSERT_EQ(saved.records.size(), 1u);
  ASSERT_TRUE(saved.records[0].last_error);
  EXPECT_LE(saved.records[0].last_error->message.size(), kMaxErrorBytes);

  EXPECT_EQ(capped_error("short"), "short");
  EXPECT_EQ(capped_error(std::string(kMaxErrorBytes, 'a')).size(), kMaxErrorBytes);
}

// ---- a snapshot starts no more threads than it has partitions ----

std::size_t threads_now() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// Holds each partition a moment and notes how many threads the process has meanwhile, and how
// many copies ran at once.
class WatchingCopier final : public crash::ForwardingCopier {
 public:
  using ForwardingCopier::ForwardingCopier;
  std::uint64_t copy_partition(const TableDefinition& table, const Partition& partition,
                               TableTarget target, ExecContext& ctx) override {
    const int now = ++copying_;
    int seen = most_copying_.load();
    while (now > seen && !most_copying_.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(100ms);  // long enough for a runaway pool to show
    const std::size_t t = threads_now();
    std::size_t top = most_threads_.load();
    while (t > top && !most_threads_.compare_exchange_weak(top, t)) {
    }
    --copying_;
    return ForwardingCopier::copy_partition(table, partition, target, ctx);
  }

  std::size_t most_threads() const { return most_threads_.load(); }
  int most_copying() const { return most_copying_.load(); }

 private:
  std::atomic<int> copying_{0};
  std::atomic<int> most_copying_{0};
  std::atomic<std::size_t> most_threads_{0};
};

TEST(Limits, ASnapshotStartsNoMoreThreadsThanPartitions) {
  testing::MemoryWorld mem;
  const TableRef t{"public", "t"};
  mem.source->create_table(TableDefinition{
      t, {Column{"id", "int8", 20, -1, false, 0}, Column{"v", "text", 25, -1, true, 0}}, {"id"}});
  std::vector<Values> rows;
  for (int i = 0; i < 150; ++i) rows.push_back({Datum::of(std::to_string(i)), Datum::of("v")});
  mem.source->insert_many(t, std::move(rows));
  Executors ex = mem.executors("threads");
  auto copier = std::make_shared<WatchingCopier>(ex.snapshot);
  ex.snapshot = copier;
  PipeOptions opts;
  opts.logger = std::make_shared<spdlog::logger>("test");
  opts.seed = 1;
  Settings settings;
  settings.rows_per_partition = 50;  // three partitions
  settings.partitions_in_parallel = 256;
  settings.tables_in_parallel = 256;  // the settings allow 65,536 at once
  const std::size_t before = threads_now();
  Pipe p(PipeConfig{"threads", Mode::InitialLoadAndCdc, {t}, settings}, ex, opts);
  p.start();
  ASSERT_TRUE(p.wait_for(State::Running, 30s));
  // Three copying threads, the pipe's worker, and a few to spare for the runtime's own.
  EXPECT_LE(copier->most_threads(), before + 3 + 4);
  EXPECT_GE(copier->most_copying(), 2) << "the partitions still copy in parallel";
}

}  // namespace
}  // namespace clickpipe
