// The control channel of the `clickpipe` command: commands reach a running pipe as files in the
// store directory, DIR/control/<n>.cmd, answered in <n>.result (see docs/cli.md). Files, not a
// socket, because the store directory is already the one place the process and its operator
// share.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "clickpipe/runtime/pipe_service.hpp"

namespace clickpipe::cli {

// Where the command files of the pipes stored in `store` go; `clickpipe run` creates it.
std::filesystem::path control_dir(const std::string& store);

// The running side: carries out every command file waiting in `dir` and answers each.
void answer_commands(PipeService& service, const std::filesystem::path& dir);

// The operator's side: sends `command` ("pause", "add-table", ...) for pipe `id`, waits up to
// 30 s for the answer and prints it. Returns the exit status: 0 only when accepted.
int send(const std::string& store, const std::string& id, const std::string& command,
         const std::vector<std::string>& tables);

}  // namespace clickpipe::cli
