// A ClickHouse client over a transport chosen by the URL's scheme: HTTP (libcurl; one connection
// kept alive, credentials in headers) or chdb:// (ClickHouse embedded in this process through
// libchdb.so, loaded at run time). Errors are classified from ClickHouse's exception codes.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "clickpipe/clickhouse/features.hpp"
#include "clickpipe/clickhouse/transport.hpp"
#include "clickpipe/error.hpp"

namespace clickpipe::clickhouse {

struct ClientSettings {
  // http://host:port or https://host:port: a server. chdb:///abs/dir or chdb://rel/dir: a
  // ClickHouse embedded in this process storing its data in that directory (created if missing;
  // one directory per process; user and password are not used).
  std::string url = "http://127.0.0.1:8123";
  std::string user = "default";
  std::string password;  // sent in a header, never in the URL, never in a message
  std::string database = "default";
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds timeout{300000};
  std::string ca_file;      // TLS: a CA bundle to trust (passed to libcurl)
  bool verify_peer = true;  // TLS: verify the server's certificate
  // chdb://: the path of libchdb.so (npm package @chdb/lib-linux-x64-gnu). Empty: the
  // environment variable CLICKPIPE_CHDB_LIBRARY, then the dynamic loader's search.
  std::string chdb_library;
  // Wraps every transport a client opens with these settings (tests, instrumentation).
  std::function<std::unique_ptr<Transport>(std::unique_ptr<Transport>)> wrap;

  std::string describe() const;  // url, user and database; never the password
};

// `code` is ClickHouse's exception code (0 when the failure was not ClickHouse's: connection,
// timeout, a proxy). Transient: the server could not be reached or was busy; fatal: the request
// itself is wrong (syntax, types, unknown tables) and retrying cannot help.
class ClickHouseTransientError : public TransientError {
 public:
  ClickHouseTransientError(const std::string& m, int code) : TransientError(m), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};
class ClickHouseFatalError : public FatalError {
 public:
  ClickHouseFatalError(const std::string& m, int code) : FatalError(m), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

bool is_transient_code(int code);
// Throws the one of the two errors that `code` calls for.
[[noreturn]] void throw_error(const std::string& message, int code);
// ClickHouse's exception code in an error text ("Code: 62, e.displayText() = DB::..." from old
// servers, "Code: 62. DB::Exception: ..." from newer ones); 0 when there is none.
int exception_code(std::string_view text);

// Not thread-safe: one client per thread (each keeps its own connection).
class Client {
 public:
  // Opens the transport for `settings.url`; throws InvalidField for an unknown scheme and
  // ClickHouseFatalError when the embedded engine cannot be loaded.
  explicit Client(ClientSettings settings);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Runs one statement and returns what it printed; throws a classified error.
  std::string query(std::string_view sql);
  // Runs `sql` (a SELECT) with `table` sent next to it; errors as for query().
  std::string query(std::string_view sql, const ExternalTable& table);
  // Inserts TabSeparated `rows` with `insert_sql` ("INSERT INTO t (a, b)", no FORMAT), with the
  // server's insert settings pinned (Features::insert_settings).
  void insert(std::string_view insert_sql, std::string_view rows);
  // The same with the body streamed from `produce` (see Transport::insert); what `produce`
  // throws is rethrown.
  void insert_streamed(std::string_view insert_sql, const Producer& produce);
  // The server's version and what clickpipe uses of it, asked once and remembered.
  ServerVersion version();
  Features features() { return Features::of(version()); }
  const ClientSettings& settings() const noexcept { return settings_; }

 private:
  ClientSettings settings_;
  std::unique_ptr<Transport> transport_;
  std::optional<ServerVersion> version_;
};

}  // namespace clickpipe::clickhouse
