// Where the servers are, for the tests and the benchmarks (header-only, no test framework):
// ./scripts/test.sh and the bench/*.sh scripts start PostgreSQL and ClickHouse on 127.0.0.1 and
// export CLICKPIPE_PG_{HOST,PORT,DATABASE,USER,PASSWORD} and
// CLICKPIPE_CH_{HOST,PORT,HTTPS_PORT,USER,PASSWORD}, CLICKPIPE_TLS_{CA,OTHER_CA} (scripts/tls.sh),
// and CLICKPIPE_CH_URL=chdb://DIR when the destination is ClickHouse embedded. A variable that is
// not set throws InvalidField naming it: a test that needs a server fails, never skips, and a
// benchmark stops.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/error.hpp"
#include "clickpipe/pg_to_clickhouse/executors.hpp"
#include "clickpipe/postgres/connection.hpp"

namespace clickpipe::test {

inline std::string server_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    throw InvalidField(name,
                       "environment variable is not set (./scripts/test.sh and the "
                       "bench/*.sh scripts set it)");
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

// The destination under test: CLICKPIPE_CH_URL when set (chdb://DIR: ClickHouse 26 embedded, no
// credentials; the release run of ./scripts/test.sh), else 18.16 over HTTP.
inline clickhouse::ClientSettings clickhouse_settings() {
  const char* url = std::getenv("CLICKPIPE_CH_URL");
  if (!url || !*url) return http_clickhouse_settings();
  clickhouse::ClientSettings s;
  s.url = url;
  if (!std::string_view(url).starts_with("chdb://")) {
    s.user = server_env("CLICKPIPE_CH_USER");
    s.password = server_env("CLICKPIPE_CH_PASSWORD");
  }
  return s;
}

inline bool embedded_clickhouse() { return clickhouse_settings().url.starts_with("chdb://"); }

// The CA that signed both servers' certificate (made for DNS name localhost only, so 127.0.0.1
// does not match it), and an unrelated CA with the same name that signed nothing they use.
inline std::string tls_ca() { return server_env("CLICKPIPE_TLS_CA"); }
inline std::string tls_other_ca() { return server_env("CLICKPIPE_TLS_OTHER_CA"); }

// The test PostgreSQL over TLS with every check on: by the name in its certificate, with its CA.
inline postgres::ConnectionSettings postgres_tls_settings() {
  postgres::ConnectionSettings s = postgres_settings();
  s.host = "localhost";
  s.sslmode = "verify-full";
  s.ca_file = tls_ca();
  return s;
}

// 18.16 over HTTPS, by the name in its certificate, with its CA (verify_peer stays on).
inline clickhouse::ClientSettings https_clickhouse_settings() {
  clickhouse::ClientSettings s = http_clickhouse_settings();
  s.url = "https://localhost:" + server_env("CLICKPIPE_CH_HTTPS_PORT");
  s.ca_file = tls_ca();
  return s;
}

// The reference executors' config for these servers.
inline pg_to_clickhouse::Config config_from_environment(const std::string& pipe_id) {
  pg_to_clickhouse::Config c;
  c.source = postgres_settings();
  c.destination = clickhouse_settings();
  c.pipe_id = pipe_id;
  return c;
}

}  // namespace clickpipe::test
