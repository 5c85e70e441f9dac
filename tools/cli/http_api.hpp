// The opt-in HTTP API of `clickpipe run` (--listen HOST:PORT), in the shape of the ClickPipes API:
//
//   GET  /healthz            {"status": "ok", "pipes": N}
//   GET  /pipes              {"pipes": [status document, ...], "broken": [{"name", "reason"}]}
//   GET  /pipes/{id}         one status document; 404 {"error": "no pipe 'x'"}
//   POST /pipes/{id}/state   a command object (see execute_command), answered with its result
//   GET  /metrics            Prometheus text format 0.0.4
//
// Anything else is 404, a known path with the wrong method 405. Every answer but /metrics is
// JSON. GETs are open; when a token is set, every POST needs `Authorization: Bearer <token>`.
// Only loopback hosts are served unless the operator allows remote ones, and then only with a
// token: whoever reaches the port could otherwise pause, resync or delete pipes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "clickpipe/runtime/pipe_service.hpp"

namespace spdlog {
class logger;
}

namespace clickpipe::cli {

class Telemetry;

// The largest request body read; a larger one is answered 413.
inline constexpr std::size_t kMaxHttpBodyBytes = 64 * 1024;

struct HttpOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;            // 0: any free port (tests)
  bool allow_remote = false;         // --listen-remote
  std::optional<std::string> token;  // CLICKPIPE_API_TOKEN
  // Carries out a command for a pipe this process does not run (a cluster worker sends it to the
  // pipe's owner through the store); returns the result as execute_command does. Default: none,
  // so such a pipe is 404.
  std::function<nlohmann::json(const std::string& id, const nlohmann::json& body)> forward;
};

// Whether `host` names this machine's loopback interface only: 127.0.0.0/8, ::1 (also as an
// IPv4-mapped 127.x address) or "localhost".
bool is_loopback_host(const std::string& host);

// The value of --listen, "HOST:PORT" or "[IPV6]:PORT". Throws InvalidField("--listen", why) for
// a malformed value, a port outside 1..65535, and a host that is not loopback unless
// `allow_remote`, and with it unless a token is set. Throws InvalidField("CLICKPIPE_API_TOKEN",
// why) for a token that is set but empty.
HttpOptions parse_listen(const std::string& value, bool allow_remote,
                         std::optional<std::string> token);

// Serves the API for `service` on a thread of its own and a few workers; both `service` and
// `telemetry` must outlive it. GETs that show status refresh `telemetry` from the service first.
// POST commands are logged (event `command`) when a logger is given.
class HttpApi {
 public:
  // Listening when it returns. Throws std::runtime_error naming HOST:PORT when it cannot bind,
  // and InvalidField for an empty token.
  HttpApi(PipeService& service, Telemetry& telemetry, HttpOptions options,
          std::shared_ptr<spdlog::logger> log);
  // Stops listening, lets requests in progress finish and joins the threads.
  ~HttpApi();
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  std::uint16_t port() const;  // the bound port

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clickpipe::cli
