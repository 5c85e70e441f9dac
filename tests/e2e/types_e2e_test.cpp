// Every mapped type, value by value, through the initial load and through CDC, on the hostile
// PostgreSQL of ./scripts/test.sh (a +05:30 zone, SQL/DMY dates, escaped bytea, short floats, a
// German locale) into ClickHouse 18.16 (String dates and timestamps) or 26.7 embedded (Date32
// clamped to 1900..2299, DateTime64 to years 1..9999). The expected ClickHouse text of each value
// is computed by PostgreSQL itself from the source row, never by clickpipe's own conversions.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <thread>

#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/clickhouse/features.hpp"
#include "clickpipe/clickhouse/quote.hpp"
#include "clickpipe/clickhouse/tab_separated.hpp"
#include "clickpipe/clickhouse/tables.hpp"
#include "clickpipe/pg_to_clickhouse/executors.hpp"
#include "clickpipe/testing/helpers.hpp"
#include "e2e.hpp"

namespace clickpipe {
namespace {

using namespace std::chrono_literals;
using Text = std::optional<std::string>;

enum class Compare { Exact, Float64, Float32, Decimal };

// Which typed range a column is clamped to on servers with Date32/DateTime64.
enum class Range { None, Date, DateTime, DateTimeUtc };

struct TypeCase {
  std::string column;
  std::string type;
  std::string expect_text;  // PostgreSQL expression: the text ClickHouse 18.16 shows
  Range range = Range::None;
  std::string shown;  // ClickHouse expression printing the column (not toString: on
                      // 18.16 it garbles negative Decimal128 values and can crash)
  Compare compare = Compare::Exact;
};

// `{}` stands for the column in the expressions.
std::string with(std::string e, const std::string& column) {
  for (auto at = e.find("{}"); at != std::string::npos; at = e.find("{}", at + column.size())) {
    e.replace(at, 2, column);
  }
  return e;
}

const std::string kUtc = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')";
const std::string kLocal = "to_char({}, 'YYYY-MM-DD HH24:MI:SS.US')";
// In String columns: BC kept, infinities as PostgreSQL prints them.
std::string as_text(std::string to_char) {
  to_char.replace(to_char.find(".US'"), 4, ".US BC'");
  return "CASE WHEN isfinite({}) THEN regexp_replace(" + to_char +
         ", ' AD$', '') ELSE {}::text END";
}
// The text a server with typed columns shows: clamped to the years `f` gives the type.
std::string expect_typed(const TypeCase& c, const clickhouse::Features& f) {
  if (c.range == Range::None) return c.expect_text;
  const bool date = c.range == Range::Date;
  const int* years = date ? f.date32_years : f.datetime64_years;
  const std::string low = fmt::format("{:04}-01-01", years[0]);
  const std::string high = fmt::format("{:04}-12-31", years[1]);
  const std::string zone = c.range == Range::DateTimeUtc ? "+00" : "";
  const std::string lowest = date ? low : low + " 00:00:00.000000";
  const std::string highest = date ? high : high + " 23:59:59.999999";
  const std::string text = date ? "{}::text" : c.range == Range::DateTimeUtc ? kUtc : kLocal;
  return "CASE WHEN {} = '-infinity' OR {} < '" + lowest + zone + "' THEN '" + lowest +
         "' WHEN {} = 'infinity' OR {} > '" + highest + zone + "' THEN '" + highest + "' ELSE " +
         text + " END";
}

const std::vector<TypeCase>& cases() {
  static const std::vector<TypeCase> all = {
      {"i2", "int2", "{}::text", Range::None, "{}"},
      {"i4", "int4", "{}::text", Range::None, "{}"},
      {"i8", "int8", "{}::text", Range::None, "{}"},
      {"f4", "float4", "{}::text", Range::None, "{}", Compare::Float32},
      {"f8", "float8", "{}::text", Range::None, "{}", Compare::Float64},
      {"dec", "numeric(38, 10)", "CASE WHEN {} = 'NaN' THEN NULL ELSE {}::text END", Range::None,
       "{}", Compare::Decimal},
      {"money_like", "numeric(12, 3) NOT NULL DEFAULT 0",
       "CASE WHEN {} = 'NaN' THEN '0' ELSE {}::text END", Range::None, "{}", Compare::Decimal},
      {"num", "numeric", "{}::text", Range::None, "{}"},
      {"b", "bool", "CASE WHEN {} THEN '1' WHEN NOT {} THEN '0' END", Range::None, "{}"},
      {"t", "text", "{}", Range::None, "{}"},
      {"vc", "varchar(12)", "{}::text", Range::None, "{}"},
      {"bp", "char(6)", "rpad({}::text, 6)", Range::None, "{}"},
      {"js", "jsonb", "{}::text", Range::None, "{}"},
      {"u", "uuid", "{}::text", Range::None, "{}"},
      {"by", "bytea", "encode({}, 'hex')", Range::None, "lower(hex({}))"},
      {"iv", "interval", "{}::text", Range::None, "{}"},
      {"tm", "time", "{}::text", Range::None, "{}"},
      {"d", "date", "{}::text", Range::Date, "{}"},
      {"ts", "timestamp", as_text(kLocal), Range::DateTime, "{}"},
      {"tz", "timestamptz", as_text(kUtc), Range::DateTimeUtc, "{}"},
      {"ai", "int4[]", "'[' || coalesce(array_to_string({}, ',', 'NULL'), '') || ']'", Range::None,
       "{}"},
      {"at", "text[]", "coalesce(array_to_string({}, '|', '<NULL>'), '')", Range::None,
       "arrayStringConcat(arrayMap(x -> ifNull(x, '<NULL>'), {}), '|')"},
  };
  return all;
}

// Rows as VALUES lists (after the id), covering each type's edges; the last is all NULL.
const std::vector<std::string>& rows() {
  static const std::vector<std::string> all = {
      "-32768, -2147483648, -9223372036854775808, 'NaN', 'NaN', "
      "'-999999999999999999999999999.9999999999', 'NaN', 'NaN', true, "
      "E'tab\\there\\nnew \\\\ back ''q'' \"dq\" ü 日本', 'short', 'ab', '{\"k\": [1, "
      "\"x\\ty\"]}', "
      "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', "
      "(SELECT decode(string_agg(lpad(to_hex(g), 2, '0'), ''), 'hex') "
      "FROM generate_series(0, 255) g), '1 year 2 mons 3 days 04:05:06.789', '23:59:59.999999', "
      "'2024-02-29', '2024-02-29 23:59:59.999999', '2024-01-01 00:00:00+05:30', '{1,NULL,-3}', "
      "E'{\"a b\",NULL,\"it''s\",\"x\\\\\"y\",\"t\\tz\",\"\"}'",
      "32767, 2147483647, 9223372036854775807, 'Infinity', 'Infinity', "
      "'999999999999999999999999999.9999999999', '-1.250', '-Infinity', false, '', '', '', "
      "'null', '00000000-0000-0000-0000-000000000000', '\\x', '-1 mons', '00:00:00', "
      "'4713-01-01 BC', '0044-03-15 12:00:00 BC', '1899-12-31 23:59:59.5+00', '{}', '{}'",
      "0, 0, 0, '-Infinity', '-Infinity', '0', '0', "
      "'0.0000000000000000000000000000000000000000000000000000000001', true, 'x', 'x', 'x', "
      "'[]', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '\\x00', '-1 days +00:00:00.000001', "
      "'12:00:00', 'infinity', 'infinity', '-infinity', '{0}', '{\"\"}'",
      "1, 1, 1, 1.17549435e-38, 2.2250738585072014e-308, '0.0000000001', '123456789.123', "
      "'12345678901234567890123456789012345678901234567890', true, 'y', 'y', 'y', '1', "
      "'11111111-1111-1111-1111-111111111111', '\\x5c', '0 years', '00:00:01', "
      "'5874897-12-31', '294276-12-31 23:59:59.999999', '294276-12-31 23:59:59.999999+00', "
      "'{2147483647,-2147483648}', '{NULL}'",
      "-1, -1, -1, 3.4028235e+38, 1.7976931348623157e+308, '-0.0000000001', '-0.001', "
      "'-12345678901234567890.123456789', false, 'z', 'z', 'z', '\"s\"', "
      "'22222222-2222-2222-2222-222222222222', '\\xdeadbeef', '1000000 hours', '00:00:00.5', "
      "'1900-01-01', '1900-01-01 00:00:00', '2299-12-31 23:59:59.999999-03:30', '{5}', "
      "'{\"ü\"}'",
      "NULL, NULL, NULL, '1.4e-45', '4.9e-324', NULL, DEFAULT, NULL, NULL, NULL, "
      "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL",
  };
  return all;
}

std::string columns() {
  std::string out = "id";
  for (const auto& c : cases()) out += ", " + c.column;
  return out;
}

// id -> the expected text of every column, computed by PostgreSQL.
std::map<std::string, std::vector<Text>> expected(postgres::Connection& pg, const std::string& t,
                                                  const clickhouse::Features& f) {
  std::string sql = "SELECT id::text";
  for (const auto& c : cases()) {
    sql += ", " + with(f.date32 ? expect_typed(c, f) : c.expect_text, c.column);
  }
  postgres::Result r = pg.exec(sql + " FROM " + t);
  std::map<std::string, std::vector<Text>> out;
  for (int i = 0; i < r.rows(); ++i) {
    std::vector<Text>& row = out[std::string(r.value(i, 0))];
    for (int k = 1; k < r.columns(); ++k) row.push_back(r.get(i, k));
  }
  return out;
}

std::map<std::string, std::vector<Text>> held(clickhouse::Client& ch, const std::string& t) {
  std::string sql = "SELECT id";
  for (const auto& c : cases()) sql += ", " + with(c.shown, clickhouse::quote(c.column));
  std::map<std::string, std::vector<Text>> out;
  if (!clickhouse::table_exists(ch, t)) return out;
  const std::string body = ch.query(sql + " FROM " + clickhouse::quote(t) +
                                    " FINAL WHERE _is_deleted = 0 FORMAT TabSeparated");
  for (auto& row : clickhouse::parse_tab_separated(body)) {
    const std::string id = *row.at(0);
    out[id] = std::vector<Text>(row.begin() + 1, row.end());
  }
  return out;
}

std::string decimal(std::string v) {
  if (v.find('.') != std::string::npos) {
    while (v.back() == '0') v.pop_back();
    if (v.back() == '.') v.pop_back();
  }
  return v == "-0" ? "0" : v;
}

// What ClickHouse 18.16 does to floats at the edge of the subnormal range: its text parser rounds
// them (docs/type-mapping.md). Pinned exactly, so a change in either direction shows.
Text known_18_16_deviation(const TypeCase& c, const Text& want) {
  if (!want) return want;
  if (c.column == "f8" && *want == "5e-324") return "0";
  if (c.column == "f4" && *want == "1.1754944e-38") return "1.1754945e-38";
  return want;
}

bool old_server = false;

bool same(const TypeCase& c, Text want, const Text& got) {
  if (old_server) want = known_18_16_deviation(c, want);
  if (!want || !got) return want.has_value() == got.has_value();
  switch (c.compare) {
    case Compare::Exact: return *want == *got;
    case Compare::Decimal: return decimal(*want) == decimal(*got);
    case Compare::Float64:
    case Compare::Float32: {
      const double a = std::strtod(want->c_str(), nullptr), b = std::strtod(got->c_str(), nullptr);
      if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
      if (c.compare == Compare::Float32) return static_cast<float>(a) == static_cast<float>(b);
      return a == b && std::signbit(a) == std::signbit(b);
    }
  }
  return false;
}

// Every difference, as "id column: want | got" lines.
std::string differences(const std::map<std::string, std::vector<Text>>& want,
                        const std::map<std::string, std::vector<Text>>& got) {
  std::string out;
  auto show = [](const Text& v) { return v ? "'" + *v + "'" : std::string("NULL"); };
  for (const auto& [id, row] : want) {
    auto it = got.find(id);
    if (it == got.end()) {
      out += id + ": missing\n";
      continue;
    }
    for (std::size_t k = 0; k < cases().size(); ++k) {
      if (!same(cases()[k], row[k], it->second.at(k))) {
        out += id + " " + cases()[k].column + ": want " + show(row[k]) + " got " +
               show(it->second[k]) + "\n";
      }
    }
  }
  for (const auto& [id, row] : got) {
    if (!want.count(id)) out += id + ": unexpected\n";
  }
  return out;
}

TEST(EndToEnd, EveryMappedTypeArrivesValueByValueThroughSnapshotAndCdc) {
  const std::string tag = std::to_string(::getpid());
  const pg_to_clickhouse::Config cfg = test::config("types_" + tag);
  postgres::Connection pg = postgres::Connection::open(cfg.source);
  const std::string t = "types_" + tag;
  std::string ddl = "CREATE TABLE " + t + " (id int8 PRIMARY KEY";
  for (const auto& c : cases()) ddl += ", " + c.column + " " + c.type;
  pg.exec(ddl + ")");
  const std::size_t n = rows().size();
  for (std::size_t i = 0; i < n; ++i) {  // ids 1..n: the initial load
    pg.exec("INSERT INTO " + t + " (" + columns() + ") VALUES (" + std::to_string(i + 1) + ", " +
            rows()[i] + ")");
  }

  Settings s;
  s.sync_interval = 100ms;
  auto started = test::start_pipe(cfg, t, s);
  Pipe& pipe = *started;
  ASSERT_TRUE(pipe.wait_for(State::Running, 60s)) << to_string(pipe.state());
  EXPECT_EQ(pipe.status().snapshot.at(0).rows_copied, n) << "the first rows took the COPY path";

  // ids 101..: the same values through CDC, as inserts and as updates of a loaded row.
  for (std::size_t i = 0; i < n; ++i) {
    pg.exec("INSERT INTO " + t + " (" + columns() + ") VALUES (" + std::to_string(101 + i) + ", " +
            rows()[i] + ")");
  }
  pg.exec("UPDATE " + t + " AS x SET (" + columns().substr(4) + ") = (SELECT " +
          columns().substr(4) + " FROM " + t + " WHERE id = 103) WHERE x.id = 1");

  clickhouse::Client ch(cfg.destination);
  old_server = ch.version() < clickhouse::ServerVersion{19, 0};
  const auto want = expected(pg, t, ch.features());
  ASSERT_EQ(want.size(), 2 * n);
  std::string diff;
  for (const auto deadline = std::chrono::steady_clock::now() + 60s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(200ms)) {
    diff = differences(want, held(ch, t));
    if (diff.empty()) break;
  }
  EXPECT_EQ(diff, "") << "ClickHouse " << ch.version().to_string();
  EXPECT_TRUE(testing::wait_until(
      pipe, [&](const PipeStatus& st) { return st.cdc.changes >= n + 1; }, 30s))
      << "the later rows took the CDC path: " << pipe.status().cdc.changes << " changes";
  ASSERT_TRUE(testing::drive_to(pipe, State::Terminated, 30s));
}

// The bug this pins: clamping dates and timestamps to the typed range (Date32 from 1900, infinity
// to the last day) ran on key columns too, so distinct source keys became one ClickHouse key:
// ReplacingMergeTree kept one row, and the initial load's count-back (distinct keys against rows
// sent) never matched. Key columns of these types are String, in UTC, never clamped.
TEST(EndToEnd, Regression_KeysBeyondTheTypedRangeStayDistinct) {
  const std::string tag = std::to_string(::getpid());
  const pg_to_clickhouse::Config cfg = test::config("keys_" + tag);
  postgres::Connection pg = postgres::Connection::open(cfg.source);
  const std::string t = "keys_" + tag;
  pg.exec("CREATE TABLE " + t +
          " (id int8, d date, ts timestamptz, v text, PRIMARY KEY (id, d, ts))");
  const std::string values =
      "('1800-01-01', '-infinity', 'a'), ('1850-01-01', '0044-03-15 12:00:00+00 BC', 'b'), "
      "('-infinity', '0001-01-01 00:00:00+00', 'c'), ('infinity', 'infinity', 'd'), "
      "('2299-12-31', '12000-01-01 00:00:00+05:30', 'e'), ('2300-01-01', '9999-12-31 "
      "23:59:59.999999+00', 'f')";
  pg.exec("INSERT INTO " + t + " SELECT 1, d::date, ts::timestamptz, v FROM (VALUES " + values +
          ") AS x (d, ts, v)");
  Settings s;
  s.sync_interval = 100ms;
  auto started = test::start_pipe(cfg, t, s);
  Pipe& pipe = *started;
  ASSERT_TRUE(pipe.wait_for(State::Running, 60s))
      << to_string(pipe.state()) << ": "
      << (pipe.status().last_error ? pipe.status().last_error->message : "");
  pg.exec("INSERT INTO " + t + " SELECT 2, d::date, ts::timestamptz, v FROM (VALUES " + values +
          ") AS x (d, ts, v)");
  const std::string want_keys =
      "SELECT id::text, d::text, CASE WHEN isfinite(ts) THEN regexp_replace(to_char(ts AT TIME "
      "ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US BC'), ' AD$', '') ELSE ts::text END, v FROM " +
      t + " ORDER BY 1, 4";
  std::string want;
  postgres::Result r = pg.exec(want_keys);
  for (int i = 0; i < r.rows(); ++i) {
    want +=
        fmt::format("{}\t{}\t{}\t{}\n", r.value(i, 0), r.value(i, 1), r.value(i, 2), r.value(i, 3));
  }
  clickhouse::Client ch(cfg.destination);
  std::string got;
  for (const auto deadline = std::chrono::steady_clock::now() + 30s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(200ms)) {
    got = ch.query("SELECT id, d, ts, v FROM " + clickhouse::quote(t) +
                   " FINAL WHERE _is_deleted = 0 ORDER BY id, v FORMAT TabSeparated");
    if (got == want) break;
  }
  EXPECT_EQ(got, want) << "12 distinct keys, each with its exact text";
  ASSERT_TRUE(testing::drive_to(pipe, State::Terminated, 30s));
}

}  // namespace
}  // namespace clickpipe
