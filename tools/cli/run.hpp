// `clickpipe run`: the pipes of one or more config files as a foreground service over one file
// store.
#pragma once

#include <optional>
#include <string>

#include "config.hpp"
#include "logging.hpp"

namespace clickpipe::cli {

struct RunOptions {
  LogOptions log;
  std::optional<std::string> listen;  // HOST:PORT of the HTTP API; none: no API
  bool listen_remote = false;         // a HOST that is not loopback is allowed (with a token)
};

// Creates the pipes the first time, resumes them otherwise, answers commands through the control
// channel and the HTTP API, logs transitions and progress, and publishes each pipe's status every
// second, until SIGINT or SIGTERM; then stops them gracefully. Returns the exit status.
int run(const CliConfig& cfg, const RunOptions& options);

}  // namespace clickpipe::cli
