// The command line over a PostgreSQL store (docs/scale-out.md): commands sent to whichever worker
// owns the pipe, and status read from the store, from any host.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "clickpipe/cluster/pg_store.hpp"

namespace clickpipe::cli {

// How long a command waits for the owner's answer before it is withdrawn.
inline constexpr std::chrono::seconds kStoreCommandTimeout{30};

// Sends `command` to the worker that owns pipe `id` and waits for its answer (a result as
// execute_command gives). No pipe of that id: not_found. No answer within `timeout`: the command
// is withdrawn, so it never runs late, and the result is unavailable; one a worker has taken
// already gets a few seconds more. Never throws: a store that cannot be reached is unavailable.
nlohmann::json send_through_store(cluster::PgStore& store, const std::string& id,
                                  const nlohmann::json& command,
                                  std::chrono::milliseconds timeout = kStoreCommandTimeout);

// `clickpipe <command> --store postgres://...`: prints the answer; returns the exit status.
int send_to_store(const cluster::PgStoreOptions& options, const std::string& id,
                  const nlohmann::json& command);

// The pipes of the store as `clickpipe status` shows them: each record's document plus "owner"
// (the live worker running it: {"id", "name", "address"}, or null while it waits for one).
// With `id`, only that pipe (std::runtime_error when the store has none).
nlohmann::json read_store_status(const cluster::PgStoreOptions& options,
                                 const std::optional<std::string>& id);

}  // namespace clickpipe::cli
