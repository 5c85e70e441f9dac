// A ClickHouse client over a transport chosen by the URL's scheme: HTTP (libcurl; one connection
// kept alive, credentials in headers) or chdb:// (ClickHouse embedded in this process through
// libchdb.so, loaded at run time). Errors are classified from ClickHouse's exception codes; their
// messages keep the code, the exception's first clause and the kind of statement, never the rows,
// the query or the password.
#pragma once

#include <chrono>
#include <cstddef>
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
  // one directory per process; user and password are not used). No user info (user:pass@), no
  // query string or fragment: credentials go in `user` and `password` (see validate()).
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
  // The largest answer a query may return (its body, held in memory). A larger one is refused
  // with ClickHouseFatalError naming this limit, instead of exhausting memory.
  std::size_t max_response_bytes = std::size_t{1} << 30;
  // Wraps every transport a client opens with these settings (tests, instrumentation).
  std::function<std::unique_ptr<Transport>(std::unique_ptr<Transport>)> wrap;

  // For messages: the URL without user info, query or fragment, the user and the database;
  // never the password.
  std::string describe() const;
  // Throws InvalidField("destination.url", ...) for a scheme other than http://, https:// and
  // chdb://, a URL carrying user info (it would hold a password) or a query string or fragment;
  // the message never repeats the URL's secret parts. Client's constructor calls it.
  void validate() const;
};

// Of an error response, only this much is read: enough for any message, and a server cannot
// make the client hold more.
inline constexpr std::size_t kMaxErrorBodyBytes = 64 * 1024;
// The most a message keeps of a server's error text (error_summary()).
inline constexpr std::size_t kMaxServerErrorBytes = 300;

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
// servers, "Code: 62. DB::Exception: ..." from newer ones), looked for in its first
// kMaxErrorBodyBytes; 0 when there is none.
int exception_code(std::string_view text);
// What a message may keep of a server's error text: "Code: 27. Cannot parse input
// (CANNOT_PARSE_INPUT_ASSERTION_FAILED)": the code, the exception's first clause (up to its first
// ": ") without quoted parts, and the exception's name where the server gives one. Rows echoed
// back ("before: 'value'"), the statement (`sql`, when the server repeats it) and anything after
// the first clause are left out; at most kMaxServerErrorBytes.
std::string error_summary(std::string_view server_text, std::string_view sql = {});
// The kind of a statement, for messages: "INSERT", "SELECT", "CREATE", ..., or "statement" when
// its first word is not a known one. Nothing else of the statement is kept.
std::string_view statement_kind(std::string_view sql);
// ClickHouse's codes for a refused login (unknown user, wrong or missing password).
bool is_authentication_code(int code);

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
