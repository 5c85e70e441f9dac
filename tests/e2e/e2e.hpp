// What the end-to-end tests share: the reference executors' config for the test servers, and a
// started pipe over one table with an in-memory store.
#pragma once

#include <spdlog/logger.h>

#include <memory>
#include <string>
#include <vector>

#include "../servers.hpp"
#include "clickpipe/pg_to_clickhouse/executors.hpp"
#include "clickpipe/store/memory_store.hpp"

namespace clickpipe::test {

inline pg_to_clickhouse::Config config(const std::string& pipe_id) {
  return config_from_environment(pipe_id);
}

inline PipeOptions pipe_options(const pg_to_clickhouse::Config& cfg,
                                std::shared_ptr<StateStore> store = nullptr) {
  PipeOptions o;
  o.logger = std::make_shared<spdlog::logger>(cfg.pipe_id);
  o.store = store ? std::move(store) : std::make_shared<MemoryStore>();
  return o;
}

inline std::unique_ptr<Pipe> start_pipe(const pg_to_clickhouse::Config& cfg,
                                        const std::vector<std::string>& tables,
                                        const Settings& settings,
                                        std::shared_ptr<StateStore> store = nullptr) {
  std::vector<TableRef> refs;
  for (const auto& t : tables) refs.push_back(TableRef{"public", t});
  auto pipe = std::make_unique<Pipe>(
      PipeConfig{cfg.pipe_id, Mode::InitialLoadAndCdc, refs, settings},
      pg_to_clickhouse::make_executors(cfg), pipe_options(cfg, std::move(store)));
  pipe->start();
  return pipe;
}

inline std::unique_ptr<Pipe> start_pipe(const pg_to_clickhouse::Config& cfg,
                                        const std::string& table, const Settings& settings) {
  return start_pipe(cfg, std::vector<std::string>{table}, settings);
}

}  // namespace clickpipe::test
