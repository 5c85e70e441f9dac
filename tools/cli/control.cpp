#include "control.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <exception>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "config.hpp"

namespace clickpipe::cli {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Readers never see half a file: they look only for the final name.
void write_atomically(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp";
  std::ofstream(tmp, std::ios::trunc) << text;
  fs::rename(tmp, p);
}

// Carries out one command file; returns the result document.
json carry_out(PipeService& service, const json& cmd) {
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

}  // namespace

fs::path control_dir(const std::string& store) { return fs::path(store) / "control"; }

void answer_commands(PipeService& service, const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".cmd") continue;
    json result;
    try {
      result = carry_out(service, json::parse(slurp(entry.path())));
    } catch (const std::exception& e) {
      result = {{"status", "invalid"}, {"message", e.what()}};
    }
    write_atomically(fs::path(entry.path()).replace_extension(".result"), result.dump());
    fs::remove(entry.path());
  }
}

int send(const std::string& store, const std::string& id, const std::string& command,
         const std::vector<std::string>& tables) {
  const fs::path dir = control_dir(store);
  if (!fs::exists(dir)) {
    fmt::print(stderr, "no pipe runs on {} (start it with clickpipe run)\n", store);
    return 1;
  }
  const std::string name = std::to_string(::getpid()) + "-" + std::to_string(std::time(nullptr));
  write_atomically(dir / (name + ".cmd"),
                   json{{"id", id}, {"command", command}, {"tables", tables}}.dump());
  const fs::path result = dir / (name + ".result");
  for (int i = 0; i < 150 && !fs::exists(result); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
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

}  // namespace clickpipe::cli
