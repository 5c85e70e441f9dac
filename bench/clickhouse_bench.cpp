// Inserting into ClickHouse: clickpipe's insert (encoding included) vs curl --data-binary posting
// the same TabSeparated file, and the same rows as RowBinary, on the same server in one run.
// kRounds rounds, the variants' order reversed every other round, medians printed; each variant
// inserts into a fresh table whose count() must then be every row (else the program fails).
// Needs CLICKPIPE_CH_* (bench/clickhouse_bench.sh starts a throwaway server and sets them).
//
//   clickpipe_bench_clickhouse [rows]
#include <fmt/format.h>
#include <unistd.h>
#include <clickpipe/clickhouse/insert.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "clickhouse_common.hpp"
#include "common.hpp"
#include "servers.hpp"

using namespace clickpipe;
using namespace clickpipe::clickhouse;
using bench::must;
using bench::since;
using bench::Steady;

namespace {

constexpr int kRounds = 3;

// curl posting `file` to `query` (URL-encoded) with the password from $CH_KEY, never argv.
std::string curl_post(const ClientSettings& s, const std::string& file, const std::string& query) {
  return fmt::format(
      "curl -sS --fail -H 'X-ClickHouse-User: {}' -H \"X-ClickHouse-Key: $CH_KEY\" "
      "--data-binary @{} '{}/?query={}' >/dev/null",
      s.user, file, s.url, query);
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const long rows = argc > 1 ? std::atol(argv[1]) : 1000000;
  const ClientSettings s = test::http_clickhouse_settings();
  Client c(s);
  TableDefinition def;
  def.table = TableRef{"public", "bench"};
  def.columns = {
      Column{.name = "id", .type = "int8", .type_oid = 20, .nullable = false},
      Column{.name = "v", .type = "text", .type_oid = 25},
      Column{
          .name = "n", .type = "numeric", .type_oid = 1700, .type_modifier = ((12 << 16) | 2) + 4}};
  def.primary_key = {"id"};
  const std::size_t batch = 100000;
  std::vector<Row> data;
  data.reserve(static_cast<std::size_t>(rows));
  for (long i = 0; i < rows; ++i) {
    data.push_back(
        Row{{Datum::of(std::to_string(i)), Datum::of("value\twith tab " + std::to_string(i)),
             Datum::of(std::to_string(i % 100000) + ".25")},
            static_cast<std::uint64_t>(i),
            false});
  }
  const TableLayout ours = layout_for(def, "bench_ours", c.version());
  TableLayout theirs = ours, binary = ours, prep = ours;
  theirs.name = "bench_curl";
  binary.name = "bench_rb";
  prep.name = "bench_prep";
  auto fresh = [&](const TableLayout& l) {
    c.query("DROP TABLE IF EXISTS " + quote(l.name));
    c.query(create_table_sql(l, "default"));
  };
  // The same bytes for curl, written to a file first (not timed).
  const std::string file = "/tmp/clickpipe-bench-" + std::to_string(::getpid()) + ".tsv";
  {
    std::ofstream out(file, std::ios::binary);
    for (std::size_t at = 0; at < data.size(); at += batch) {
      std::vector<Row> part(data.begin() + static_cast<long>(at),
                            data.begin() + static_cast<long>(std::min(data.size(), at + batch)));
      out << encode_rows(theirs, part, 1700000000);
    }
  }
  setenv("CH_KEY", s.password.c_str(), 1);
  // The format question, on the server's side: the same rows as RowBinary, as ClickHouse itself
  // writes them (not timed).
  const std::string rb_file = file + ".rowbinary";
  fresh(prep);
  must(std::system(curl_post(s, file, "INSERT%20INTO%20default.bench_prep%20FORMAT%20TabSeparated")
                       .c_str()) == 0,
       "loading the rows for RowBinary");
  std::ofstream(rb_file, std::ios::binary) << c.query(
      "SELECT id, v, n, _version, _is_deleted, _synced_at FROM bench_prep FORMAT RowBinary");
  c.query("DROP TABLE IF EXISTS bench_prep");

  const char* names[] = {"clickpipe insert (encoding included)", "curl --data-binary of the TSV",
                         "curl --data-binary of RowBinary"};
  const TableLayout* tables[] = {&ours, &theirs, &binary};
  std::vector<double> seconds[3];
  for (int round = 0; round < kRounds; ++round) {
    for (std::size_t v : bench::round_order(3, round)) {
      fresh(*tables[v]);
      const auto t0 = Steady::now();
      if (v == 0) {
        for (std::size_t at = 0; at < data.size(); at += batch) {
          std::vector<Row> part(
              data.begin() + static_cast<long>(at),
              data.begin() + static_cast<long>(std::min(data.size(), at + batch)));
          insert(c, ours, part);
        }
      } else {
        const std::string query = v == 1
                                      ? "INSERT%20INTO%20default.bench_curl%20FORMAT%20TabSeparated"
                                      : "INSERT%20INTO%20default.bench_rb%20FORMAT%20RowBinary";
        must(std::system(curl_post(s, v == 1 ? file : rb_file, query).c_str()) == 0, names[v]);
      }
      seconds[v].push_back(since(t0));
      const std::string counted = c.query("SELECT count() FROM " + quote(tables[v]->name));
      must(std::atol(counted.c_str()) == rows,
           fmt::format("{}: {} rows landed of {}", names[v], counted, rows));
    }
  }
  const auto rb_bytes = std::filesystem::file_size(rb_file);
  const auto tsv_bytes = std::filesystem::file_size(file);
  std::remove(rb_file.c_str());
  std::remove(file.c_str());
  fmt::print(
      "ClickHouse {}.{}: {} rows (int8, text, Decimal), batches of {}; median of {} rounds, "
      "order reversed every other round; every insert counted\n",
      c.version().major, c.version().minor, rows, batch, kRounds);
  fmt::print("session settings changed from ClickHouse's defaults: {}\n",
             bench::ch_session_settings(c));
  double med[3];
  for (std::size_t v = 0; v < 3; ++v) {
    med[v] = bench::median(seconds[v]);
    fmt::print("{:<38} {:>10.0f} rows/s ({:.2f} s)\n", names[v], double(rows) / med[v], med[v]);
  }
  fmt::print("sizes: TabSeparated {:.1f} MB, RowBinary {:.1f} MB\n", double(tsv_bytes) / 1e6,
             double(rb_bytes) / 1e6);
  fmt::print("ratio clickpipe/curl: {:.2f}; RowBinary/TabSeparated ingestion: {:.2f}\n",
             med[1] / med[0], med[1] / med[2]);
  for (const TableLayout* l : tables) c.query("DROP TABLE IF EXISTS " + quote(l->name));
  return 0;
}
