// Inserting into ClickHouse: clickpipe's insert (encoding included) vs curl --data-binary posting
// the same TabSeparated file, on the same server in one run.
// Needs CLICKPIPE_CH_* (bench/clickhouse_bench.sh starts a throwaway server and sets them).
//
//   clickpipe_bench_clickhouse [rows]
#include <fmt/format.h>
#include <unistd.h>
#include <clickpipe/clickhouse/schema.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common.hpp"

using namespace clickpipe;
using namespace clickpipe::clickhouse;
using bench::since;
using bench::Steady;

namespace {
std::string need(const char* n) { return bench::need(n, "bench/clickhouse_bench.sh"); }
}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const long rows = argc > 1 ? std::atol(argv[1]) : 1000000;
  ClientSettings s;
  s.url = "http://" + need("CLICKPIPE_CH_HOST") + ":" + need("CLICKPIPE_CH_PORT");
  s.user = need("CLICKPIPE_CH_USER");
  s.password = need("CLICKPIPE_CH_PASSWORD");
  Client c(s);
  const TableDefinition def{
      TableRef{"public", "bench"},
      {Column{"id", "int8", 20, -1, false, 0}, Column{"v", "text", 25, -1, true, 0},
       Column{"n", "numeric", 1700, ((12 << 16) | 2) + 4, true, 0}},
      {"id"}};
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
  TableLayout theirs = ours;
  theirs.name = "bench_curl";
  for (const auto& l : {ours, theirs}) {
    c.query("DROP TABLE IF EXISTS " + quote(l.name));
    c.query(create_table_sql(l, "default"));
  }
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
  auto t0 = Steady::now();
  for (std::size_t at = 0; at < data.size(); at += batch) {
    std::vector<Row> part(data.begin() + static_cast<long>(at),
                          data.begin() + static_cast<long>(std::min(data.size(), at + batch)));
    insert(c, ours, part);
  }
  const double ours_s = since(t0);

  const std::string query =
      "INSERT INTO default.bench_curl (id, v, n, _version, _is_deleted, _synced_at) FORMAT "
      "TabSeparated";
  setenv("CH_KEY", s.password.c_str(), 1);
  const std::string cmd = fmt::format(
      "curl -sS -H 'X-ClickHouse-User: {}' -H \"X-ClickHouse-Key: $CH_KEY\" --data-binary @{} "
      "'{}/?query={}' >/dev/null",
      s.user, file, s.url, "INSERT%20INTO%20default.bench_curl%20FORMAT%20TabSeparated");
  (void)query;
  t0 = Steady::now();
  const int rc = std::system(cmd.c_str());
  const double curl_s = since(t0);

  // The format question, on the server's side: the same rows as RowBinary, posted the same way.
  const std::string rb_file = file + ".rowbinary";
  {
    std::ofstream(rb_file, std::ios::binary) << c.query(
        "SELECT id, v, n, _version, _is_deleted, _synced_at FROM bench_curl FORMAT RowBinary");
  }
  c.query("DROP TABLE IF EXISTS bench_rb");
  c.query("CREATE TABLE bench_rb AS bench_curl");
  const std::string rb_cmd = fmt::format(
      "curl -sS -H 'X-ClickHouse-User: {}' -H \"X-ClickHouse-Key: $CH_KEY\" --data-binary @{} "
      "'{}/?query={}' >/dev/null",
      s.user, rb_file, s.url, "INSERT%20INTO%20default.bench_rb%20FORMAT%20RowBinary");
  t0 = Steady::now();
  const int rb_rc = std::system(rb_cmd.c_str());
  const double rb_s = since(t0);
  const auto rb_bytes = std::filesystem::file_size(rb_file);
  const auto tsv_bytes = std::filesystem::file_size(file);
  std::remove(rb_file.c_str());
  c.query("DROP TABLE IF EXISTS bench_rb");
  std::remove(file.c_str());
  const std::string counted =
      c.query("SELECT count() FROM bench_ours") + c.query("SELECT count() FROM bench_curl");
  fmt::print("ClickHouse {}.{}: {} rows (int8, text, Decimal), batches of {}\n", c.version().major,
             c.version().minor, rows, batch);
  fmt::print("clickpipe insert (encoding included): {:.0f} rows/s ({:.2f} s)\n",
             double(rows) / ours_s, ours_s);
  fmt::print("curl --data-binary of the same TSV:   {:.0f} rows/s ({:.2f} s){}\n",
             double(rows) / curl_s, curl_s, rc == 0 ? "" : " (curl failed)");
  fmt::print("curl --data-binary of RowBinary:      {:.0f} rows/s ({:.2f} s){}\n",
             double(rows) / rb_s, rb_s, rb_rc == 0 ? "" : " (curl failed)");
  fmt::print("sizes: TabSeparated {:.1f} MB, RowBinary {:.1f} MB\n", double(tsv_bytes) / 1e6,
             double(rb_bytes) / 1e6);
  fmt::print(
      "ratio clickpipe/curl: {:.2f}; RowBinary/TabSeparated ingestion: {:.2f}; rows landed: {}",
      curl_s / ours_s, curl_s / rb_s, counted);
  for (const auto& l : {ours, theirs}) c.query("DROP TABLE IF EXISTS " + quote(l.name));
  return 0;
}
