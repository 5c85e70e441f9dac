#include "config.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string_view>

#include "clickpipe/error.hpp"
#include "clickpipe/json.hpp"
#include "clickpipe/lifecycle/mode.hpp"
#include "clickpipe/settings.hpp"

namespace clickpipe::cli {

using nlohmann::json;

namespace {

std::string path_of(const std::string& parent, std::string_view name) {
  return parent.empty() ? std::string(name) : parent + "." + std::string(name);
}

// Every level refuses keys it does not know, so a typo ("ssl_mode") is an error, not a default.
void object(const json& j, const std::string& path, std::initializer_list<std::string_view> known) {
  if (!j.is_object()) throw InvalidField(path.empty() ? "(config)" : path, "expected an object");
  for (const auto& [key, value] : j.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end())
      throw InvalidField(path_of(path, key), "unknown field");
  }
}

const json& need(const json& j, const std::string& parent, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) throw InvalidField(path_of(parent, name), "missing");
  return *it;
}

// A string; required (and not empty) unless there is a fallback.
std::string text(const json& j, const std::string& parent, const char* name,
                 std::optional<std::string> fallback = std::nullopt) {
  const std::string field = path_of(parent, name);
  auto it = j.find(name);
  if (it == j.end()) {
    if (fallback) return *fallback;
    throw InvalidField(field, "missing");
  }
  if (!it->is_string()) throw InvalidField(field, "expected a string");
  std::string v = it->get<std::string>();
  if (v.empty() && !fallback) throw InvalidField(field, "must not be empty");
  return v;
}

// A whole number in [lo, hi]. Fractions, exponents (1e30), negatives and numbers past the range
// are refused, never wrapped or truncated.
std::int64_t whole(const json& j, const std::string& parent, const char* name, std::int64_t lo,
                   std::int64_t hi, std::int64_t fallback) {
  auto it = j.find(name);
  if (it == j.end()) return fallback;
  const bool fits =
      (it->is_number_unsigned() && it->get<std::uint64_t>() <= static_cast<std::uint64_t>(hi) &&
       static_cast<std::int64_t>(it->get<std::uint64_t>()) >= lo) ||
      (it->is_number_integer() && !it->is_number_unsigned() && it->get<std::int64_t>() >= lo &&
       it->get<std::int64_t>() <= hi);
  if (!fits) {
    throw InvalidField(path_of(parent, name), "expected a whole number from " + std::to_string(lo) +
                                                  " to " + std::to_string(hi));
  }
  return it->get<std::int64_t>();
}

bool flag(const json& j, const std::string& parent, const char* name, bool fallback) {
  auto it = j.find(name);
  if (it == j.end()) return fallback;
  if (!it->is_boolean()) throw InvalidField(path_of(parent, name), "expected true or false");
  return it->get<bool>();
}

// The port as a number or a string of digits.
std::string port(const json& j, const std::string& parent) {
  auto it = j.find("port");
  if (it != j.end() && it->is_string()) {
    const std::string s = it->get<std::string>();
    const bool digits = !s.empty() && s.size() <= 5 && std::all_of(s.begin(), s.end(), [](char c) {
      return c >= '0' && c <= '9';
    });
    const int n = digits ? std::stoi(s) : 0;
    if (n < 1 || n > 65535)
      throw InvalidField(parent + ".port", "expected a port number from 1 to 65535");
    return std::to_string(n);
  }
  return std::to_string(whole(j, parent, "port", 1, 65535, 5432));
}

// "password" in the file, or "password_env": the name of an environment variable holding it.
// Neither value is ever repeated in a message (a password pasted into password_env included).
std::string secret(const json& j, const std::string& parent) {
  if (j.contains("password") && j.contains("password_env"))
    throw InvalidField(parent + ".password", "give password or password_env, not both");
  if (j.contains("password_env")) {
    const std::string var = text(j, parent, "password_env");
    const char* v = std::getenv(var.c_str());
    if (!v) throw InvalidField(parent + ".password_env", "names an environment variable not set");
    return v;
  }
  return text(j, parent, "password", "");
}

constexpr std::int64_t kMaxMs = kMaxSettingDuration.count();

// What an InvalidField says about its field ("must be > 0"), without the field.
std::string reason_of(const InvalidField& e) {
  const std::string what = e.what();
  const std::size_t skip = e.field().size() + 2;  // "field: "
  return what.size() > skip ? what.substr(skip) : what;
}

// Runs `check`, whose errors name fields under `from` ("destination.url"), naming them under `to`
// instead ("pipes[1].destination.url") for a pipe's own servers.
template <typename F>
void rebased(const std::string& to, const std::string& from, const F& check) {
  try {
    check();
  } catch (const InvalidField& e) {
    if (to == from || e.field().rfind(from, 0) != 0) throw;
    throw InvalidField(to + e.field().substr(from.size()), reason_of(e));
  }
}

void read_source(const json& j, postgres::ConnectionSettings& s, const std::string& p) {
  object(j, p,
         {"host", "port", "dbname", "user", "password", "password_env", "sslmode", "ca_file",
          "connect_timeout_s"});
  s.host = text(j, p, "host");
  s.port = port(j, p);
  s.dbname = text(j, p, "dbname");
  s.user = text(j, p, "user");
  s.password = secret(j, p);
  s.sslmode = text(j, p, "sslmode", "");
  s.ca_file = text(j, p, "ca_file", "");
  s.connect_timeout = std::chrono::seconds(
      whole(j, p, "connect_timeout_s", 1, kMaxMs / 1000, s.connect_timeout.count()));
  // Refuses an unknown sslmode, and allow/prefer for a remote host, before anything connects.
  rebased(p, "source", [&] { postgres::effective_sslmode(s); });
}

void read_destination(const json& j, pg_to_clickhouse::Config& c, const std::string& p) {
  object(j, p,
         {"url", "user", "password", "password_env", "database", "chdb_library", "reconcile",
          "ca_file", "verify_peer", "connect_timeout_ms", "timeout_ms"});
  clickhouse::ClientSettings& d = c.destination;
  d.url = text(j, p, "url");
  d.user = text(j, p, "user", "default");
  d.password = secret(j, p);
  d.database = text(j, p, "database", "default");
  d.chdb_library = text(j, p, "chdb_library", "");
  d.ca_file = text(j, p, "ca_file", "");
  d.verify_peer = flag(j, p, "verify_peer", d.verify_peer);
  d.connect_timeout = std::chrono::milliseconds(
      whole(j, p, "connect_timeout_ms", 1, kMaxMs, d.connect_timeout.count()));
  d.timeout = std::chrono::milliseconds(whole(j, p, "timeout_ms", 1, kMaxMs, d.timeout.count()));
  c.reconcile = flag(j, p, "reconcile", c.reconcile);
  // A URL with user info or a query string, refused without repeating it.
  rebased(p, "destination", [&] { d.validate(); });
}

}  // namespace

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TableRef table_ref(const std::string& s, const std::string& field) {
  const auto dot = s.find('.');
  if (s.empty()) throw InvalidField(field, "empty table name");
  if (dot == std::string::npos) return TableRef{"public", s};
  if (dot == 0 || dot + 1 == s.size())
    throw InvalidField(field, "expected schema.table, got '" + s + "'");
  return TableRef{s.substr(0, dot), s.substr(dot + 1)};
}

namespace {

// `err` with its field put under `parent` ("settings.x" -> "pipes[1].settings.x").
InvalidField within(const std::string& parent, const InvalidField& err) {
  return InvalidField(parent + "." + err.field(), reason_of(err));
}

// One pipe's own fields (at `p`: "" for a single-pipe file, else "pipes[i]"); its servers from
// its own entry when it names them, else from the file's top level `top`.
PipeEntry read_pipe(const json& j, const std::string& p, const json& top) {
  PipeEntry e;
  e.pipe.id = text(j, p, "id");
  const std::string mode = text(j, p, "mode", "initial_load_and_cdc");
  auto m = parse_mode(mode);
  if (!m) throw InvalidField(path_of(p, "mode"), "unknown mode '" + mode + "'");
  e.pipe.mode = *m;
  const bool own_source = !p.empty() && j.contains("source");
  const bool own_destination = !p.empty() && j.contains("destination");
  read_source(need(own_source ? j : top, own_source ? p : "", "source"), e.executors.source,
              path_of(own_source ? p : "", "source"));
  read_destination(need(own_destination ? j : top, own_destination ? p : "", "destination"),
                   e.executors, path_of(own_destination ? p : "", "destination"));
  const json& tables = need(j, p, "tables");
  const std::string tables_path = path_of(p, "tables");
  if (!tables.is_array() || tables.empty())
    throw InvalidField(tables_path, "expected a list of schema.table");
  for (std::size_t i = 0; i < tables.size(); ++i) {
    const std::string field = tables_path + "[" + std::to_string(i) + "]";
    if (!tables[i].is_string()) throw InvalidField(field, "expected a string");
    e.pipe.tables.push_back(table_ref(tables[i].get<std::string>(), field));
  }
  if (j.contains("settings")) {
    try {
      e.pipe.settings = j.at("settings").get<Settings>();
    } catch (const InvalidField& err) {
      if (p.empty()) throw;
      throw within(p, err);
    }
  }
  e.executors.pipe_id = e.pipe.id;
  try {
    e.pipe.validate();
  } catch (const InvalidField& err) {
    if (p.empty()) throw;
    throw within(p, err);
  }
  return e;
}

}  // namespace

bool is_postgres_store(const std::string& store) {
  return store.starts_with("postgres://") || store.starts_with("postgresql://");
}

cluster::PgStoreOptions pg_store_options(const std::string& url, const std::string& field) {
  if (!is_postgres_store(url)) {
    throw InvalidField(field, "expected a postgres:// or postgresql:// URL");
  }
  // Read as libpq reads it, so no spelling (user:pw@, ?password=, a percent-encoded key) slips
  // a password past: it would be logged with the store's name.
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (!options) {
    if (error) PQfreemem(error);  // may quote the URL: not repeated
    throw InvalidField(field, "is not a connection URL libpq can read");
  }
  bool password = false;
  for (const PQconninfoOption* o = options; o->keyword; ++o) {
    password = password || (std::string_view(o->keyword) == "password" && o->val && *o->val);
  }
  PQconninfoFree(options);
  if (password) {
    throw InvalidField(field,
                       "the URL carries a password: give it in PGPASSWORD, ~/.pgpass or "
                       "store.password_env instead");
  }
  cluster::PgStoreOptions o;
  o.connection.conninfo = url;
  cluster::validate(o);
  return o;
}

namespace {

// "store": a directory, a PostgreSQL URL, or an object for the PostgreSQL store.
void read_store(const json& j, CliConfig& c) {
  const json& s = need(j, "", "store");
  if (!s.is_object()) {
    c.store = text(j, "", "store");
    if (is_postgres_store(c.store)) c.pg_store = pg_store_options(c.store, "store");
    return;
  }
  object(s, "store", {"url", "schema", "lease_ms", "password_env"});
  c.store = text(s, "store", "url");
  cluster::PgStoreOptions o = pg_store_options(c.store, "store.url");
  if (s.contains("schema")) o.schema = text(s, "store", "schema");
  o.lease = std::chrono::milliseconds(whole(s, "store", "lease_ms", 100, kMaxMs, 10000));
  if (s.contains("password_env")) o.connection.password = secret(s, "store");
  cluster::validate(o);
  c.pg_store = std::move(o);
}

}  // namespace

CliConfig parse_config(const json& j) {
  CliConfig c;
  if (j.is_object() && j.contains("pipes")) {
    object(j, "", {"store", "source", "destination", "pipes"});
    read_store(j, c);
    const json& pipes = j.at("pipes");
    if (!pipes.is_array() || pipes.empty()) throw InvalidField("pipes", "expected a list of pipes");
    for (std::size_t i = 0; i < pipes.size(); ++i) {
      const std::string p = "pipes[" + std::to_string(i) + "]";
      object(pipes[i], p, {"id", "mode", "tables", "settings", "source", "destination"});
      c.pipes.push_back(read_pipe(pipes[i], p, j));
    }
  } else {
    object(j, "", {"id", "mode", "store", "source", "destination", "tables", "settings"});
    read_store(j, c);
    c.pipes.push_back(read_pipe(j, "", j));
  }
  check_unique_ids(c.pipes, "");
  return c;
}

bool same_destination(const clickhouse::ClientSettings& a, const clickhouse::ClientSettings& b) {
  const auto norm = [](std::string url) {
    while (!url.empty() && url.back() == '/') url.pop_back();
    for (char& c : url) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return url;
  };
  return a.database == b.database && norm(a.url) == norm(b.url);
}

void check_tables_apart(const std::string& id, std::span<const TableRef> adding,
                        const std::string& other, std::span<const TableRef> others_tables,
                        const std::string& field) {
  try {
    pg_to_clickhouse::check_destination_names(adding);  // a clash of its own, named as such
  } catch (const InvalidField& e) {
    const std::string sub = e.field().rfind("tables", 0) == 0 ? e.field().substr(6) : "";
    throw InvalidField(field + sub, reason_of(e));
  }
  std::vector<TableRef> both(others_tables.begin(), others_tables.end());
  both.insert(both.end(), adding.begin(), adding.end());
  try {
    pg_to_clickhouse::check_destination_names(both);
  } catch (const InvalidField&) {
    throw InvalidField(field, "pipes '" + other + "' and '" + id +
                                  "' would write the same ClickHouse table (or one a resync of "
                                  "either makes): give each pipe its own tables");
  }
}

void check_unique_ids(const std::vector<PipeEntry>& pipes, const std::string& where) {
  for (std::size_t i = 0; i < pipes.size(); ++i) {
    for (std::size_t k = 0; k < i; ++k) {
      if (pipes[i].pipe.id == pipes[k].pipe.id) {
        throw InvalidField(pipes.size() == 1 ? "id" : "pipes[" + std::to_string(i) + "].id",
                           "the id '" + pipes[i].pipe.id + "' is given twice" + where);
      }
    }
  }
  // Two pipes writing one ClickHouse table would mix their rows, and a resync or a delete of one
  // would swap or drop the other's table: pipes on one destination database take disjoint names.
  for (std::size_t i = 0; i < pipes.size(); ++i) {
    const std::string field = "pipes[" + std::to_string(i) + "].tables";
    for (std::size_t k = 0; k < i; ++k) {
      if (!same_destination(pipes[k].executors.destination, pipes[i].executors.destination))
        continue;
      check_tables_apart(pipes[i].pipe.id, pipes[i].pipe.tables, pipes[k].pipe.id,
                         pipes[k].pipe.tables, field);
    }
  }
}

CliConfig read_config(const std::filesystem::path& path) {
  return parse_config(json::parse(slurp(path)));
}

}  // namespace clickpipe::cli
