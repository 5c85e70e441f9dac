// The lifecycle commands of a running `clickpipe`, one place for both ways they arrive: command
// files in the store's control directory and the HTTP API.
#pragma once

#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "clickpipe/runtime/pipe_service.hpp"

namespace clickpipe::cli {

// Carries out one command for pipe `id`. `body` is the command as a JSON object:
//   {"command": NAME, "tables": ["schema.table", ...],         add-table, remove-table
//    "settings": {"pull_batch_size": 5000, ...},               update-settings (a patch)
//    "drop_destination": true}                                 delete
// NAME: pause, resume, resync, retry, add-table, remove-table, cancel-add, update-settings,
// delete, or the ClickPipes API's start (resume; retry when Failed) and stop (pause).
// Returns {"status": S, "message": ..., "state": <state after>} plus "rejection" when S is
// rejected. S: accepted, queued, rejected, invalid, unavailable, or not_found (no such pipe).
// Every field is checked for its type before use: the body is whoever sent it.
// Commands are carried out one at a time (the control files and HTTP threads share a lock), which
// also keeps the pipe a command holds from being forgotten under it (see reap_terminated).
nlohmann::json execute_command(PipeService& service, const std::string& id,
                               const nlohmann::json& body) noexcept;

// A command's answer without the pipe's state, in the shape every way a command arrives answers
// (files, HTTP, the cluster store): {"status": status, "message": message}, the message capped.
nlohmann::json command_outcome(std::string_view status, const std::string& message);

// Lets the service forget pipes that reached Terminated (their records are gone), under the
// commands' lock. The run loop calls it, so a deleted pipe leaves status and metrics.
void reap_terminated(PipeService& service) noexcept;

// Runs `f` while no command is being carried out (a cluster worker forgets pipes inside it).
void with_commands_lock(const std::function<void()>& f);

// Asked before add-table carries out: throws InvalidField (the command is then invalid, nothing
// changed) when `tables`, going to pipe `id`, may not join it, e.g. because another pipe of the
// process writes the same ClickHouse table. `run` sets it once, before any command arrives.
using TableCheck = std::function<void(const std::string& id, const std::vector<TableRef>& tables)>;
void set_table_check(TableCheck check);

// The HTTP status for a result's S: accepted and queued 200, rejected 409, invalid 400,
// not_found 404, unavailable 503.
int http_status_for(std::string_view status);

// Whether S means the command was taken (the shell exits 0).
inline bool taken(std::string_view status) { return status == "accepted" || status == "queued"; }

}  // namespace clickpipe::cli
