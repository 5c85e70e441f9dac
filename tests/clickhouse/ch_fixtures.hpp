// What the ClickHouse tests share, none of it needing a server: unique names, table definitions,
// and a local stand-in that answers HTTP requests with canned responses.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "clickpipe/table.hpp"

namespace clickpipe::clickhouse::chtest {

// A unique name per test, so tests can share one server.
inline std::string unique(const std::string& base) {
  static std::atomic<int> n{0};
  return base + "_" + std::to_string(::getpid()) + "_" + std::to_string(n++);
}

inline Column col(std::string name, std::string type, bool nullable = true, int dims = 0,
                  int typmod = -1) {
  return Column{std::move(name), std::move(type), 0, typmod, nullable, dims};
}

// (id int8 key, v text): the table most tests need.
inline TableDefinition simple() {
  return TableDefinition{
      TableRef{"public", "t"}, {col("id", "int8", false), col("v", "text")}, {"id"}};
}

// Rows as read back, NULL as nullopt.
using Table = std::vector<std::vector<std::optional<std::string>>>;
inline std::optional<std::string> s(const char* v) { return std::string(v); }

// Answers one canned HTTP response per connection, in order, on a free port of 127.0.0.1.
class FakeServer {
 public:
  explicit FakeServer(std::vector<std::string> responses) : responses_(std::move(responses)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 4);
    thread_ = std::thread([this] {
      for (const auto& r : responses_) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        char buf[65536];
        (void)::recv(c, buf, sizeof buf, 0);
        (void)::send(c, r.data(), r.size(), 0);
        ::close(c);
      }
    });
  }
  ~FakeServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  std::vector<std::string> responses_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// An HTTP/1.1 response that closes its connection.
inline std::string http(int status, const std::string& body, const std::string& extra = "") {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extra + "\r\n" + body;
}

}  // namespace clickpipe::clickhouse::chtest
