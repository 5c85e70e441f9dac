// ClickHouse over its HTTP interface (libcurl): one connection kept alive, credentials in headers,
// errors classified from ClickHouse's exception codes.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "clickpipe/error.hpp"

namespace clickpipe::clickhouse {

struct ClientSettings {
  std::string url = "http://127.0.0.1:8123";  // scheme, host and port; https:// for TLS
  std::string user = "default";
  std::string password;  // sent in a header, never in the URL, never in a message
  std::string database = "default";
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds timeout{300000};
  std::string ca_file;      // TLS: a CA bundle to trust (passed to libcurl)
  bool verify_peer = true;  // TLS: verify the server's certificate

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

struct ServerVersion {
  int major = 0;
  int minor = 0;
  // DateTime64 and Date32 (ClickHouse 21.x and later).
  bool has_datetime64() const noexcept { return major > 20 || (major == 20 && minor >= 1); }
  bool has_date32() const noexcept { return major > 21 || (major == 21 && minor >= 9); }
};

// A table sent along with a query (ClickHouse's "external data"): the query reads it by `name`.
// Columns are named and typed in `structure` ("a String, b UInt64": names and types must not
// contain spaces or commas, as ClickHouse splits the structure on them).
struct ExternalTable {
  std::string name;
  std::string structure;
  std::string tsv;  // the rows, TabSeparated
};

// Not thread-safe: one client per thread (each keeps its own connection).
class Client {
 public:
  explicit Client(ClientSettings settings);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Runs `sql` (the query goes in the body; `data`, when given, follows it on a new line as for
  // INSERT ... FORMAT). Returns the response body; throws a classified error.
  std::string query(std::string_view sql, std::string_view data = {});
  // Runs `sql` (a SELECT) with `table` uploaded next to it; errors as for query().
  std::string query(std::string_view sql, const ExternalTable& table);
  // Runs `sql` (an INSERT ... FORMAT TabSeparated) with its data streamed: `produce` appends
  // the next piece of the body (whole rows) to its argument and returns false once that piece
  // was the last. Anything `produce` throws ends the body with a line ClickHouse cannot parse, so
  // the insert is refused rather than stored in part, and is rethrown here; other errors as for
  // query().
  using Producer = std::function<bool(std::string& piece)>;
  std::string query_streamed(std::string_view sql, const Producer& produce);
  // The server's version, asked once and remembered.
  ServerVersion version();
  const ClientSettings& settings() const noexcept { return settings_; }

 private:
  struct Body;
  std::string perform(const std::string& url_params, const Body& body);

  ClientSettings settings_;
  void* curl_;
  std::optional<ServerVersion> version_;
};

}  // namespace clickpipe::clickhouse
