// The log of `clickpipe run`: JSON lines that always parse, text lines of a fixed shape, level
// filtering, the pipe named by a cloned logger, every transition of a real pipe (command-started
// ones too) and the last progress line of a table that finished.
#include "../../tools/cli/logging.hpp"
#include "capture_sink.hpp"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "clickpipe/clickpipe.hpp"
#include "clickpipe/error.hpp"
#include "clickpipe/runtime/pipe.hpp"
#include "clickpipe/testing/memory_executors.hpp"
#include "clickpipe/utf8.hpp"

namespace clickpipe::cli {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

using test::CaptureSink;

struct Capture {
  std::shared_ptr<CaptureSink> sink = std::make_shared<CaptureSink>();
  std::shared_ptr<spdlog::logger> logger;

  explicit Capture(LogFormat format, spdlog::level::level_enum level = spdlog::level::info)
      : logger(make_logger(LogOptions{level, format}, sink)) {}

  // Every line, each of which must be one JSON object.
  std::vector<json> records() {
    std::vector<json> out;
    for (const std::string& line : sink->lines()) {
      json j = json::parse(line, nullptr, false);
      EXPECT_TRUE(j.is_object()) << "not a JSON object: " << line;
      if (j.is_object()) out.push_back(std::move(j));
    }
    return out;
  }
  std::vector<json> events(const std::string& name) {
    std::vector<json> out;
    for (json& j : records()) {
      if (j.value("event", "") == name) out.push_back(std::move(j));
    }
    return out;
  }
};

const std::regex kTime(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");
const std::string kTimeText = R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)";

TEST(Logging, LevelsAndFormatsParseAndBadOnesNameTheOption) {
  EXPECT_EQ(parse_log_level("trace"), spdlog::level::trace);
  EXPECT_EQ(parse_log_level("debug"), spdlog::level::debug);
  EXPECT_EQ(parse_log_level("info"), spdlog::level::info);
  EXPECT_EQ(parse_log_level("warn"), spdlog::level::warn);
  EXPECT_EQ(parse_log_level("error"), spdlog::level::err);
  EXPECT_EQ(parse_log_level("off"), spdlog::level::off);
  EXPECT_EQ(parse_log_format("text"), LogFormat::Text);
  EXPECT_EQ(parse_log_format("json"), LogFormat::Json);
  try {
    parse_log_level("verbose");
    ADD_FAILURE() << "verbose accepted";
  } catch (const InvalidField& e) {
    EXPECT_EQ(e.field(), "--log-level");
  }
  try {
    parse_log_format("xml");
    ADD_FAILURE() << "xml accepted";
  } catch (const InvalidField& e) {
    EXPECT_EQ(e.field(), "--log-format");
  }
}

TEST(Logging, AJsonLineCarriesTimeLevelPipeStateEventMessageAndFields) {
  Capture c(LogFormat::Json);
  log_event(*c.logger, spdlog::level::info, "orders_to_ch", "batch", "applied 3 change(s)",
            {{"state", "Running"}, {"changes", 3}, {"lag_seconds", nullptr}, {"msg", "a field"}});
  const std::vector<json> r = c.records();
  ASSERT_EQ(r.size(), 1u);
  const json& j = r[0];
  EXPECT_TRUE(std::regex_match(j.at("time").get<std::string>(), kTime)) << j.dump();
  EXPECT_EQ(j.at("level"), "info");
  EXPECT_EQ(j.at("pipe"), "orders_to_ch");
  EXPECT_EQ(j.at("state"), "Running");
  EXPECT_EQ(j.at("event"), "batch");
  EXPECT_EQ(j.at("msg"), "applied 3 change(s)");
  EXPECT_EQ(j.at("changes"), 3);
  EXPECT_TRUE(j.at("lag_seconds").is_null());
  EXPECT_EQ(j.at("_msg"), "a field");  // a field never overwrites the line's own message
  // The line's own keys come first, in a fixed order.
  EXPECT_EQ(c.sink->text().rfind(R"({"time":")", 0), 0u);
}

TEST(Logging, QuotesNewlinesControlCharactersAndBadUtf8StayOneValidJsonLine) {
  const std::string nasty = "say \"hi\"\nsecond line\r\t\x01\x1b[31m \xff\xfe\xc3 end\\";
  Capture c(LogFormat::Json);
  log_event(*c.logger, spdlog::level::warn, "p1", "retry", nasty,
            {{"error", nasty}, {std::string("we\"ird\n") + "\xff", 1}});
  c.logger->clone("clickpipe:p1")->error("runtime: {}", nasty);
  c.logger->info(nasty);
  const std::string text = c.sink->text();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3) << text;
  EXPECT_TRUE(valid_utf8(text));
  const std::vector<json> r = c.records();
  ASSERT_EQ(r.size(), 3u);
  for (const json& j : r) {
    const std::string msg = j.at("msg").get<std::string>();
    EXPECT_EQ(msg.find("say \"hi\"\nsecond line\r\t\x01\x1b[31m "),
              msg.starts_with("runtime") ? 9u : 0u);
    EXPECT_NE(msg.find("\xEF\xBF\xBD"), std::string::npos);  // the bad bytes, replaced
    EXPECT_TRUE(msg.ends_with(" end\\"));
  }
  EXPECT_EQ(r[0].at("error").get<std::string>().substr(0, 8), "say \"hi\"");
  EXPECT_EQ(r[1].at("pipe"), "p1");
  EXPECT_EQ(r[1].at("level"), "error");
  EXPECT_FALSE(r[2].contains("pipe"));

  // Text lines stay one a record too.
  Capture t(LogFormat::Text);
  log_event(*t.logger, spdlog::level::info, "p1", "retry", nasty, {{"error", nasty}});
  t.logger->info(nasty);
  const std::vector<std::string> lines = t.sink->lines();
  ASSERT_EQ(lines.size(), 2u) << t.sink->text();
  EXPECT_NE(lines[0].find(R"(say "hi"\nsecond line\r\t\x01\x1b[31m)"), std::string::npos);
  EXPECT_TRUE(valid_utf8(t.sink->text()));
}

TEST(Logging, RecordsBelowTheLevelAreDropped) {
  Capture c(LogFormat::Json, spdlog::level::warn);
  log_event(*c.logger, spdlog::level::info, "p1", "batch", "dropped");
  log_event(*c.logger, spdlog::level::debug, "p1", "partition", "dropped");
  c.logger->info("dropped");
  c.logger->clone("clickpipe:p1")->info("dropped");  // a clone keeps the level
  log_event(*c.logger, spdlog::level::warn, "p1", "retry", "kept");
  c.logger->clone("clickpipe:p1")->error("kept");
  const std::vector<json> r = c.records();
  ASSERT_EQ(r.size(), 2u) << c.sink->text();
  EXPECT_EQ(r[0].at("level"), "warn");
  EXPECT_EQ(r[1].at("level"), "error");
  for (const json& j : r) EXPECT_EQ(j.at("msg"), "kept");

  Capture off(LogFormat::Text, spdlog::level::off);
  log_event(*off.logger, spdlog::level::err, "p1", "transition", "dropped");
  off.logger->critical("dropped");
  EXPECT_EQ(off.sink->text(), "");
}

TEST(Logging, ARuntimeMessageNamesThePipeOfItsClonedLogger) {
  Capture c(LogFormat::Json);
  c.logger->clone("clickpipe:orders_to_ch")->info("copied {} rows", 5);
  c.logger->info("process-wide");
  const std::vector<json> r = c.records();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].at("pipe"), "orders_to_ch");
  EXPECT_EQ(r[0].at("msg"), "copied 5 rows");
  EXPECT_FALSE(r[0].contains("event"));
  EXPECT_FALSE(r[1].contains("pipe"));

  Capture t(LogFormat::Text);
  t.logger->clone("clickpipe:orders_to_ch")->warn("copied {} rows", 5);
  t.logger->info("process-wide");
  const std::vector<std::string> lines = t.sink->lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(
      std::regex_match(lines[0], std::regex(kTimeText + " warn  orders_to_ch copied 5 rows")))
      << lines[0];
  EXPECT_TRUE(std::regex_match(lines[1], std::regex(kTimeText + " info  - process-wide")))
      << lines[1];
}

TEST(Logging, TextLinesAreTimeLevelPipeMessageAndFields) {
  Capture c(LogFormat::Text);
  LogListener l(c.logger);
  l.on_transition(
      {"orders_to_ch", Transition{State::Running, Trigger::Pause, State::Pausing}, {}, {}});
  l.on_transition({"orders_to_ch",
                   Transition{State::Snapshot, Trigger::FatalError, State::Failed},
                   {},
                   "table \"public.t\" is gone"});
  log_event(*c.logger, spdlog::level::info, "p1", "progress", "snapshot",
            {{"table", "public.t"}, {"rows", 5}, {"note", "two words"}, {"state", "Snapshot"}});
  const std::vector<std::string> lines = c.sink->lines();
  ASSERT_EQ(lines.size(), 3u) << c.sink->text();
  EXPECT_TRUE(std::regex_match(
      lines[0], std::regex(kTimeText + R"( info  orders_to_ch Running -\[pause\]-> Pausing)")))
      << lines[0];
  EXPECT_TRUE(std::regex_match(
      lines[1],
      std::regex(
          kTimeText +
          R"( error orders_to_ch Snapshot -\[fatal_error\]-> Failed error="table \\"public.t\\" is gone")")))
      << lines[1];
  EXPECT_TRUE(std::regex_match(
      lines[2],
      std::regex(kTimeText + R"( info  p1 snapshot note="two words" rows=5 table=public.t)")))
      << lines[2];
}

TEST(Logging, TheFileVariantWritesWholeLines) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    auto logger = make_logger(LogOptions{spdlog::level::info, LogFormat::Json}, f);
    log_event(*logger, spdlog::level::info, "p1", "started", "running");
    logger->clone("clickpipe:p1")->info("hello");
  }
  std::rewind(f);
  std::string text;
  char buf[256];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  std::fclose(f);
  std::istringstream in(text);
  int count = 0;
  for (std::string line; std::getline(in, line); ++count) {
    const json j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    EXPECT_EQ(j.at("pipe"), "p1");
  }
  EXPECT_EQ(count, 2);
}

TableDefinition orders_def() {
  return TableDefinition{
      TableRef{"public", "orders"},
      {Column{"id", "int8", 20, -1, false, 0}, Column{"v", "text", 25, -1, true, 0}},
      {"id"}};
}

Values order(int id) {
  return {Datum::of(std::to_string(id)), Datum::of("o" + std::to_string(id))};
}

// Polls until `done` holds; false after `timeout`.
template <typename F>
bool eventually(const F& done, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// The old CLI printed only External transitions reached on their own; a pause showed
// `Pausing -[cdc_stopped]-> Paused` without the `Running -[pause]-> Pausing` that began it.
TEST(LogListener, LogsEveryTransitionOfARealPipeCommandStartedOnesToo) {
  testing::MemoryWorld mem;
  const TableRef orders{"public", "orders"};
  mem.source->create_table(orders_def());
  std::vector<Values> rows;
  for (int i = 0; i < 120; ++i) rows.push_back(order(i));
  mem.source->insert_many(orders, std::move(rows));

  Capture c(LogFormat::Json);
  Settings s;
  s.sync_interval = 20ms;
  s.pull_batch_size = 100;
  s.rows_per_partition = 50;
  PipeOptions o;
  o.logger = c.logger->clone("clickpipe:p1");
  o.seed = 1;
  auto pipe = std::make_unique<Pipe>(PipeConfig{"p1", Mode::InitialLoadAndCdc, {orders}, s},
                                     mem.executors("p1"), o);
  pipe->add_listener(std::make_shared<LogListener>(c.logger));
  pipe->start();
  ASSERT_TRUE(pipe->wait_for(State::Running, 10s));
  mem.source->insert(orders, order(1000));
  ASSERT_TRUE(eventually([&] { return !c.events("batch").empty(); }));
  ASSERT_TRUE(pipe->pause().accepted());
  ASSERT_TRUE(pipe->wait_for(State::Paused, 10s));
  ASSERT_TRUE(pipe->resume().accepted());
  ASSERT_TRUE(pipe->wait_for(State::Running, 10s));
  pipe.reset();  // joins its threads: every hook has run

  std::vector<std::string> seen;
  for (const json& j : c.records()) {
    EXPECT_EQ(j.at("pipe"), "p1") << j.dump();  // runtime messages and events alike
    EXPECT_TRUE(std::regex_match(j.at("time").get<std::string>(), kTime));
    if (j.value("event", "") != "transition") continue;
    EXPECT_EQ(j.at("state"), j.at("to"));
    EXPECT_EQ(j.at("msg"),
              fmt::format("{} -[{}]-> {}", j.at("from").get<std::string>(),
                          j.at("trigger").get<std::string>(), j.at("to").get<std::string>()));
    seen.push_back(j.at("msg").get<std::string>());
  }
  const auto at = [&](const std::string& t) { return std::find(seen.begin(), seen.end(), t); };
  ASSERT_NE(at("Running -[pause]-> Pausing"), seen.end()) << json(seen).dump();
  ASSERT_NE(at("Pausing -[cdc_stopped]-> Paused"), seen.end()) << json(seen).dump();
  ASSERT_NE(at("Paused -[resume]-> Running"), seen.end()) << json(seen).dump();
  EXPECT_LT(at("Running -[pause]-> Pausing"), at("Pausing -[cdc_stopped]-> Paused"));
  EXPECT_LT(at("Pausing -[cdc_stopped]-> Paused"), at("Paused -[resume]-> Running"));
  EXPECT_EQ(seen.front(), "Provisioning -[provisioned]-> Setup");

  const json batch = c.events("batch").front();
  EXPECT_EQ(batch.at("level"), "info");
  EXPECT_GE(batch.at("changes").get<int>(), 1);
  for (const char* key : {"wal_bytes", "duration_ms", "end", "lag_bytes", "lag_seconds"})
    EXPECT_TRUE(batch.contains(key)) << key << " missing: " << batch.dump();
  // No row value reaches the log.
  EXPECT_EQ(c.sink->text().find("o1000"), std::string::npos);
}

TEST(LogListener, RetriesRejectionsAndBatchesCarryTheirFields) {
  Capture c(LogFormat::Json);
  LogListener l(c.logger);
  RetryStatus r{"cdc", 2, 5, std::string(5000, 'x') + "\xff",
                std::chrono::system_clock::now() + 1s};
  l.on_retry("p1", r);
  r.next_attempt_at.reset();
  r.max_attempts = 0;
  l.on_retry("p1", r);
  l.on_rejected("p1", Rejection{State::Paused, Trigger::Pause, RejectReason::NotAllowed});
  BatchSummary b;
  b.changes = 7;
  b.wal_bytes = 4096;
  b.duration = 35ms;
  b.end = Lsn{0x16B374D848};
  b.lag_bytes = 10;
  b.lag_seconds = 1.5;
  l.on_batch("p1", b);
  b.lag_seconds.reset();
  l.on_batch("p1", b);

  const std::vector<json> retry = c.events("retry");
  ASSERT_EQ(retry.size(), 2u);
  EXPECT_EQ(retry[0].at("level"), "warn");
  EXPECT_EQ(retry[0].at("operation"), "cdc");
  EXPECT_EQ(retry[0].at("attempt"), 2);
  EXPECT_EQ(retry[0].at("max_attempts"), 5);
  const std::string error = retry[0].at("error").get<std::string>();
  EXPECT_LE(error.size(), kMaxErrorBytes);
  EXPECT_TRUE(valid_utf8(error));
  const auto in_ms = retry[0].at("next_attempt_in_ms").get<std::int64_t>();
  EXPECT_GE(in_ms, 0);
  EXPECT_LE(in_ms, 1000);
  EXPECT_TRUE(retry[1].at("next_attempt_in_ms").is_null());
  EXPECT_EQ(retry[1].at("max_attempts"), 0);

  const std::vector<json> rejected = c.events("rejected");
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0].at("level"), "warn");
  EXPECT_EQ(rejected[0].at("state"), "Paused");
  EXPECT_EQ(rejected[0].at("command"), "pause");
  EXPECT_EQ(rejected[0].at("reason"), "not_allowed");
  EXPECT_NE(rejected[0].at("msg").get<std::string>().find("pause is not allowed in state Paused"),
            std::string::npos);

  const std::vector<json> batch = c.events("batch");
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch[0].at("level"), "info");
  EXPECT_EQ(batch[0].at("changes"), 7);
  EXPECT_EQ(batch[0].at("wal_bytes"), 4096);
  EXPECT_EQ(batch[0].at("duration_ms"), 35);
  EXPECT_EQ(batch[0].at("end"), to_string(b.end));
  EXPECT_EQ(batch[0].at("lag_bytes"), 10);
  EXPECT_EQ(batch[0].at("lag_seconds"), 1.5);
  EXPECT_TRUE(batch[1].at("lag_seconds").is_null());
}

const TableRef kOrders{"public", "orders"};
const TableRef kUsers{"public", "users"};

PipeStatus snapshot_status(State state, std::uint32_t orders_done, std::uint64_t orders_rows) {
  PipeStatus s;
  s.id = "p1";
  s.state = state;
  s.snapshot = {TableProgress{.table = kOrders,
                              .planned = true,
                              .partitions_total = 4,
                              .partitions_done = orders_done,
                              .rows_copied = orders_rows,
                              .estimated_rows = 400},
                TableProgress{.table = kUsers,
                              .planned = true,
                              .partitions_total = 2,
                              .partitions_done = 2,
                              .rows_copied = 80,
                              .estimated_rows = 80}};
  return s;
}

std::vector<json> of_table(const std::vector<json>& events, const TableRef& t) {
  std::vector<json> out;
  for (const json& j : events) {
    if (j.value("table", "") == t.qualified()) out.push_back(j);
  }
  return out;
}

// The old Progress printed every 2 s and only in Snapshot: a table whose last partitions finished
// after the last print stayed at 1/4 on screen.
TEST(ProgressLog, TheFinalLineOfAFinishedTableIsLoggedOnce) {
  Capture c(LogFormat::Json, spdlog::level::debug);
  ProgressLog p(c.logger);
  const TimePoint t0 = std::chrono::system_clock::now();
  p.log_if_due({snapshot_status(State::Snapshot, 0, 0)}, t0);  // first sight: sampled only
  EXPECT_EQ(c.sink->text(), "");
  p.log_if_due({snapshot_status(State::Snapshot, 1, 100)}, t0 + 2s);
  p.log_if_due({snapshot_status(State::Snapshot, 4, 400)}, t0 + 2500ms);  // not due: still logged
  p.log_if_due({snapshot_status(State::Running, 4, 400)}, t0 + 2700ms);
  p.log_if_due({snapshot_status(State::Running, 4, 400)}, t0 + 5s);
  p.log_if_due({snapshot_status(State::Running, 4, 400)}, t0 + 9s);

  const std::vector<json> progress = of_table(c.events("progress"), kOrders);
  ASSERT_EQ(progress.size(), 2u) << c.sink->text();
  EXPECT_EQ(progress[0].at("partitions_done"), 1);
  EXPECT_EQ(progress[0].at("rows"), 100);
  EXPECT_EQ(progress[0].at("estimated_rows"), 400);
  EXPECT_EQ(progress[0].at("rows_per_s"), 50.0);
  EXPECT_EQ(progress[0].at("eta_s"), 6.0);
  EXPECT_EQ(progress[0].at("done"), false);
  EXPECT_EQ(progress[0].at("state"), "Snapshot");
  EXPECT_EQ(progress[1].at("partitions_done"), 4);
  EXPECT_EQ(progress[1].at("partitions_total"), 4);
  EXPECT_EQ(progress[1].at("rows"), 400);
  EXPECT_EQ(progress[1].at("done"), true);
  EXPECT_TRUE(progress[1].at("eta_s").is_null());
  // A table done before this process saw it is not reported again.
  EXPECT_TRUE(of_table(c.events("progress"), kUsers).empty());

  const std::vector<json> partitions = of_table(c.events("partition"), kOrders);
  ASSERT_EQ(partitions.size(), 2u);
  EXPECT_EQ(partitions[0].at("level"), "debug");
  EXPECT_EQ(partitions[0].at("done"), 1);
  EXPECT_EQ(partitions[1].at("done"), 4);
  EXPECT_EQ(partitions[1].at("total"), 4);
}

TEST(ProgressLog, AFinishedTableIsLoggedEvenWhenThePipeHasMovedOnByTheNextSample) {
  Capture c(LogFormat::Json);
  ProgressLog p(c.logger);
  const TimePoint t0 = std::chrono::system_clock::now();
  p.log_if_due({snapshot_status(State::Snapshot, 1, 100)}, t0);
  p.log_if_due({snapshot_status(State::Running, 4, 400)}, t0 + 300ms);
  p.log_if_due({snapshot_status(State::Running, 4, 400)}, t0 + 3s);
  const std::vector<json> progress = of_table(c.events("progress"), kOrders);
  ASSERT_EQ(progress.size(), 1u) << c.sink->text();
  EXPECT_EQ(progress[0].at("done"), true);
  EXPECT_EQ(progress[0].at("partitions_done"), 4);
  EXPECT_EQ(progress[0].at("state"), "Running");
}

TEST(ProgressLog, APauseMidLoadLogsWhereTheTableStoppedThenItsEnd) {
  Capture c(LogFormat::Json);
  ProgressLog p(c.logger);
  const TimePoint t0 = std::chrono::system_clock::now();
  p.log_if_due({snapshot_status(State::Snapshot, 1, 100)}, t0);
  p.log_if_due({snapshot_status(State::Pausing, 2, 200)}, t0 + 100ms);
  p.log_if_due({snapshot_status(State::Paused, 2, 200)}, t0 + 3s);
  p.log_if_due({snapshot_status(State::Snapshot, 2, 200)}, t0 + 4s);
  p.log_if_due({snapshot_status(State::Snapshot, 4, 400)}, t0 + 4500ms);
  const std::vector<json> progress = of_table(c.events("progress"), kOrders);
  ASSERT_EQ(progress.size(), 2u) << c.sink->text();
  EXPECT_EQ(progress[0].at("done"), false);
  EXPECT_EQ(progress[0].at("partitions_done"), 2);
  EXPECT_EQ(progress[0].at("state"), "Pausing");
  EXPECT_EQ(progress[1].at("done"), true);
}

TEST(ProgressLog, CdcRateAndLagWhileChangesFlowAndEachSchemaChangeOnce) {
  Capture c(LogFormat::Json);
  ProgressLog p(c.logger);
  const TimePoint t0 = std::chrono::system_clock::now();
  PipeStatus s;
  s.id = "p1";
  s.state = State::Running;
  s.cdc.changes = 1000;
  s.schema_changes = {SchemaEvent{kOrders, SchemaChange::Kind::ColumnsAdded, "old", t0 - 10s}};
  p.log_if_due({s}, t0);
  s.cdc.changes = 1200;
  s.cdc.lag_bytes = 300;
  s.cdc.lag_seconds = 0.5;
  s.cdc.confirmed = Lsn{0x100};
  s.schema_changes.push_back(
      SchemaEvent{kOrders, SchemaChange::Kind::ColumnsAdded, "column note added", t0 + 1s});
  s.schema_changes.push_back(
      SchemaEvent{kUsers, SchemaChange::Kind::TableStopped, "key changed", t0 + 1s});
  p.log_if_due({s}, t0 + 2s);
  p.log_if_due({s}, t0 + 2100ms);
  s.cdc.lag_bytes = 0;
  s.cdc.lag_seconds = 0.0;
  p.log_if_due({s}, t0 + 4s);  // idle and caught up: nothing to say

  const std::vector<json> progress = c.events("progress");
  ASSERT_EQ(progress.size(), 1u) << c.sink->text();
  EXPECT_EQ(progress[0].at("changes_per_s"), 100.0);
  EXPECT_EQ(progress[0].at("changes"), 1200);
  EXPECT_EQ(progress[0].at("lag_bytes"), 300);
  EXPECT_EQ(progress[0].at("lag_seconds"), 0.5);
  EXPECT_EQ(progress[0].at("confirmed"), to_string(Lsn{0x100}));

  const std::vector<json> schema = c.events("schema_change");
  ASSERT_EQ(schema.size(), 2u) << c.sink->text();
  EXPECT_EQ(schema[0].at("table"), "public.orders");
  EXPECT_EQ(schema[0].at("msg"), "public.orders: column note added");
  EXPECT_EQ(schema[0].at("level"), "info");
  EXPECT_EQ(schema[1].at("table"), "public.users");
  EXPECT_EQ(schema[1].at("kind"), std::string(to_string(SchemaChange::Kind::TableStopped)));
  EXPECT_EQ(schema[1].at("level"), "warn");
}

}  // namespace
}  // namespace clickpipe::cli
