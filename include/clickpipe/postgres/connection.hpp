// libpq connections and results, RAII, with classified errors and no password in any message.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clickpipe/error.hpp"

struct pg_conn;
struct pg_result;

namespace clickpipe::postgres {

// Where and how to connect. Either keywords or a libpq connection string (keywords set here win
// over the string's). The password is only ever handed to libpq.
struct ConnectionSettings {
  std::string conninfo;  // e.g. "postgresql://user@host:5432/db?sslmode=require"
  std::string host;
  std::string port;
  std::string dbname;
  std::string user;
  std::string password;
  // disable, require, verify-ca or verify-full; empty: chosen by effective_sslmode (below).
  std::string sslmode;
  std::string ca_file;  // libpq's sslrootcert: the CA that signed the server's certificate
  std::chrono::seconds connect_timeout{10};
  std::string application_name = "clickpipe";
  // When above 0: TCP keepalives and libpq's tcp_user_timeout, so a connection to a server that
  // vanished (a failover, a blackholed network) fails within about this long instead of the
  // kernel's quarter of an hour. 0: the system's defaults.
  std::chrono::milliseconds tcp_user_timeout{0};

  // "host=127.0.0.1 port=5432 dbname=app user=repl sslmode=require": for messages; never the
  // password.
  std::string describe() const;
};

// The sslmode a connection uses, from the keyword, else the connection string, else PGSSLMODE:
// - none given: "" (libpq's default) when every host is on loopback (127.0.0.0/8, ::1,
//   localhost, a Unix socket, or no host at all); otherwise "verify-full" when a CA file is set
//   (ca_file, sslrootcert, PGSSLROOTCERT), else "require". A remote source never falls back to
//   plaintext unless told to.
// - "allow" or "prefer" for a host off loopback: refused, as they fall back to plaintext without
//   a word. "disable" is taken: plaintext chosen on purpose.
// Throws InvalidField("source.sslmode", ...) for those and for unknown modes. Connection::open
// applies it; a config check may call it to fail early.
std::string effective_sslmode(const ConnectionSettings& settings);

// A PostgreSQL error: the SQLSTATE decides whether retrying can help (connection trouble,
// serialization failures, lack of resources, a server shutting down) or not.
class PgTransientError : public TransientError {
 public:
  PgTransientError(const std::string& m, std::string sqlstate)
      : TransientError(m), sqlstate_(std::move(sqlstate)) {}
  const std::string& sqlstate() const noexcept { return sqlstate_; }

 private:
  std::string sqlstate_;
};
class PgFatalError : public FatalError {
 public:
  PgFatalError(const std::string& m, std::string sqlstate)
      : FatalError(m), sqlstate_(std::move(sqlstate)) {}
  const std::string& sqlstate() const noexcept { return sqlstate_; }

 private:
  std::string sqlstate_;
};

// Throws the right one of the two for `sqlstate` ("" when the server sent none).
[[noreturn]] void throw_pg_error(const std::string& message, const std::string& sqlstate);
bool is_transient_sqlstate(std::string_view sqlstate);

class Result {
 public:
  explicit Result(pg_result* r) noexcept : r_(r) {}
  Result(Result&&) noexcept;
  Result& operator=(Result&&) noexcept;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  ~Result();

  int rows() const noexcept;
  int columns() const noexcept;
  bool is_null(int row, int col) const noexcept;
  std::string_view value(int row, int col) const noexcept;  // "" for NULL
  std::optional<std::string> get(int row, int col) const;
  pg_result* raw() const noexcept { return r_; }

 private:
  pg_result* r_;
};

class Connection {
 public:
  // Connects (a replication connection when `replication`: walsender commands only), with the
  // sslmode effective_sslmode picks. Throws PgTransientError when the server cannot be reached,
  // PgFatalError when it refuses us or its certificate does not pass, InvalidField for a refused
  // sslmode or a connect timeout that is not positive.
  static Connection open(const ConnectionSettings& settings, bool replication = false);

  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Runs SQL; throws a classified error naming what failed.
  Result exec(std::string_view sql);
  Result exec(std::string_view sql, const std::vector<std::optional<std::string>>& params);
  // "quoted" identifier / 'quoted' literal, escaped by libpq for this connection's encoding.
  std::string identifier(std::string_view name) const;
  std::string literal(std::string_view text) const;
  int server_version() const noexcept;  // e.g. 150018
  pg_conn* raw() const noexcept { return c_; }
  const ConnectionSettings& settings() const noexcept { return settings_; }
  // The last libpq error, with the password (if it ever appears) replaced by ***.
  std::string error_message() const;

 private:
  Connection(pg_conn* c, ConnectionSettings settings) noexcept
      : c_(c), settings_(std::move(settings)) {}
  pg_conn* c_;
  ConnectionSettings settings_;
};

// One round trip (SELECT 1): the session answers queries, not only the handshake.
void ping(Connection& conn);

// The session settings every connection pins through libpq's `options` (the replication
// connection too, whose walsender prints the values pgoutput sends), after PGOPTIONS and any
// options of the connection string: values arrive in one form whatever the server's defaults
// are. client_encoding is pinned to UTF8 as well.
//   TimeZone=UTC, DateStyle=ISO,MDY, IntervalStyle=postgres, bytea_output=hex,
//   extra_float_digits=3 (shortest exact floats), lc_monetary=C
std::string_view pinned_options() noexcept;

// Checks that the server took the pins (it reports TimeZone, DateStyle and IntervalStyle) and,
// where something on the way dropped the startup options, sets them in the session; throws
// PgFatalError when the session still does not keep them. Connection::open calls it.
void ensure_pinned_settings(Connection& conn);

// Replaces every occurrence of `secret` in `text` with "***".
std::string redact(std::string text, const std::string& secret);

}  // namespace clickpipe::postgres
