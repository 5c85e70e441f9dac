#include "commands.hpp"

#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "clickpipe/error.hpp"
#include "clickpipe/json.hpp"
#include "clickpipe/status.hpp"
#include "config.hpp"

namespace clickpipe::cli {

using nlohmann::json;

json command_outcome(std::string_view status, const std::string& message) {
  return {{"status", status}, {"message", capped_error(message)}};
}

namespace {

json invalid(const std::string& message) { return command_outcome("invalid", message); }

constexpr const char* kStatusNames[] = {"accepted", "queued", "rejected", "invalid", "unavailable"};

// The tables of the command, each "schema.table" or "table"; throws InvalidField naming the
// element.
std::vector<TableRef> tables_of(const json& body, bool required) {
  std::vector<TableRef> tables;
  auto it = body.find("tables");
  if (it == body.end()) {
    if (required) throw InvalidField("tables", "missing: name at least one table");
    return tables;
  }
  if (!it->is_array()) throw InvalidField("tables", "expected an array of table names");
  if (required && it->empty()) throw InvalidField("tables", "empty: name at least one table");
  for (std::size_t i = 0; i < it->size(); ++i) {
    const std::string field = "tables[" + std::to_string(i) + "]";
    if (!(*it)[i].is_string()) throw InvalidField(field, "expected a string");
    tables.push_back(table_ref((*it)[i].get<std::string>(), field));
  }
  return tables;
}

// The fields a command may carry besides "command"; anything else is refused, so a typo
// ("drop_destinaton") never turns into the default.
void only_fields(const json& body, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : body.items()) {
    if (key == "command" || key == "id") continue;
    bool ok = false;
    for (std::string_view a : allowed) ok = ok || key == a;
    if (!ok) throw InvalidField(key, "not a field of this command");
  }
}

std::mutex& commands_mutex() {
  static std::mutex mu;
  return mu;
}

TableCheck& table_check() {  // under commands_mutex
  static TableCheck check;
  return check;
}

CommandResult run_command(Pipe& p, const std::string& what, const json& body) {
  if (what == "pause" || what == "stop") {
    only_fields(body, {});
    return p.pause();
  }
  if (what == "resume") {
    only_fields(body, {});
    return p.resume();
  }
  if (what == "start") {
    // Upstream's start also gets a Failed pipe going again.
    only_fields(body, {});
    return p.state() == State::Failed ? p.retry() : p.resume();
  }
  if (what == "retry") {
    only_fields(body, {});
    return p.retry();
  }
  if (what == "resync") {
    only_fields(body, {});
    return p.resync();
  }
  if (what == "cancel-add") {
    only_fields(body, {});
    return p.cancel_table_addition();
  }
  if (what == "add-table") {
    only_fields(body, {"tables"});
    std::vector<TableRef> tables = tables_of(body, true);
    if (const TableCheck& check = table_check()) check(p.id(), tables);
    return p.add_tables(std::move(tables));
  }
  if (what == "remove-table") {
    only_fields(body, {"tables"});
    return p.remove_tables(tables_of(body, true));
  }
  if (what == "update-settings") {
    only_fields(body, {"settings"});
    auto it = body.find("settings");
    if (it == body.end() || !it->is_object() || it->empty())
      throw InvalidField("settings", "expected an object with the settings to change");
    Settings s = p.status().settings;
    from_json(*it, s);  // a patch: fields not given keep their values; names the bad field
    return p.update_settings(s);
  }
  if (what == "delete") {
    only_fields(body, {"drop_destination"});
    DeleteOptions o;
    if (auto it = body.find("drop_destination"); it != body.end()) {
      if (!it->is_boolean()) throw InvalidField("drop_destination", "expected true or false");
      o.drop_destination = it->get<bool>();
    }
    return p.remove(o);
  }
  throw InvalidField("command", "unknown command '" + capped_error(what, 64) +
                                    "' (pause, resume, resync, retry, add-table, remove-table, "
                                    "cancel-add, update-settings, delete, start, stop)");
}

}  // namespace

void set_table_check(TableCheck check) {
  std::lock_guard lk(commands_mutex());
  table_check() = std::move(check);
}

void with_commands_lock(const std::function<void()>& f) {
  std::lock_guard lk(commands_mutex());
  f();
}

void reap_terminated(PipeService& service) noexcept {
  try {
    std::lock_guard lk(commands_mutex());
    service.list();  // forgets Terminated pipes as a side effect
  } catch (...) {
  }
}

json execute_command(PipeService& service, const std::string& id, const json& body) noexcept {
  try {
    std::lock_guard lk(commands_mutex());
    if (!body.is_object()) return invalid("expected a JSON object");
    auto it = body.find("command");
    if (it == body.end()) return invalid("command: missing");
    if (!it->is_string()) return invalid("command: expected a string");
    const std::string what = it->get<std::string>();
    Pipe* p = service.get(id);
    if (!p) return command_outcome("not_found", "no pipe '" + capped_error(id, 64) + "'");
    CommandResult r;
    try {
      r = run_command(*p, what, body);
    } catch (const InvalidField& e) {
      return invalid(e.what());
    }
    json out = command_outcome(kStatusNames[static_cast<int>(r.status)], r.message);
    if (r.rejection) {
      out["rejection"] = *r.rejection;
      if (r.message.empty()) out["message"] = message(*r.rejection);
    }
    out["state"] = p->state();
    return out;
  } catch (const std::exception& e) {
    return command_outcome("invalid", e.what());
  } catch (...) {
    return command_outcome("invalid", "unknown error");
  }
}

int http_status_for(std::string_view status) {
  if (status == "accepted" || status == "queued") return 200;
  if (status == "rejected") return 409;
  if (status == "not_found") return 404;
  if (status == "unavailable") return 503;
  return 400;
}

}  // namespace clickpipe::cli
