// The `clickpipe` command's configuration file: one pipe, its servers and its store, as JSON.
// The fields are documented in docs/cli.md.
#pragma once

#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "clickpipe/pg_to_clickhouse/executors.hpp"
#include "clickpipe/runtime/pipe.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe::cli {

struct CliConfig {
  PipeConfig pipe;
  pg_to_clickhouse::Config executors;
  std::string store;
};

// Throws InvalidField naming the first bad field by its path: unknown keys at any level, wrong
// types, numbers out of range, an unsafe sslmode, a URL carrying user info. No message repeats a
// password or the URL. Passwords given as "password_env" are read from the environment here.
CliConfig parse_config(const nlohmann::json& j);

// parse_config over a file; a file that is not JSON throws nlohmann::json::exception.
CliConfig read_config(const std::filesystem::path& path);

// "schema.table", or "table" in schema public; throws InvalidField naming `field`.
TableRef table_ref(const std::string& s, const std::string& field);

// The whole file, or "" when it cannot be read.
std::string slurp(const std::filesystem::path& p);

}  // namespace clickpipe::cli
