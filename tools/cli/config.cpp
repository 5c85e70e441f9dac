#include "config.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "clickpipe/error.hpp"
#include "clickpipe/json.hpp"
#include "clickpipe/lifecycle/mode.hpp"

namespace clickpipe::cli {

using nlohmann::json;

namespace {

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

CliConfig read_config(const std::filesystem::path& path) {
  return parse_config(json::parse(slurp(path)));
}

}  // namespace clickpipe::cli
