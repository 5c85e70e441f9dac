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

// Debian's ClickHouse 18.16 over HTTP, whichever destination the run tests.
inline clickhouse::ClientSettings http_clickhouse_settings() {
  clickhouse::ClientSettings s;
  s.url = "http://" + server_env("CLICKPIPE_CH_HOST") + ":" + server_env("CLICKPIPE_CH_PORT");
  s.user = server_env("CLICKPIPE_CH_USER");
  s.password = server_env("CLICKPIPE_CH_PASSWORD");
  return s;
}

// The destination under test: 18.16 over HTTP, or, when CLICKPIPE_CH_URL is chdb://DIR,
// ClickHouse 26 embedded (the release run of ./scripts/test.sh).
inline clickhouse::ClientSettings clickhouse_settings() {
  const char* url = std::getenv("CLICKPIPE_CH_URL");
  if (url && std::string(url).rfind("chdb://", 0) == 0) {
    clickhouse::ClientSettings s;
    s.url = url;
    return s;
  }
  return http_clickhouse_settings();
}

inline bool embedded_clickhouse() { return clickhouse_settings().url.rfind("chdb://", 0) == 0; }

}  // namespace clickpipe::test
