// clickpipe: run a Postgres ClickPipe as a foreground service and control it.
//
//   clickpipe run --config pipe.json     run (and create, the first time) the pipe; Ctrl-C stops it
//                                        gracefully and a later run resumes it
//   clickpipe status --store DIR         every pipe saved in DIR, as JSON
//   clickpipe pause|resume|resync --store DIR --id ID
//   clickpipe add-table|remove-table --store DIR --id ID schema.table
//   clickpipe diagram                    the lifecycle as a Mermaid diagram
//
// Control goes through the store directory: a command is a file DIR/control/<n>.cmd that the
// running process picks up within 200 ms, answering in <n>.result. See docs/cli.md.
#include <signal.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <clickpipe/clickpipe.hpp>
#include <clickpipe/json.hpp>
#include <clickpipe/pg_to_clickhouse/executors.hpp>
#include <clickpipe/runtime/pipe_service.hpp>
#include <clickpipe/store/file_store.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using namespace clickpipe;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_atomically(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp";
  std::ofstream(tmp, std::ios::trunc) << text;
  fs::rename(tmp, p);
}

const json& need(const json& j, const std::string& parent, const char* name) {
  if (!j.is_object())
    throw InvalidField(parent.empty() ? "(config)" : parent, "expected an object");
  auto it = j.find(name);
  if (it == j.end()) throw InvalidField((parent.empty() ? "" : parent + ".") + name, "missing");
  return *it;
}

std::string text(const json& j, const std::string& parent, const char* name,
                 std::optional<std::string> fallback = std::nullopt) {
  const std::string field = (parent.empty() ? "" : parent + ".") + name;
  if (!j.contains(name)) {
    if (fallback) return *fallback;
    throw InvalidField(field, "missing");
  }
  const json& v = j.at(name);
  if (v.is_number_integer()) return std::to_string(v.get<long long>());
  if (!v.is_string()) throw InvalidField(field, "expected a string");
  return v.get<std::string>();
}

// "password" in the file, or "password_env": the name of an environment variable holding it.
std::string secret(const json& j, const std::string& parent) {
  if (j.contains("password_env")) {
    const std::string var = text(j, parent, "password_env");
    const char* v = std::getenv(var.c_str());
    if (!v)
      throw InvalidField(parent + ".password_env", "environment variable " + var + " is not set");
    return v;
  }
  return text(j, parent, "password", "");
}

TableRef table_ref(const std::string& s, const std::string& field) {
  const auto dot = s.find('.');
  if (s.empty()) throw InvalidField(field, "empty table name");
  if (dot == std::string::npos) return TableRef{"public", s};
  if (dot == 0 || dot + 1 == s.size())
    throw InvalidField(field, "expected schema.table, got '" + s + "'");
  return TableRef{s.substr(0, dot), s.substr(dot + 1)};
}

struct CliConfig {
  PipeConfig pipe;
  pg_to_clickhouse::Config executors;
  std::string store;
};

CliConfig parse_config(const json& j) {
  CliConfig c;
  c.pipe.id = text(j, "", "id");
  const std::string mode = text(j, "", "mode", "initial_load_and_cdc");
  auto m = parse_mode(mode);
  if (!m) throw InvalidField("mode", "unknown mode '" + mode + "'");
  c.pipe.mode = *m;
  c.store = text(j, "", "store");
  const json& src = need(j, "", "source");
  c.executors.source.host = text(src, "source", "host");
  c.executors.source.port = text(src, "source", "port", "5432");
  c.executors.source.dbname = text(src, "source", "dbname");
  c.executors.source.user = text(src, "source", "user");
  c.executors.source.password = secret(src, "source");
  c.executors.source.sslmode = text(src, "source", "sslmode", "");
  const json& dst = need(j, "", "destination");
  c.executors.destination.url = text(dst, "destination", "url");
  c.executors.destination.user = text(dst, "destination", "user", "default");
  c.executors.destination.password = secret(dst, "destination");
  c.executors.destination.database = text(dst, "destination", "database", "default");
  c.executors.destination.chdb_library = text(dst, "destination", "chdb_library", "");
  if (dst.contains("reconcile")) {
    if (!dst.at("reconcile").is_boolean())
      throw InvalidField("destination.reconcile", "expected true or false");
    c.executors.reconcile = dst.at("reconcile").get<bool>();
  }
  const json& tables = need(j, "", "tables");
  if (!tables.is_array() || tables.empty())
    throw InvalidField("tables", "expected a list of schema.table");
  for (std::size_t i = 0; i < tables.size(); ++i) {
    const std::string field = "tables[" + std::to_string(i) + "]";
    if (!tables[i].is_string()) throw InvalidField(field, "expected a string");
    c.pipe.tables.push_back(table_ref(tables[i].get<std::string>(), field));
  }
  if (j.contains("settings")) c.pipe.settings = j.at("settings").get<Settings>();
  static const char* known[] = {"id",          "mode",   "store",   "source",
                                "destination", "tables", "settings"};
  for (const auto& [key, value] : j.items()) {
    if (std::find(std::begin(known), std::end(known), key) == std::end(known)) {
      throw InvalidField(key, "unknown field");
    }
  }
  c.executors.pipe_id = c.pipe.id;
  c.pipe.validate();
  return c;
}

volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

std::string bar(std::uint64_t done, std::uint64_t total) {
  const int width = 20;
  const int filled = total ? static_cast<int>(width * done / total) : 0;
  return "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
}

// Carries out one control file; returns the result document.
json control(PipeService& service, const json& cmd) {
  const std::string id = cmd.value("id", "");
  const std::string what = cmd.value("command", "");
  Pipe* p = service.get(id);
  if (!p) return {{"status", "invalid"}, {"message", "no pipe '" + id + "'"}};
  CommandResult r;
  std::vector<TableRef> tables;
  for (const auto& t : cmd.value("tables", json::array()))
    tables.push_back(table_ref(t.get<std::string>(), "tables"));
  if (what == "pause")
    r = p->pause();
  else if (what == "resume")
    r = p->resume();
  else if (what == "resync")
    r = p->resync();
  else if (what == "add-table")
    r = p->add_tables(tables);
  else if (what == "remove-table")
    r = p->remove_tables(tables);
  else
    return {{"status", "invalid"}, {"message", "unknown command '" + what + "'"}};
  static const char* names[] = {"accepted", "queued", "rejected", "invalid", "unavailable"};
  return {{"status", names[static_cast<int>(r.status)]}, {"message", r.message}};
}

int run(const std::string& config_path) {
  const CliConfig cfg = parse_config(json::parse(slurp(config_path)));
  fs::create_directories(fs::path(cfg.store) / "control");
  auto log = std::make_shared<spdlog::logger>("clickpipe",
                                              std::make_shared<spdlog::sinks::null_sink_mt>());
  struct Printer : TransitionListener {
    void on_transition(const TransitionEvent& e) override {
      if (e.transition.kind == Kind::External) fmt::print("{} {}\n", e.pipe_id, e.transition);
      if (!e.error.empty()) fmt::print("  error: {}\n", e.error);
    }
    void on_retry(const std::string& id, const RetryStatus& r) override {
      fmt::print("{} retrying {} (attempt {}): {}\n", id, r.operation, r.attempt, r.last_error);
    }
  };
  PipeService::Options o;
  o.store = FileStore::open(cfg.store);
  o.logger = log;
  o.listeners = {std::make_shared<Printer>()};
  o.executors = [&cfg](const std::string&, Mode) {
    return pg_to_clickhouse::make_executors(cfg.executors);
  };
  PipeService service(o);
  for (const auto& b : service.broken())
    fmt::print(stderr, "broken record {}: {}\n", b.name, b.reason);
  if (!service.get(cfg.pipe.id)) service.create(cfg.pipe);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  fmt::print("running pipe {} (store {}); Ctrl-C stops it, a later run resumes it\n", cfg.pipe.id,
             cfg.store);

  auto last_print = std::chrono::steady_clock::now();
  std::uint64_t last_changes = 0;
  std::map<std::string, TimePoint> schema_shown;  // newest schema change printed, per pipe
  while (!stop_requested) {
    for (const auto& entry : fs::directory_iterator(fs::path(cfg.store) / "control")) {
      if (entry.path().extension() != ".cmd") continue;
      json result;
      try {
        result = control(service, json::parse(slurp(entry.path())));
      } catch (const std::exception& e) {
        result = {{"status", "invalid"}, {"message", e.what()}};
      }
      write_atomically(fs::path(entry.path()).replace_extension(".result"), result.dump());
      fs::remove(entry.path());
    }
    if (std::chrono::steady_clock::now() - last_print > 2s) {
      for (const PipeStatus& s : service.statuses()) {
        std::string line = fmt::format("{} {}", s.id, s.state);
        if (s.state == State::Snapshot) {
          for (const auto& t : s.snapshot) {
            line += fmt::format("  {} {} {}/{}", t.table.qualified(),
                                bar(t.partitions_done, t.partitions_total), t.partitions_done,
                                t.partitions_total);
          }
        } else if (s.state == State::Running || s.state == State::Degraded) {
          const double secs =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - last_print).count();
          line += fmt::format("  {:.0f} changes/s, lag {} bytes, confirmed {}",
                              double(s.cdc.changes - std::min(s.cdc.changes, last_changes)) / secs,
                              s.cdc.lag_bytes, s.cdc.confirmed ? to_string(*s.cdc.confirmed) : "-");
          last_changes = s.cdc.changes;
        }
        if (s.retry)
          line += fmt::format("  retrying {}: {}", s.retry->operation, s.retry->last_error);
        if (!s.stopped_tables.empty())
          line += fmt::format("  {} table(s) stopped", s.stopped_tables.size());
        fmt::print("{}\n", line);
        // Each schema change once, as it is seen (the status keeps only the newest).
        TimePoint& shown = schema_shown[s.id];
        for (const SchemaEvent& e : s.schema_changes) {
          if (e.at <= shown) continue;
          fmt::print("{} schema change: {}\n", s.id, e.description);
          shown = e.at;
        }
      }
      last_print = std::chrono::steady_clock::now();
    }
    std::this_thread::sleep_for(200ms);
  }
  fmt::print("stopping: saving and joining\n");
  service.shutdown();
  return 0;
}

int status(const std::string& store) {
  json out = json::array();
  for (const auto& entry : fs::directory_iterator(store)) {
    if (entry.path().extension() != ".json") continue;
    try {
      const PipeRecord r = decode_record(slurp(entry.path()));
      json tables = json::array();
      for (const auto& t : r.tables) tables.push_back(t.qualified());
      json stopped = json::array();
      for (const auto& st : r.stopped_tables) {
        stopped.push_back({{"table", st.table.qualified()}, {"reason", st.reason}});
      }
      out.push_back({{"id", r.id},
                     {"state", r.lifecycle.state()},
                     {"intent", std::string(to_string(r.intent))},
                     {"tables", tables},
                     {"confirmed", r.confirmed ? json(*r.confirmed) : json(nullptr)},
                     {"stopped_tables", stopped},
                     {"last_error", r.last_error ? json(r.last_error->message) : json(nullptr)}});
    } catch (const std::exception& e) {
      out.push_back({{"file", entry.path().filename().string()}, {"broken", e.what()}});
    }
  }
  fmt::print("{}\n", out.dump(2));
  return 0;
}

int send(const std::string& store, const std::string& id, const std::string& command,
         const std::vector<std::string>& tables) {
  const fs::path dir = fs::path(store) / "control";
  if (!fs::exists(dir)) {
    fmt::print(stderr, "no pipe runs on {} (start it with clickpipe run)\n", store);
    return 1;
  }
  const std::string name = std::to_string(::getpid()) + "-" + std::to_string(std::time(nullptr));
  write_atomically(dir / (name + ".cmd"),
                   json{{"id", id}, {"command", command}, {"tables", tables}}.dump());
  const fs::path result = dir / (name + ".result");
  for (int i = 0; i < 150 && !fs::exists(result); ++i) std::this_thread::sleep_for(200ms);
  if (!fs::exists(result)) {
    fs::remove(dir / (name + ".cmd"));
    fmt::print(stderr, "no answer within 30 s: is `clickpipe run` running on {}?\n", store);
    return 1;
  }
  const json r = json::parse(slurp(result));
  fs::remove(result);
  const std::string st = r.value("status", "");
  fmt::print("{}{}\n", st, r.value("message", "").empty() ? "" : ": " + r.value("message", ""));
  return st == "accepted" || st == "queued" ? 0 : 1;
}

int usage() {
  fmt::print(stderr,
             "usage: clickpipe run --config FILE\n"
             "       clickpipe status --store DIR\n"
             "       clickpipe pause|resume|resync --store DIR --id ID\n"
             "       clickpipe add-table|remove-table --store DIR --id ID schema.table\n"
             "       clickpipe diagram\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress reaches logs and pipes as it happens
  spdlog::set_level(spdlog::level::off);
  if (argc < 2) return usage();
  const std::string cmd = argv[1];
  std::map<std::string, std::string> opts;
  std::vector<std::string> rest;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--", 0) == 0 && i + 1 < argc) {
      opts[a.substr(2)] = argv[++i];
    } else {
      rest.push_back(a);
    }
  }
  try {
    if (cmd == "diagram") {
      fmt::print("{}", to_mermaid());
      return 0;
    }
    if (cmd == "run" && opts.count("config")) return run(opts["config"]);
    if (cmd == "check-config" && opts.count("config")) {
      parse_config(json::parse(slurp(opts["config"])));
      fmt::print("ok\n");
      return 0;
    }
    if (cmd == "status" && opts.count("store")) return status(opts["store"]);
    if ((cmd == "pause" || cmd == "resume" || cmd == "resync") && opts.count("store") &&
        opts.count("id")) {
      return send(opts["store"], opts["id"], cmd, {});
    }
    if ((cmd == "add-table" || cmd == "remove-table") && opts.count("store") && opts.count("id") &&
        rest.size() == 1) {
      return send(opts["store"], opts["id"], cmd, rest);
    }
  } catch (const InvalidField& e) {
    fmt::print(stderr, "bad config: {}\n", e.what());
    return 2;
  } catch (const json::exception& e) {
    fmt::print(stderr, "bad config: not valid JSON: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return usage();
}
