// clickpipe: run PostgreSQL -> ClickHouse pipes as a foreground service and control them.
//
//   clickpipe run --config pipes.json [--config more.json] [--log-level L] [--log-format F]
//                 [--listen HOST:PORT]      run (and create, the first time) the pipes; Ctrl-C
//                                           stops them gracefully and a later run resumes them
//   clickpipe check-config --config pipes.json
//   clickpipe status --store DIR [--id ID] [--json]
//   clickpipe pause|resume|resync|retry|cancel-add --store DIR --id ID
//   (--store postgres://USER@HOST/DB [--store-schema S]: a store shared by workers, from any
//   host; the password from PGPASSWORD or ~/.pgpass)
//   clickpipe add-table|remove-table --store DIR --id ID schema.table...
//   clickpipe update-settings --store DIR --id ID KEY=VALUE...
//   clickpipe delete --store DIR --id ID [--drop-destination]
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
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "clickpipe/error.hpp"
#include "clickpipe/json.hpp"
#include "clickpipe/lifecycle/diagram.hpp"
#include "clickpipe/version.hpp"
#include "cluster_store.hpp"
#include "config.hpp"
#include "control.hpp"
#include "run.hpp"
#include "status_view.hpp"

using namespace clickpipe;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Every subcommand and the values it was given; filled in by CLI11.
struct Args {
  std::vector<std::string> configs;
  std::string store;
  std::string store_schema = "clickpipe";
  std::string id;
  std::vector<std::string> tables;
  std::vector<std::string> assignments;  // update-settings KEY=VALUE
  bool drop_destination = false;
  bool json = false;
  std::optional<std::string> status_id;
  std::string log_level = "info";
  std::string log_format = "text";
  std::optional<std::string> listen;
  bool listen_remote = false;
};

// KEY=VALUE pairs as a settings patch: "cdc_retry.max_attempts=5" -> {"cdc_retry":
// {"max_attempts": 5}}. A value that reads as a JSON number, true, false or null is taken as one,
// anything else as a string; the running pipe names a wrong key or value.
json settings_patch(const std::vector<std::string>& assignments) {
  json patch = json::object();
  for (const std::string& a : assignments) {
    const auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0)
      throw InvalidField(a, "expected KEY=VALUE, e.g. pull_batch_size=5000");
    const std::string value_text = a.substr(eq + 1);
    json value = json::parse(value_text, nullptr, false);
    if (value.is_discarded() || value.is_structured() || value.is_string()) value = value_text;
    json* at = &patch;
    std::string key = a.substr(0, eq);
    for (auto dot = key.find('.'); dot != std::string::npos; dot = key.find('.')) {
      at = &(*at)[key.substr(0, dot)];
      if (!at->is_null() && !at->is_object()) throw InvalidField(a, "key given twice");
      key = key.substr(dot + 1);
    }
    (*at)[key] = value;
  }
  return patch;
}

// Every config file, checked to name one store and no id twice.
cli::CliConfig read_configs(const std::vector<std::string>& files) {
  cli::CliConfig all;
  for (std::size_t i = 0; i < files.size(); ++i) {
    cli::CliConfig c = cli::read_config(files[i]);
    if (i == 0) {
      all.store = c.store;
      all.pg_store = c.pg_store;
    } else if (fs::path(c.store).lexically_normal() != fs::path(all.store).lexically_normal()) {
      throw InvalidField("store", "every config of one process must name the same store (" +
                                      files[i] + " names another than " + files[0] + ")");
    }
    for (auto& e : c.pipes) all.pipes.push_back(std::move(e));
  }
  cli::check_unique_ids(all.pipes, " across the config files");
  return all;
}

// --store URL and --store-schema, checked as the config's "store" is.
cluster::PgStoreOptions store_options(const Args& a) {
  cluster::PgStoreOptions o = cli::pg_store_options(a.store, "--store");
  o.schema = a.store_schema;
  try {
    cluster::validate(o);
  } catch (const InvalidField& e) {
    throw InvalidField("--store-schema", e.what());
  }
  return o;
}

CLI::App* add_store_and_id(CLI::App& app, const char* name, const char* description, Args& a) {
  CLI::App* sub = app.add_subcommand(name, description);
  sub->add_option("--store", a.store,
                  "the store directory of the running pipe, or a postgres:// store's URL")
      ->required()
      ->type_name("DIR|URL");
  sub->add_option("--store-schema", a.store_schema, "the postgres:// store's schema (clickpipe)")
      ->type_name("SCHEMA");
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
        name, run ? "Run the pipes (create them the first time); Ctrl-C or SIGTERM stops them "
                    "gracefully and a later run resumes them"
                  : "Check config files: print ok, or name the first bad field");
    sub->add_option("--config", a.configs, "a JSON config of one or more pipes (repeatable)")
        ->required()
        ->type_name("FILE")
        ->take_all()
        ->allow_extra_args(false)
        ->check(CLI::ExistingFile.description(""));  // "FILE" is already the type
    if (!run) continue;
    sub->add_option("--log-level", a.log_level, "trace, debug, info (default), warn, error, off")
        ->type_name("LEVEL");
    sub->add_option("--log-format", a.log_format, "text (default) or json: one object a line")
        ->type_name("FORMAT");
    sub->add_option("--listen", a.listen,
                    "serve the HTTP API (status, commands, /metrics) on HOST:PORT; loopback "
                    "only unless --listen-remote")
        ->type_name("HOST:PORT");
    sub->add_flag("--listen-remote", a.listen_remote,
                  "allow a --listen address that is not loopback (requires CLICKPIPE_API_TOKEN)");
  }
  CLI::App* status =
      app.add_subcommand("status", "Show the pipes saved in DIR: live figures while they run");
  status->add_option("--store", a.store, "the store directory, or a postgres:// store's URL")
      ->required()
      ->type_name("DIR|URL");
  status->add_option("--store-schema", a.store_schema, "the postgres:// store's schema")
      ->type_name("SCHEMA");
  status->add_option("--id", a.status_id, "only this pipe")->type_name("ID");
  status->add_flag("--json", a.json, "print JSON instead of a table");
  // The commands a running pipe answers through the control channel.
  add_store_and_id(app, "pause", "Pause the running pipe", a);
  add_store_and_id(app, "resume", "Resume the paused pipe", a);
  add_store_and_id(app, "resync", "Copy every table again from scratch", a);
  add_store_and_id(app, "retry", "Retry a Failed pipe from the state it failed in", a);
  add_store_and_id(app, "cancel-add", "Cancel a table addition whose copy is running", a);
  for (const char* name : {"add-table", "remove-table"}) {
    const bool add = std::string(name) == "add-table";
    add_store_and_id(app, name, add ? "Add tables to the pipe" : "Remove tables from the pipe", a)
        ->add_option("table", a.tables, "schema.table, or table in schema public")
        ->required();
  }
  add_store_and_id(app, "update-settings", "Change settings of the running pipe", a)
      ->add_option("setting", a.assignments, "KEY=VALUE, e.g. pull_batch_size=5000")
      ->required();
  add_store_and_id(app, "delete",
                   "Delete the pipe: its slot and publication are dropped, its destination "
                   "tables kept",
                   a)
      ->add_flag("--drop-destination", a.drop_destination,
                 "drop the destination tables too (only those clickpipe created)");
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
    if (cmd == "run") {
      cli::RunOptions o;
      o.log.level = cli::parse_log_level(a.log_level);
      o.log.format = cli::parse_log_format(a.log_format);
      o.listen = a.listen;
      o.listen_remote = a.listen_remote;
      return cli::run(read_configs(a.configs), o);
    }
    if (cmd == "check-config") {
      read_configs(a.configs);
      fmt::print("ok\n");
      return 0;
    }
    if (cmd == "status") {
      const json doc = cli::is_postgres_store(a.store)
                           ? cli::read_store_status(store_options(a), a.status_id)
                           : cli::read_status(a.store, a.status_id);
      // Replaced, not thrown: a file name or a damaged record need not be UTF-8.
      if (a.json) {
        fmt::print("{}\n", doc.dump(2, ' ', false, json::error_handler_t::replace));
      } else {
        fmt::print("{}", cli::render_status_table(doc));
      }
      return 0;
    }
    json command{{"command", cmd}};
    if (cmd == "add-table" || cmd == "remove-table") command["tables"] = a.tables;
    if (cmd == "update-settings") {
      try {
        command["settings"] = settings_patch(a.assignments);
      } catch (const InvalidField& e) {
        fmt::print(stderr, "{}\nRun with --help for more information.\n", e.what());
        return 2;
      }
    }
    if (cmd == "delete") command["drop_destination"] = a.drop_destination;
    if (cli::is_postgres_store(a.store)) return cli::send_to_store(store_options(a), a.id, command);
    return cli::send(a.store, a.id, command);
  } catch (const InvalidField& e) {
    // An option's value ("--listen: ...") is a bad command line; anything else the config's.
    const bool option = e.field().rfind("--", 0) == 0;
    fmt::print(stderr, "{}{}\n", option ? "" : "bad config: ", e.what());
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
