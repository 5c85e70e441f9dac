// The control channel of the `clickpipe` command: commands reach a running pipe as files in the
// store directory, DIR/control/<n>.cmd, answered in <n>.result (see docs/cli.md). Files, not a
// socket, because the store directory is already the one place the process and its operator
// share.
//
// Whoever can write the control directory can pause, resync or remove tables, so it is as
// private as the store: 0700, owned by the process's user, and its entries are read only if they
// are regular files of at most kMaxCommandBytes, never through a symlink.
#pragma once

#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "clickpipe/runtime/pipe_service.hpp"

namespace clickpipe::cli {

inline constexpr std::size_t kMaxCommandBytes = 64 * 1024;

// Where the command files of the pipes stored in `store` go; `clickpipe run` creates it.
std::filesystem::path control_dir(const std::string& store);

// Creates `dir` 0700 (its parent must exist) unless it exists, then checks that it is a
// directory (not a symlink) of this user's that group and others cannot write. Throws
// StoreError (Refused) naming the path and the fix otherwise. `what` names it in messages
// ("control directory").
void make_private_dir(const std::filesystem::path& dir, const char* what);
inline void make_control_dir(const std::filesystem::path& dir) {
  make_private_dir(dir, "control directory");
}

// Writes `text` as `dir`/`name` so that a reader never sees half of it: a temp file created
// exclusively, 0600, never through a symlink, then renamed over `name`. `dir` is opened without
// following a symlink. Returns 0 or an errno.
int write_private_file(const std::filesystem::path& dir, const std::string& name,
                       const std::string& text);

// The running side: carries out every command file waiting in the directory and answers each.
class CommandInbox {
 public:
  // Each command carried out is logged to `log` (when given) as a `command` event.
  CommandInbox(PipeService& service, std::filesystem::path dir,
               std::shared_ptr<spdlog::logger> log = nullptr)
      : service_(service), dir_(std::move(dir)), log_(std::move(log)) {}

  // Never throws, so no entry can stop the loop that calls it. An entry that is not a regular
  // file of at most kMaxCommandBytes is not read and not answered: a symlink or an oversized
  // file is removed (the link itself, never its target), anything else (a FIFO, a directory, a
  // device) is left alone; each is reported once on stderr. A command that is not valid JSON or
  // has a field of the wrong type is answered `invalid`, naming the field.
  void answer() noexcept;

 private:
  void answer_in(int dir_fd);
  void report(const std::string& key, const std::string& message);
  void log_command(const nlohmann::json& result, const std::string& text) noexcept;

  PipeService& service_;
  const std::filesystem::path dir_;
  std::shared_ptr<spdlog::logger> log_;
  std::set<std::string> reported_;       // problems already reported, still present
  std::set<std::string> still_present_;  // those seen again in this pass
};

// The operator's side: sends `command` (the JSON object execute_command takes) for pipe `id`,
// waits up to 30 s for the answer and prints it: on stdout when taken, else on stderr with the
// typed reason. Returns the exit status: 0 only when accepted or queued.
int send(const std::string& store, const std::string& id, nlohmann::json command);

// Prints a command's answer as send does (its status and message: on stdout when taken, else on
// stderr) and returns the exit status; `where` names the answer when it cannot be used.
int print_answer(const nlohmann::json& answer, const std::string& where);

}  // namespace clickpipe::cli
