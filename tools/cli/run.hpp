// `clickpipe run`: one pipe as a foreground service over a file store.
#pragma once

#include "config.hpp"

namespace clickpipe::cli {

// Creates the pipe the first time, resumes it otherwise, answers commands through the control
// channel and prints transitions and progress until SIGINT or SIGTERM, then stops it gracefully.
// Returns the exit status.
int run(const CliConfig& cfg);

}  // namespace clickpipe::cli
