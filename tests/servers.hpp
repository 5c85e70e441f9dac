// Where the test servers are: ./scripts/test.sh starts PostgreSQL and ClickHouse on 127.0.0.1
// and exports CLICKPIPE_PG_* and CLICKPIPE_CH_*. A missing variable fails the test: tests that
// need a server never skip.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/postgres/connection.hpp"

namespace clickpipe::test {

inline std::string server_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    ADD_FAILURE() << name << " is not set: run the tests through ./scripts/test.sh";
    return {};
  }
  return v;
}

inline postgres::ConnectionSettings postgres_settings() {
  postgres::ConnectionSettings s;
  s.host = server_env("CLICKPIPE_PG_HOST");
  s.port = server_env("CLICKPIPE_PG_PORT");
  s.dbname = server_env("CLICKPIPE_PG_DATABASE");
  s.user = server_env("CLICKPIPE_PG_USER");
  s.password = server_env("CLICKPIPE_PG_PASSWORD");
  return s;
}

inline clickhouse::ClientSettings clickhouse_settings() {
  clickhouse::ClientSettings s;
  s.url = "http://" + server_env("CLICKPIPE_CH_HOST") + ":" + server_env("CLICKPIPE_CH_PORT");
  s.user = server_env("CLICKPIPE_CH_USER");
  s.password = server_env("CLICKPIPE_CH_PASSWORD");
  return s;
}

}  // namespace clickpipe::test
