// A real Postgres ClickPipe: a sample database with a running write load, replicated into
// ClickHouse through Provisioning -> Setup -> Snapshot -> Running, then paused, resumed, given a
// new table and resynced; finally ClickHouse FINAL is checked against PostgreSQL for every table.
// Connection settings come from CLICKPIPE_PG_* and CLICKPIPE_CH_* (./scripts/demo.sh sets them).
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <clickpipe/clickhouse/quote.hpp>
#include <clickpipe/clickpipe.hpp>
#include <clickpipe/json.hpp>
#include <clickpipe/pg_to_clickhouse/executors.hpp>
#include <clickpipe/postgres/catalog.hpp>
#include <clickpipe/store/file_store.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

using namespace std::chrono_literals;
using namespace clickpipe;

namespace {

const auto kStart = std::chrono::steady_clock::now();
double elapsed() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - kStart).count();
}

struct Printer : TransitionListener {
  void on_transition(const TransitionEvent& e) override {
    if (e.transition.kind == TransitionKind::External)
      fmt::print("[{:7.3f}s] {}\n", elapsed(), e.transition);
    if (!e.error.empty()) fmt::print("           error: {}\n", e.error);
  }
  void on_retry(const std::string&, const RetryStatus& r) override {
    fmt::print("[{:7.3f}s] retrying {} (attempt {}): {}\n", elapsed(), r.operation, r.attempt,
               r.last_error);
  }
};

// Every column as text, per primary key: what each side holds.
std::map<std::string, std::string> pg_rows(postgres::Connection& pg, const std::string& t) {
  std::map<std::string, std::string> out;
  postgres::Result r =
      pg.exec("SELECT id::text, concat_ws('|', name, trim_scale(amount)::text, note) FROM " + t);
  for (int i = 0; i < r.rows(); ++i) out[std::string(r.value(i, 0))] = std::string(r.value(i, 1));
  return out;
}

std::map<std::string, std::string> ch_rows(clickhouse::Client& ch, const std::string& t) {
  std::map<std::string, std::string> out;
  const std::string body = ch.query(
      "SELECT toString(id), arrayStringConcat(arrayFilter(x -> x != '', [ifNull(name, ''), "
      "ifNull(if(position(toString(amount), '.') > 0, replaceRegexpOne(toString(amount), "
      "'[.]?0+$', ''), toString(amount)), ''), ifNull(note, '')]), '|') FROM " +
      clickhouse::quote(t) + " FINAL WHERE _is_deleted = 0 FORMAT TabSeparatedRaw");
  std::size_t at = 0;
  while (at < body.size()) {
    const auto tab = body.find('\t', at), nl = body.find('\n', at);
    out[body.substr(at, tab - at)] = body.substr(tab + 1, nl - tab - 1);
    at = nl + 1;
  }
  return out;
}

void show_progress(const Pipe& pipe) {
  std::map<std::string, int> shown;
  while (pipe.state() == State::Provisioning || pipe.state() == State::Setup ||
         pipe.state() == State::Snapshot) {
    for (const auto& t : pipe.status().snapshot) {
      if (!t.planned || t.partitions_total == 0) continue;
      const int quarter = static_cast<int>(4.0 * t.partitions_done / t.partitions_total);
      if (quarter > shown[t.table.qualified()] ||
          (quarter == 0 && !shown.count(t.table.qualified()))) {
        shown[t.table.qualified()] = quarter;
        const int width = 20, filled = width * static_cast<int>(t.partitions_done) /
                                       static_cast<int>(t.partitions_total);
        fmt::print("[{:7.3f}s]   {:<22} [{}{}] {}/{} partitions, {} rows\n", elapsed(),
                   t.table.qualified(), std::string(filled, '#'), std::string(width - filled, '.'),
                   t.partitions_done, t.partitions_total, t.rows_copied);
      }
    }
    std::this_thread::sleep_for(100ms);
  }
}

// The servers ./scripts/demo.sh starts, as it exports them: everything a Config needs. A service
// would read these from its own configuration.
pg_to_clickhouse::Config demo_config() {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) throw InvalidField(name, "environment variable is not set");
    return std::string(v);
  };
  pg_to_clickhouse::Config c;
  c.pipe_id = "demo";  // the slot and the publication are clickpipe_demo
  c.source.host = env("CLICKPIPE_PG_HOST");
  c.source.port = env("CLICKPIPE_PG_PORT");
  c.source.dbname = env("CLICKPIPE_PG_DATABASE");
  c.source.user = env("CLICKPIPE_PG_USER");
  c.source.password = env("CLICKPIPE_PG_PASSWORD");
  if (const char* url = std::getenv("CLICKPIPE_CH_URL"); url && *url) {
    c.destination.url = url;  // chdb://DIR (--chdb): ClickHouse in this process, no credentials
  } else {
    c.destination.url = "http://" + env("CLICKPIPE_CH_HOST") + ":" + env("CLICKPIPE_CH_PORT");
    c.destination.user = env("CLICKPIPE_CH_USER");
    c.destination.password = env("CLICKPIPE_CH_PASSWORD");
  }
  return c;
}

}  // namespace

int main() {
  spdlog::set_level(spdlog::level::off);
  pg_to_clickhouse::Config cfg;
  try {
    cfg = demo_config();
  } catch (const InvalidField& e) {
    fmt::print(stderr, "{}: run ./scripts/demo.sh\n", e.what());
    return 2;
  }

  postgres::Connection pg = postgres::Connection::open(cfg.source);
  const std::vector<std::string> names = {"customers", "orders", "items", "refunds"};
  for (const auto& t : names) {
    pg.exec("DROP TABLE IF EXISTS " + t);
    pg.exec("CREATE TABLE " + t +
            " (id int8 PRIMARY KEY, name text, amount numeric(12,2), note text)");
  }
  pg.exec(
      "INSERT INTO customers SELECT g, 'customer ' || g, g % 1000, NULL FROM generate_series(1, "
      "50000) g");
  pg.exec(
      "INSERT INTO orders SELECT g, 'order ' || g, (g % 977) / 3.0, 'o' FROM generate_series(1, "
      "150000) g");
  pg.exec(
      "INSERT INTO items SELECT g, 'item ' || g, g % 50, 'it''s' FROM generate_series(1, 50000) g");
  pg.exec(
      "INSERT INTO refunds SELECT g, 'refund ' || g, g % 20, NULL FROM generate_series(1, 5000) g");
  for (const auto& t : names) pg.exec("ANALYZE " + t);
  fmt::print(
      "PostgreSQL {}:{}: 250,000 rows in customers, orders, items (+5,000 in refunds, added "
      "later)\n",
      cfg.source.host, cfg.source.port);
  clickhouse::Client ch(cfg.destination);
  fmt::print("ClickHouse {} at {}{}\n\n", ch.version().to_string(), cfg.destination.url,
             cfg.destination.url.starts_with("chdb://") ? " (embedded in this process)" : "");

  // A running write load on every table until the end.
  std::atomic<bool> writing{true};
  std::atomic<long> writes{0};
  std::thread writer([&] {
    postgres::Connection w = postgres::Connection::open(cfg.source);
    std::mt19937 rng(1);
    long next = 1000000;
    while (writing) {
      const std::string t = names[rng() % names.size()];
      switch (rng() % 4) {
        case 0:
          w.exec("INSERT INTO " + t + " VALUES ($1, 'live', 1.5, NULL)", {std::to_string(next++)});
          break;
        case 1:
          w.exec("UPDATE " + t + " SET amount = amount + 1 WHERE id = $1",
                 {std::to_string(rng() % 5000)});
          break;
        case 2:
          w.exec("DELETE FROM " + t + " WHERE id = $1", {std::to_string(rng() % 5000)});
          break;
        default:
          w.exec("UPDATE " + t + " SET id = id + 2000000 WHERE id = $1",
                 {std::to_string(rng() % 5000)});
      }
      ++writes;
      std::this_thread::sleep_for(2ms);
    }
  });

  const std::string store_dir =
      std::filesystem::temp_directory_path() / ("clickpipe-demo-" + std::to_string(::getpid()));
  Settings s;
  s.sync_interval = 500ms;
  s.rows_per_partition = 20000;
  PipeOptions o;
  o.logger =
      std::make_shared<spdlog::logger>("demo", std::make_shared<spdlog::sinks::null_sink_mt>());
  o.store = FileStore::open(store_dir);
  std::vector<TableRef> tables{{"public", "customers"}, {"public", "orders"}, {"public", "items"}};
  Pipe pipe(PipeConfig{"demo", Mode::InitialLoadAndCdc, tables, s},
            pg_to_clickhouse::make_executors(cfg), o);
  pipe.add_listener(std::make_shared<Printer>());
  pipe.start();
  show_progress(pipe);
  bool ok = pipe.wait_for(State::Running, 120s);
  std::this_thread::sleep_for(2s);
  auto st = pipe.status();
  fmt::print("[{:7.3f}s] CDC: {} changes in {} batches, confirmed {}, lag {} bytes\n", elapsed(),
             st.cdc.changes, st.cdc.batches, st.cdc.confirmed ? to_string(*st.cdc.confirmed) : "-",
             st.cdc.lag_bytes);

  fmt::print("[{:7.3f}s] pause: {}\n", elapsed(), pipe.pause() ? "accepted" : "rejected");
  ok = ok && pipe.wait_for(State::Paused, 60s);
  fmt::print("[{:7.3f}s] pause again: {}\n", elapsed(), pipe.pause().message);
  std::this_thread::sleep_for(1s);
  fmt::print("[{:7.3f}s] resume: {}\n", elapsed(), pipe.resume() ? "accepted" : "rejected");
  ok = ok && pipe.wait_for(State::Running, 60s);
  fmt::print("[{:7.3f}s] add table public.refunds: {}\n", elapsed(),
             pipe.add_tables({{"public", "refunds"}}) ? "accepted" : "rejected");
  ok = ok && pipe.wait_for(State::Snapshot, 60s);
  show_progress(pipe);
  ok = ok && pipe.wait_for(State::Running, 120s);
  std::this_thread::sleep_for(1s);
  fmt::print("[{:7.3f}s] resync: {}\n", elapsed(), pipe.resync() ? "accepted" : "rejected");
  ok = ok && pipe.wait_for(State::Snapshot, 60s);
  show_progress(pipe);
  ok = ok && pipe.wait_for(State::Running, 120s);

  writing = false;
  writer.join();
  fmt::print("[{:7.3f}s] the write load stopped after {} statements; waiting for CDC to catch up\n",
             elapsed(), writes.load());
  bool equal = false;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (ok && !equal && std::chrono::steady_clock::now() < deadline) {
    equal = true;
    for (const auto& t : names) equal = equal && pg_rows(pg, t) == ch_rows(ch, t);
    if (!equal) std::this_thread::sleep_for(250ms);
  }
  nlohmann::json status = pipe.status();
  status["history"] = nlohmann::json::array();
  fmt::print("\nFinal status:\n{}\n\n", status.dump(2));
  for (const auto& t : names) {
    fmt::print("  {:<10} PostgreSQL {:>7} rows, ClickHouse FINAL {:>7} rows\n", t,
               pg_rows(pg, t).size(), ch_rows(ch, t).size());
  }
  pipe.remove();
  pipe.wait_for(State::Terminated, 30s);
  pipe.shutdown();
  std::filesystem::remove_all(store_dir);
  if (!ok || !equal) {
    fmt::print(stderr, "\nFAILED: ClickHouse does not equal PostgreSQL\n");
    return 1;
  }
  fmt::print("\nOK: ClickHouse FINAL equals PostgreSQL for every table.\n");
  return 0;
}
