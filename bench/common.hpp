// Small pieces every benchmark program uses.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <string>

namespace clickpipe::bench {

using Steady = std::chrono::steady_clock;

inline double since(Steady::time_point t) {
  return std::chrono::duration<double>(Steady::now() - t).count();
}

// An environment variable the bench's script sets; exits with a hint when it is missing.
inline std::string need(const char* name, const char* script) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    fmt::print(stderr, "{} is not set; run {}\n", name, script);
    std::exit(2);
  }
  return v;
}

}  // namespace clickpipe::bench
