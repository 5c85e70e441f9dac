// clickpipe: run a PostgreSQL -> ClickHouse pipe as a foreground service and control it.
//
//   clickpipe run --config pipe.json     run (and create, the first time) the pipe; Ctrl-C stops it
//                                        gracefully and a later run resumes it
//   clickpipe check-config --config pipe.json
//   clickpipe status --store DIR         every pipe saved in DIR, as JSON
//   clickpipe pause|resume|resync --store DIR --id ID
//   clickpipe add-table|remove-table --store DIR --id ID schema.table
//   clickpipe diagram                    the lifecycle as a Mermaid diagram
//
// Exit status: 0 on success, 1 when a command was refused or failed, 2 for a bad command line
// or a bad config. See docs/cli.md.
#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "clickpipe/error.hpp"
#include "clickpipe/json.hpp"
#include "clickpipe/lifecycle/diagram.hpp"
#include "clickpipe/store/file_store.hpp"
#include "clickpipe/store/file_system.hpp"
#include "clickpipe/version.hpp"
#include "config.hpp"
#include "control.hpp"
#include "run.hpp"

using namespace clickpipe;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Reads the saved records directly, so it needs no running process.
int print_status(const std::string& store) {
  json out = json::array();
  for (const auto& entry : fs::directory_iterator(store)) {
    if (entry.path().extension() != ".json") continue;
    try {
      // Not cli::slurp: a FIFO or a symlink planted as a record must not hang or redirect us.
      std::string text;
      if (int err = posix_file_system()->read_file(entry.path().string(), text))
        throw std::runtime_error(std::strerror(err));
      const PipeRecord r = decode_record(text);
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
  // Replaced, not thrown: a file name or a damaged record need not be UTF-8.
  fmt::print("{}\n", out.dump(2, ' ', false, json::error_handler_t::replace));
  return 0;
}

// Every subcommand and the values it was given; filled in by CLI11.
struct Args {
  std::string config;
  std::string store;
  std::string id;
  std::string table;
};

CLI::App* add_store_and_id(CLI::App& app, const char* name, const char* description, Args& a) {
  CLI::App* sub = app.add_subcommand(name, description);
  sub->add_option("--store", a.store, "the store directory of the running pipe")
      ->required()
      ->type_name("DIR");
  sub->add_option("--id", a.id, "the pipe's id")->required()->type_name("ID");
  return sub;
}

// CLI11's own messages, except that it checks required arguments before leftovers and lists
// several leftovers in reverse: name what it did not know, in the order given.
std::string failure_message(const CLI::App* app, const CLI::Error& e) {
  const std::vector<std::string> left = app->remaining(true);
  std::string what = e.what();
  if (!left.empty()) {
    std::string extra;
    if (app->get_subcommands().empty() && left.front().rfind('-', 0) != 0) {
      extra = "unknown subcommand '" + left.front() + "'";
    } else {
      extra = left.size() > 1 ? "unexpected arguments:" : "unexpected argument:";
      for (const std::string& word : left) extra += " " + word;
    }
    // A leftover is usually the cause (a typo); keep CLI11's message when it says more.
    const bool says_more =
        !dynamic_cast<const CLI::ExtrasError*>(&e) && !app->get_subcommands().empty();
    what = says_more ? what + "; " + extra : extra;
  }
  return what + "\nRun with --help for more information.\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress reaches logs and pipes as it happens
  spdlog::set_level(spdlog::level::off);

  CLI::App app(
      "Runs a PostgreSQL -> ClickHouse pipe as a foreground service and controls it\n"
      "through its store directory (see docs/cli.md).",
      "clickpipe");
  app.set_version_flag(
      "--version", fmt::format("clickpipe {}.{}.{}", kVersionMajor, kVersionMinor, kVersionPatch));
  app.failure_message(failure_message);
  Args a;

  for (const char* name : {"run", "check-config"}) {
    const bool run = std::string(name) == "run";
    CLI::App* sub = app.add_subcommand(
        name, run ? "Run the pipe (create it the first time); Ctrl-C or SIGTERM stops it "
                    "gracefully and a later run resumes it"
                  : "Check a config file: print ok, or name the first bad field");
    sub->add_option("--config", a.config, "the pipe's JSON config")
        ->required()
        ->type_name("FILE")
        ->check(CLI::ExistingFile.description(""));  // "FILE" is already the type
  }
  app.add_subcommand("status", "Print every pipe saved in DIR, as JSON (no running process needed)")
      ->add_option("--store", a.store, "the store directory")
      ->required()
      ->type_name("DIR");
  // The commands a running pipe answers through the control channel.
  add_store_and_id(app, "pause", "Pause the running pipe", a);
  add_store_and_id(app, "resume", "Resume the paused pipe", a);
  add_store_and_id(app, "resync", "Copy every table again from scratch", a);
  for (const char* name : {"add-table", "remove-table"}) {
    const bool add = std::string(name) == "add-table";
    add_store_and_id(app, name, add ? "Add a table to the pipe" : "Remove a table from the pipe", a)
        ->add_option("table", a.table, "schema.table, or table in schema public")
        ->required();
  }
  app.add_subcommand("diagram", "Print the lifecycle as a Mermaid diagram");
  app.require_subcommand(1);

  if (argc < 2) {
    fmt::print(stderr, "{}", app.help());
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints the help, the version or the error
    return code == 0 ? 0 : 2;
  }

  const CLI::App* sub = app.get_subcommands().front();  // exactly one: CLI11 checked
  const std::string cmd = sub->get_name();
  try {
    if (cmd == "diagram") {
      fmt::print("{}", to_mermaid());
      return 0;
    }
    if (cmd == "run") return cli::run(cli::read_config(a.config));
    if (cmd == "check-config") {
      cli::read_config(a.config);
      fmt::print("ok\n");
      return 0;
    }
    if (cmd == "status") return print_status(a.store);
    std::vector<std::string> tables;
    if (sub->get_option_no_throw("table")) tables.push_back(a.table);
    return cli::send(a.store, a.id, cmd, tables);
  } catch (const InvalidField& e) {
    fmt::print(stderr, "bad config: {}\n", e.what());
    return 2;
  } catch (const json::parse_error& e) {
    // Only the position: the parser's own message quotes what it read, maybe a password.
    fmt::print(stderr, "bad config: not valid JSON at byte {}\n", e.byte);
    return 2;
  } catch (const json::exception& e) {
    fmt::print(stderr, "bad config: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}
