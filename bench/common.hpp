// Small pieces every benchmark program uses.
#pragma once

#include <fmt/format.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/null_sink.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#include "clickpipe/table.hpp"

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

// A logger that drops everything: benchmarks measure the work, not the logging.
inline std::shared_ptr<spdlog::logger> quiet() {
  static auto logger =
      std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
  return logger;
}

// The table the in-memory benchmarks use: id int8 (the key) and v text.
inline TableDefinition two_column_table(const std::string& name) {
  return {TableRef{"public", name},
          {Column{"id", "int8", 20, -1, false, 0}, Column{"v", "text", 25, -1, true, 0}},
          {"id"}};
}

}  // namespace clickpipe::bench
