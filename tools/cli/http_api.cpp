#include "http_api.hpp"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <spdlog/logger.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

#include "clickpipe/error.hpp"
#include "clickpipe/status.hpp"
#include "commands.hpp"
#include "logging.hpp"
#include "telemetry.hpp"

namespace clickpipe::cli {

using nlohmann::json;

namespace {

// Enough for a scraper, a health check and an operator at once; a slow client holds a worker for
// at most the timeouts below.
constexpr std::size_t kWorkers = 4;
constexpr time_t kTimeoutSeconds = 5;

std::string host_port(const std::string& host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// Status documents carry error text from servers: invalid UTF-8 must not make the answer fail.
std::string dump(const json& j) { return json_text(j) + "\n"; }

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

// The methods a path answers to ("GET, HEAD" or "POST"); nullptr for a path that is no route.
const char* allowed_methods(std::string_view path) {
  if (path == "/healthz" || path == "/pipes" || path == "/metrics") return "GET, HEAD";
  constexpr std::string_view prefix = "/pipes/";
  if (!path.starts_with(prefix)) return nullptr;
  path.remove_prefix(prefix.size());
  const std::size_t slash = path.find('/');
  if (slash == std::string_view::npos) return is_pipe_id(path) ? "GET, HEAD" : nullptr;
  return is_pipe_id(path.substr(0, slash)) && path.substr(slash) == "/state" ? "POST" : nullptr;
}

// 405 for a route asked with a method it does not take, 404 for anything else.
void not_routed(const httplib::Request& req, httplib::Response& res) {
  if (const char* allow = allowed_methods(req.path)) {
    res.set_header("Allow", allow);
    reply(res, 405, {{"error", req.method + " is not allowed here; use " + allow}});
  } else {
    reply(res, 404, {{"error", "not found"}});
  }
}

struct Body {
  std::string text;
  bool complete = false;
  bool too_large = false;
};

// Reads the body up to kMaxHttpBodyBytes, whatever its framing or encoding (the library's own
// limit covers only a declared Content-Length, not chunks or a compressed body). What is over the
// limit is read and dropped up to kDrainBytes, so that the client reads the 413 rather than a
// connection reset.
constexpr std::size_t kDrainBytes = 1024 * 1024;
Body read_body(const httplib::ContentReader& reader, const httplib::Response& res) {
  Body body;
  std::size_t dropped = 0;
  try {
    body.complete = reader([&](const char* data, std::size_t size) {
      if (!body.too_large && size <= kMaxHttpBodyBytes - body.text.size()) {
        body.text.append(data, size);
        return true;
      }
      body.too_large = true;
      body.text.clear();
      dropped += size;
      return dropped <= kDrainBytes;
    });
  } catch (const std::exception&) {
    // A multipart body: the library calls part receivers that a plain read does not give.
    body.complete = false;
  }
  if (res.status == 413) body.too_large = true;  // the declared length was over the limit
  return body;
}

// Equal without telling how much of `presented` matched: the time taken depends on the length
// of `presented` only. `expected` is not empty.
bool same_secret(std::string_view presented, std::string_view expected) {
  volatile unsigned char diff = presented.size() == expected.size() ? 0 : 1;
  for (std::size_t i = 0; i < presented.size(); ++i) {
    diff = diff | static_cast<unsigned char>(presented[i] ^ expected[i % expected.size()]);
  }
  return diff == 0;
}

// A command name as the log may show it; anything else the sender wrote stays out of the log.
std::string loggable_command(const json& body) {
  if (!body.is_object()) return "";
  auto it = body.find("command");
  if (it == body.end() || !it->is_string()) return "";
  const std::string& name = it->get_ref<const std::string&>();
  const bool plain =
      !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || c == '-' || c == '_';
      });
  return plain ? name : "";
}

void check_token(const std::optional<std::string>& token) {
  if (token && token->empty()) {
    throw InvalidField("CLICKPIPE_API_TOKEN",
                       "is set but empty: set it to a secret, or unset it to accept commands "
                       "without one on loopback");
  }
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  std::string lower = host;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

HttpOptions parse_listen(const std::string& value, bool allow_remote,
                         std::optional<std::string> token) {
  const std::string shown = "'" + capped_error(value, 200) + "'";
  auto bad = [&](const std::string& why) {
    return InvalidField(
        "--listen", shown + " " + why + " (expected HOST:PORT, e.g. 127.0.0.1:9187 or [::1]:9187)");
  };
  std::string host;
  std::string port_text;
  if (!value.empty() && value.front() == '[') {
    const std::size_t close = value.find(']');
    if (close == std::string::npos || close + 1 >= value.size() || value[close + 1] != ':') {
      throw bad("is not [IPV6]:PORT");
    }
    host = value.substr(1, close - 1);
    port_text = value.substr(close + 2);
    in6_addr v6{};
    if (::inet_pton(AF_INET6, host.c_str(), &v6) != 1) throw bad("has no IPv6 address in [ ]");
  } else {
    const std::size_t colon = value.rfind(':');
    if (colon == std::string::npos) throw bad("has no port");
    host = value.substr(0, colon);
    port_text = value.substr(colon + 1);
    if (host.find(':') != std::string::npos) throw bad("has an IPv6 address outside [ ]");
    if (host.empty()) throw bad("has no host");
    const bool name_chars = std::all_of(host.begin(), host.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '.' || c == '-';
    });
    if (!name_chars) throw bad("has a host that is neither an address nor a name");
  }
  const bool digits = !port_text.empty() && port_text.size() <= 5 &&
                      std::all_of(port_text.begin(), port_text.end(),
                                  [](unsigned char c) { return std::isdigit(c); });
  const long port = digits ? std::stol(port_text) : 0;
  if (port < 1 || port > 65535) throw bad("has no port from 1 to 65535");

  check_token(token);
  if (!is_loopback_host(host)) {
    if (!allow_remote) {
      throw InvalidField("--listen", host +
                                         " is not a loopback address, and commands could be "
                                         "sent by anyone who can reach the port: add "
                                         "--listen-remote and set CLICKPIPE_API_TOKEN to "
                                         "serve it anyway");
    }
    if (!token) {
      throw InvalidField("--listen",
                         "--listen-remote needs CLICKPIPE_API_TOKEN set: without a "
                         "token, commands could be sent by anyone who can reach " +
                             host_port(host, static_cast<std::uint16_t>(port)));
    }
  }
  HttpOptions options;
  options.host = std::move(host);
  options.port = static_cast<std::uint16_t>(port);
  options.allow_remote = allow_remote;
  options.token = std::move(token);
  return options;
}

struct HttpApi::Impl {
  Impl(PipeService& service, Telemetry& telemetry, HttpOptions options,
       std::shared_ptr<spdlog::logger> log)
      : service(service), telemetry(telemetry), options(std::move(options)), log(std::move(log)) {}

  void routes();
  void start();

  // Takes a fresh sample of the service, then reads under the same lock, so that what is shown
  // is that sample even when requests come in at once.
  template <typename Read>
  auto fresh(Read read) {
    std::lock_guard lk(telemetry_mu);
    telemetry.refresh(service.statuses(), service.broken());
    return read();
  }

  // Whether the service runs pipe `id`. Through statuses(), not get(): get() may forget
  // terminated pipes, which only the commands' lock may do (see reap_terminated).
  bool runs(const std::string& id) {
    for (const PipeStatus& s : service.statuses()) {
      if (s.id == id) return true;
    }
    return false;
  }

  bool authorized(const httplib::Request& req) const {
    if (!options.token) return true;
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view scheme = "bearer ";
    if (header.size() < scheme.size()) return false;
    for (std::size_t i = 0; i < scheme.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return false;
    }
    std::string_view presented(header);
    presented.remove_prefix(scheme.size());
    while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
    return same_secret(presented, *options.token);
  }

  void unauthorized(httplib::Response& res) {
    res.set_header("WWW-Authenticate", "Bearer realm=\"clickpipe\"");
    reply(res, 401,
          command_outcome("unauthorized",
                          "this API needs the header 'Authorization: Bearer <token>' "
                          "with the token of CLICKPIPE_API_TOKEN"));
  }

  void log_command(spdlog::level::level_enum level, const std::string& pipe,
                   const std::string& command, const json& result) noexcept {
    if (!log) return;
    try {
      const std::string status = result.value("status", std::string("invalid"));
      json fields = {{"source", "http"}, {"result", status}};
      if (!command.empty()) fields["command"] = command;
      if (auto it = result.find("state"); it != result.end()) fields["state"] = *it;
      const std::string shown = command.empty() ? "command" : command;
      log_event(*log, level, pipe, "command", shown + " from http: " + status, fields);
    } catch (...) {
      // A log that cannot be written must not turn a carried-out command into an error.
    }
  }

  void command(const httplib::Request& req, httplib::Response& res,
               const httplib::ContentReader& reader);

  PipeService& service;
  Telemetry& telemetry;
  const HttpOptions options;
  const std::shared_ptr<spdlog::logger> log;
  std::mutex telemetry_mu;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> exited{false};
  std::uint16_t port = 0;
};

void HttpApi::Impl::command(const httplib::Request& req, httplib::Response& res,
                            const httplib::ContentReader& reader) {
  const std::string id = req.matches[1];
  // Read first even when the answer is known: a body left unread can reset the connection
  // before the client has read the answer.
  const Body body = read_body(reader, res);
  if (!authorized(req)) {
    log_command(spdlog::level::warn, id, "", command_outcome("unauthorized", ""));
    return unauthorized(res);
  }
  json result;
  json parsed;
  // A web page in a browser on this machine may POST here too; it cannot send application/json
  // without a preflight this server never answers, and it always names its Origin. Neither is
  // asked of curl or a script, so both close that door and cost an operator nothing.
  // The media type alone, compared as the RFC says: case-insensitively, parameters aside.
  std::string type = req.get_header_value("Content-Type");
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool json_type = type == "application/json";
  if (req.has_header("Origin")) {
    result =
        command_outcome("invalid", "requests from a web page (with an Origin header) are refused");
    reply(res, 403, result);
  } else if (!json_type) {
    result = command_outcome("invalid", "the body must be sent as Content-Type: application/json");
    reply(res, 415, result);
  } else if (body.too_large) {
    result = command_outcome("invalid",
                             "the body is over " + std::to_string(kMaxHttpBodyBytes) + " bytes");
    reply(res, 413, result);
  } else if (!body.complete) {
    result = command_outcome("invalid", "the body could not be read");
    reply(res, 400, result);
  } else if (!runs(id) && !options.forward) {
    result = command_outcome("not_found", "no pipe '" + capped_error(id, 64) + "'");
    reply(res, 404, result);
  } else {
    try {
      parsed = json::parse(body.text);
      if (!parsed.is_object()) {
        result = command_outcome("invalid",
                                 R"(the body must be a JSON object, e.g. {"command": "pause"})");
      }
    } catch (const json::parse_error& e) {
      result = command_outcome(
          "invalid", "the body is not valid JSON (at byte " + std::to_string(e.byte) + ")");
    }
    // A pipe another worker runs: the command goes through the store (and waits for its answer).
    if (result.is_null()) {
      result = runs(id) ? execute_command(service, id, parsed) : options.forward(id, parsed);
    }
    reply(res, http_status_for(result.value("status", std::string("invalid"))), result);
  }
  log_command(spdlog::level::info, id, loggable_command(parsed), result);
}

void HttpApi::Impl::routes() {
  using httplib::Request;
  using httplib::Response;
  const std::string id = "([a-z0-9_]{1,53})";  // as is_pipe_id; anything else is no route

  server.Get("/healthz", [this](const Request&, Response& res) {
    const std::size_t pipes = fresh([&] { return telemetry.pipe_count(); });
    reply(res, 200, {{"status", "ok"}, {"pipes", pipes}});
  });
  server.Get("/pipes", [this](const Request&, Response& res) {
    reply(res, 200, fresh([&] { return telemetry.pipes_json(); }));
  });
  server.Get("/pipes/" + id, [this](const Request& req, Response& res) {
    const std::string pipe = req.matches[1];
    const std::optional<json> doc = fresh([&] { return telemetry.pipe_json(pipe); });
    if (doc) {
      reply(res, 200, *doc);
    } else {
      reply(res, 404, {{"error", "no pipe '" + pipe + "'"}});
    }
  });
  server.Get("/metrics", [this](const Request&, Response& res) {
    res.status = 200;
    res.set_content(fresh([&] { return telemetry.metrics_text(); }), "text/plain; version=0.0.4");
  });
  server.Get(".*", not_routed);

  server.Post("/pipes/" + id + "/state",
              [this](const Request& req, Response& res, const httplib::ContentReader& reader) {
                command(req, res, reader);
              });
  // Every POST needs the token, even one to no route.
  server.Post(".*", [this](const Request& req, Response& res, const httplib::ContentReader& r) {
    read_body(r, res);
    if (!authorized(req)) return unauthorized(res);
    not_routed(req, res);
  });
  auto drain_then_not_routed = [](const Request& req, Response& res,
                                  const httplib::ContentReader& r) {
    read_body(r, res);
    not_routed(req, res);
  };
  server.Put(".*", drain_then_not_routed);
  server.Patch(".*", drain_then_not_routed);
  server.Delete(".*", drain_then_not_routed);
  server.Options(".*", not_routed);
  // Methods the library has no handlers for (TRACE, CONNECT, ...) would get a bare 400.
  server.set_pre_routing_handler([](const Request& req, Response& res) {
    static constexpr std::string_view routed[] = {"GET",   "HEAD",   "POST",   "PUT",
                                                  "PATCH", "DELETE", "OPTIONS"};
    if (std::find(std::begin(routed), std::end(routed), req.method) != std::end(routed)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    not_routed(req, res);
    return httplib::Server::HandlerResponse::Handled;
  });

  // Answers the library makes itself (a declared body over the limit, a bad request line, an
  // unknown encoding) get a JSON body too. Ours already have one.
  server.set_error_handler(httplib::Server::HandlerWithResponse([](const Request&, Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    json body;
    if (res.status == 413) {
      body = command_outcome("invalid",
                             "the body is over " + std::to_string(kMaxHttpBodyBytes) + " bytes");
    } else if (res.status == 404) {
      body = {{"error", "not found"}};
    } else {
      body = {
          {"error", "the request could not be served (HTTP " + std::to_string(res.status) + ")"}};
    }
    res.set_content(dump(body), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  // Without this the library would put the exception's text in a response header.
  server.set_exception_handler([this](const Request&, Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    if (log) {
      try {
        log_event(*log, spdlog::level::err, "", "http_error", "HTTP request failed",
                  {{"error", capped_error(what)}});
      } catch (...) {
      }
    }
    reply(res, 500, {{"error", "internal error; see the log of clickpipe run"}});
  });
}

void HttpApi::Impl::start() {
  server.new_task_queue = [] { return new httplib::ThreadPool(kWorkers); };
  // httplib 0.11's pool queues without a bound; connections past what the workers serve wait in
  // the kernel's backlog instead, and each request is cut off after the read/write timeouts.
  server.set_payload_max_length(kMaxHttpBodyBytes);
  server.set_read_timeout(kTimeoutSeconds, 0);
  server.set_write_timeout(kTimeoutSeconds, 0);
  // One request per connection: no idle connection keeps a worker waiting.
  server.set_keep_alive_max_count(1);
  server.set_keep_alive_timeout(kTimeoutSeconds);
  // The library's default sets SO_REUSEPORT, which would let a second `clickpipe run` share the
  // port silently instead of failing to bind.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  routes();

  const std::string where = host_port(options.host, options.port);
  bool bound = false;
  if (options.port == 0) {
    const int any = server.bind_to_any_port(options.host);
    bound = any > 0;
    if (bound) port = static_cast<std::uint16_t>(any);
  } else {
    bound = server.bind_to_port(options.host, options.port);
    port = options.port;
  }
  if (!bound) {
    throw std::runtime_error("cannot listen on " + where +
                             ": is the port in use, or the address not one of this machine's?");
  }
  thread = std::thread([this] {
    server.listen_after_bind();
    exited = true;
  });
  // stop() does nothing until the server runs: wait for it, so the destructor always stops it.
  while (!server.is_running() && !exited) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (exited) {
    thread.join();
    throw std::runtime_error("cannot listen on " + host_port(options.host, port));
  }
}

HttpApi::HttpApi(PipeService& service, Telemetry& telemetry, HttpOptions options,
                 std::shared_ptr<spdlog::logger> log) {
  check_token(options.token);
  impl_ = std::make_unique<Impl>(service, telemetry, std::move(options), std::move(log));
  impl_->start();
}

HttpApi::~HttpApi() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint16_t HttpApi::port() const { return impl_->port; }

}  // namespace clickpipe::cli
