// The HTTP API of `clickpipe run`, over a real PipeService (in-memory store and executors) and
// real HTTP requests on a loopback port.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "../../tools/cli/http_api.hpp"
#include "../../tools/cli/logging.hpp"
#include "../../tools/cli/telemetry.hpp"
#include "../runtime/world.hpp"
#include "capture_sink.hpp"
#include "clickpipe/error.hpp"
#include "clickpipe/runtime/pipe_service.hpp"
#include "clickpipe/store/memory_store.hpp"

namespace clickpipe::test {
namespace {

using cli::HttpApi;
using cli::HttpOptions;
using cli::parse_listen;
using nlohmann::json;

constexpr const char* kToken = "tok-9f2c61d0-canary";
const std::string kStatePath = "/pipes/orders/state";

class HttpApiTest : public ::testing::Test {
 protected:
  // A service running pipe "orders" and the API over it on a free loopback port.
  void start(std::optional<std::string> token = std::nullopt) {
    ServiceOptions o;
    o.store = std::make_shared<MemoryStore>();
    o.executors = [this](const std::string& id, Mode) { return w.mem.executors(id); };
    o.logger = quiet_logger();
    o.listeners = {telemetry};
    service = std::make_unique<PipeService>(o);
    service->create(w.config("orders"));
    HttpOptions h;
    h.token = std::move(token);
    auto logger = cli::make_logger(cli::LogOptions{spdlog::level::info, cli::LogFormat::Json}, log);
    api = std::make_unique<HttpApi>(*service, *telemetry, h, logger);
    client = std::make_unique<httplib::Client>("127.0.0.1", api->port());
    client->set_read_timeout(5, 0);
  }

  Pipe& pipe() { return *service->get("orders"); }

  httplib::Result post(const std::string& path, const std::string& body,
                       const httplib::Headers& headers = {}) {
    return client->Post(path, headers, body, "application/json");
  }

  static json body_of(const httplib::Result& r) { return json::parse(r->body); }

  // Whether a JSON log line is the `command` event of pipe "orders" from http with `result`
  // (and, when given, `command`).
  bool logged_command(const std::string& result, const std::string& command = "") const {
    std::istringstream lines(log->text());
    for (std::string line; std::getline(lines, line);) {
      const json j = json::parse(line, nullptr, false);
      if (j.is_object() && j.value("event", "") == "command" && j.value("pipe", "") == "orders" &&
          j.value("source", "") == "http" && j.value("result", "") == result &&
          (command.empty() || j.value("command", "") == command)) {
        return true;
      }
    }
    return false;
  }

  World w{20};
  std::shared_ptr<cli::Telemetry> telemetry = std::make_shared<cli::Telemetry>();
  std::unique_ptr<PipeService> service;
  std::shared_ptr<CaptureSink> log = std::make_shared<CaptureSink>();
  std::unique_ptr<HttpApi> api;
  std::unique_ptr<httplib::Client> client;
};

TEST_F(HttpApiTest, HealthzCountsThePipes) {
  start();
  auto r = client->Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(body_of(r), json({{"status", "ok"}, {"pipes", 1}}));
}

TEST_F(HttpApiTest, PipesShowsEveryPipeAndOnePipeItsDocument) {
  start();
  auto all = client->Get("/pipes");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->status, 200);
  EXPECT_EQ(all->get_header_value("Content-Type"), "application/json");
  const json list = body_of(all);
  ASSERT_EQ(list["pipes"].size(), 1u);
  EXPECT_EQ(list["pipes"][0]["id"], "orders");
  EXPECT_TRUE(list["broken"].is_array());

  ASSERT_TRUE(pipe().wait_for(State::Running, 10s));
  auto one = client->Get("/pipes/orders");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->status, 200);
  const json doc = body_of(one);
  EXPECT_EQ(doc["id"], "orders");
  EXPECT_EQ(doc["state"], "Running") << "refreshed from the service, not an older sample";
  EXPECT_EQ(doc["live"], true);
}

TEST_F(HttpApiTest, UnknownPipesAndRoutesAre404) {
  start();
  auto get = client->Get("/pipes/nope");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 404);
  EXPECT_EQ(get->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(body_of(get), json({{"error", "no pipe 'nope'"}}));

  auto post = this->post("/pipes/nope/state", R"({"command": "pause"})");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 404);
  EXPECT_EQ(body_of(post)["status"], "not_found");

  for (const char* path : {"/pipes/Not-An-Id", "/nothing", "/pipes/orders/other", "/pipes/"}) {
    auto r = client->Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path;
    EXPECT_EQ(body_of(r), json({{"error", "not found"}})) << path;
  }
  auto bad_id = this->post("/pipes/Not-An-Id/state", R"({"command": "pause"})");
  ASSERT_TRUE(bad_id);
  EXPECT_EQ(bad_id->status, 404);
}

TEST_F(HttpApiTest, MalformedOrNonObjectBodiesAre400AndChangeNothing) {
  start();
  ASSERT_TRUE(pipe().wait_for(State::Running, 10s));
  auto broken = post(kStatePath, R"({"command": "pause")");
  ASSERT_TRUE(broken);
  EXPECT_EQ(broken->status, 400);
  EXPECT_EQ(broken->get_header_value("Content-Type"), "application/json");
  const json answer = body_of(broken);
  EXPECT_EQ(answer["status"], "invalid");
  EXPECT_NE(answer["message"].get<std::string>().find("not valid JSON (at byte "),
            std::string::npos)
      << answer.dump();

  auto array = post(kStatePath, R"(["pause"])");
  ASSERT_TRUE(array);
  EXPECT_EQ(array->status, 400);
  EXPECT_EQ(body_of(array)["status"], "invalid");
  EXPECT_NE(body_of(array)["message"].get<std::string>().find("JSON object"), std::string::npos);

  auto unknown = post(kStatePath, R"({"command": "explode"})");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 400);
  EXPECT_EQ(pipe().state(), State::Running);
}

// A page in a browser may POST to loopback without a preflight only as a "simple" request (a
// form's or text/plain body) and always with its Origin: both are refused, and nothing changes.
TEST_F(HttpApiTest, PostsAWebPageCouldSendAreRefused) {
  start();
  ASSERT_TRUE(pipe().wait_for(State::Running, 10s));
  auto plain = client->Post(kStatePath, R"({"command": "pause"})", "text/plain");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->status, 415);
  auto form =
      client->Post(kStatePath, R"({"command": "pause"})", "application/x-www-form-urlencoded");
  ASSERT_TRUE(form);
  EXPECT_EQ(form->status, 415);
  auto origin = post(kStatePath, R"({"command": "pause"})", {{"Origin", "https://evil.example"}});
  ASSERT_TRUE(origin);
  EXPECT_EQ(origin->status, 403);
  EXPECT_EQ(pipe().state(), State::Running);
}

TEST_F(HttpApiTest, BodiesOver64KiBAre413WhateverTheirFraming) {
  start();
  ASSERT_TRUE(pipe().wait_for(State::Running, 10s));
  const std::string big =
      R"({"command": "pause", "pad": ")" + std::string(cli::kMaxHttpBodyBytes, 'x') + R"("})";
  auto declared = post(kStatePath, big);
  ASSERT_TRUE(declared);
  EXPECT_EQ(declared->status, 413);
  EXPECT_EQ(declared->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(body_of(declared)["status"], "invalid");

  // Chunked: no Content-Length for the library to check.
  auto chunked = client->Post(
      kStatePath,
      [&](std::size_t offset, httplib::DataSink& sink) {
        if (offset >= big.size()) {
          sink.done();
          return true;
        }
        const std::size_t n = std::min<std::size_t>(8192, big.size() - offset);
        return sink.write(big.data() + offset, n);
      },
      "application/json");
  ASSERT_TRUE(chunked);
  EXPECT_EQ(chunked->status, 413);
  EXPECT_EQ(pipe().state(), State::Running);
}

TEST_F(HttpApiTest, PauseIsAcceptedOnceThenRejectedWithTheRejection) {
  start();
  ASSERT_TRUE(pipe().wait_for(State::Running, 10s));
  auto first = post(kStatePath, R"({"command": "pause"})");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(body_of(first)["status"], "accepted");
  ASSERT_TRUE(pipe().wait_for(State::Paused, 10s));

  auto again = post(kStatePath, R"({"command": "pause"})");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 409);
  const json answer = body_of(again);
  EXPECT_EQ(answer["status"], "rejected");
  EXPECT_EQ(answer["state"], "Paused");
  EXPECT_EQ(answer["rejection"]["state"], "Paused");
  EXPECT_EQ(answer["rejection"]["trigger"], "pause");
  EXPECT_EQ(answer["message"], "pause is not allowed in state Paused");

  // Each command is logged as an event, naming the source and the result.
  EXPECT_TRUE(logged_command("accepted", "pause")) << log->text();
  EXPECT_TRUE(logged_command("rejected", "pause")) << log->text();
}

TEST_F(HttpApiTest, WithATokenEveryPostNeedsItAndGetsStayOpen) {
  start(kToken);
  ASSERT_TRUE(pipe().wait_for(State::Running, 10s));
  const std::string pause = R"({"command": "pause", "note": "body-canary"})";

  auto none = post(kStatePath, pause);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(none->get_header_value("WWW-Authenticate").rfind("Bearer", 0), 0u);
  EXPECT_EQ(none->get_header_value("Content-Type"), "application/json");

  const std::string wrong_token = std::string(kToken) + "x";
  for (const std::string& header :
       {"Bearer " + wrong_token, "Bearer " + std::string(kToken).substr(1), std::string("Bearer "),
        "Basic " + std::string(kToken)}) {
    auto wrong = post(kStatePath, pause, {{"Authorization", header}});
    ASSERT_TRUE(wrong);
    EXPECT_EQ(wrong->status, 401) << header;
    EXPECT_EQ(wrong->body.find(kToken), std::string::npos) << "the token is never echoed";
  }
  auto unrouted = post("/healthz", "{}");
  ASSERT_TRUE(unrouted);
  EXPECT_EQ(unrouted->status, 401) << "every POST needs the token";
  EXPECT_EQ(pipe().state(), State::Running);

  auto status = client->Get("/pipes/orders");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->status, 200);

  auto right = post(kStatePath, R"({"command": "pause"})",
                    {{"Authorization", "Bearer " + std::string(kToken)}});
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 200);
  EXPECT_EQ(body_of(right)["status"], "accepted");

  EXPECT_TRUE(logged_command("unauthorized")) << log->text();
  EXPECT_TRUE(logged_command("accepted", "pause")) << log->text();
  const std::string text = log->text();
  EXPECT_EQ(text.find("tok-9f2c61d0"), std::string::npos) << "no token in the log: " << text;
  EXPECT_EQ(text.find("body-canary"), std::string::npos) << "no body field in the log: " << text;
}

TEST_F(HttpApiTest, MetricsAreTheTextFormat) {
  start();
  ASSERT_TRUE(pipe().wait_for(State::Running, 10s));
  auto r = client->Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4");
  bool running = false;
  std::istringstream lines(r->body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("clickpipe_pipe_state{", 0) == 0 &&
        line.find(R"(pipe="orders")") != std::string::npos &&
        line.find(R"(state="Running")") != std::string::npos) {
      running = line.size() > 2 && line.substr(line.size() - 2) == " 1";
    }
  }
  EXPECT_TRUE(running) << r->body;
}

TEST_F(HttpApiTest, AKnownPathWithTheWrongMethodIs405) {
  start();
  auto del = client->Delete("/pipes/orders");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);
  EXPECT_EQ(del->get_header_value("Allow"), "GET, HEAD");
  EXPECT_EQ(del->get_header_value("Content-Type"), "application/json");

  auto get = client->Get(kStatePath);
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
  EXPECT_EQ(get->get_header_value("Allow"), "POST");

  auto post = this->post("/metrics", "{}");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);

  auto put = client->Put("/nothing", "{}", "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 404);
}

TEST_F(HttpApiTest, ASecondApiOnTheSamePortFailsNamingIt) {
  start();
  HttpOptions same;
  same.port = api->port();
  try {
    HttpApi second(*service, *telemetry, same, nullptr);
    FAIL() << "a second listener on port " << same.port << " was allowed";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(same.port)),
              std::string::npos)
        << e.what();
  }
}

TEST(ParseListen, TakesLoopbackHostsAndPorts) {
  HttpOptions a = parse_listen("127.0.0.1:9187", false, std::nullopt);
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 9187);
  EXPECT_FALSE(a.token);
  HttpOptions b = parse_listen("[::1]:65535", false, std::string("t"));
  EXPECT_EQ(b.host, "::1");
  EXPECT_EQ(b.port, 65535);
  EXPECT_EQ(b.token, "t");
  EXPECT_EQ(parse_listen("localhost:1", false, std::nullopt).host, "localhost");
  EXPECT_EQ(parse_listen("127.8.9.10:80", false, std::nullopt).port, 80);
}

TEST(ParseListen, RefusesMalformedValuesAndPorts) {
  for (const char* value :
       {"", "127.0.0.1", "127.0.0.1:", ":9187", "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.1:99999999", "127.0.0.1:-1", "127.0.0.1:80x", "::1:9187", "[::1]9187", "[::1",
        "[nothost]:80", "local host:80", "127.0.0.1:+80"}) {
    try {
      parse_listen(value, true, std::string("t"));
      ADD_FAILURE() << "'" << value << "' was taken";
    } catch (const InvalidField& e) {
      EXPECT_EQ(e.field(), "--listen") << value;
    }
  }
}

TEST(ParseListen, ServesOtherHostsOnlyWhenAllowedAndWithAToken) {
  for (const char* value :
       {"0.0.0.0:9187", "10.1.2.3:9187", "[::]:9187", "example.com:80", "[::ffff:10.0.0.1]:80"}) {
    try {
      parse_listen(value, false, std::string("t"));
      ADD_FAILURE() << value << " was served without --listen-remote";
    } catch (const InvalidField& e) {
      EXPECT_EQ(e.field(), "--listen");
      EXPECT_NE(std::string(e.what()).find("anyone who can reach the port"), std::string::npos)
          << e.what();
    }
    try {
      parse_listen(value, true, std::nullopt);
      ADD_FAILURE() << value << " was served without a token";
    } catch (const InvalidField& e) {
      EXPECT_EQ(e.field(), "--listen");
      EXPECT_NE(std::string(e.what()).find("CLICKPIPE_API_TOKEN"), std::string::npos) << e.what();
    }
    const HttpOptions ok = parse_listen(value, true, std::string("t"));
    EXPECT_TRUE(ok.allow_remote);
    EXPECT_EQ(ok.token, "t");
  }
  EXPECT_TRUE(cli::is_loopback_host("::ffff:127.0.0.1"));
  EXPECT_TRUE(cli::is_loopback_host("LocalHost"));
  EXPECT_FALSE(cli::is_loopback_host("128.0.0.1"));
  EXPECT_FALSE(cli::is_loopback_host("localhost.example.com"));
}

TEST(ParseListen, AnEmptyTokenIsRefused) {
  try {
    parse_listen("127.0.0.1:9187", false, std::string());
    ADD_FAILURE() << "an empty token was taken";
  } catch (const InvalidField& e) {
    EXPECT_EQ(e.field(), "CLICKPIPE_API_TOKEN");
  }
}

}  // namespace
}  // namespace clickpipe::test
