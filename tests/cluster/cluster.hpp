// What the cluster tests share: a schema of their own in the test PostgreSQL (dropped after),
// polling, and checks on StoreErrors.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <clickpipe/postgres/connection.hpp>
#include <clickpipe/store/state_store.hpp>
#include <string>
#include <thread>

#include "../crash/process.hpp"
#include "../expect.hpp"
#include "../servers.hpp"

namespace clickpipe::test {

using crash::poll_until;

// A store schema no other test uses, dropped when the test ends.
struct Schema {
  std::string name;
  postgres::Connection conn;

  Schema() : name(fresh()), conn(postgres::Connection::open(postgres_settings())) {
    conn.exec("SET client_min_messages = warning");
  }
  ~Schema() {
    try {
      conn.exec("DROP SCHEMA IF EXISTS " + conn.identifier(name) + " CASCADE");
    } catch (...) {
    }
  }
  void exec(const std::string& sql) { conn.exec(sql); }
  std::string query(const std::string& sql) { return std::string(conn.exec(sql).value(0, 0)); }
  std::string table(const std::string& t) const { return "\"" + name + "\".\"" + t + "\""; }
  std::string literal(const std::string& text) const { return conn.literal(text); }

 private:
  static std::string fresh() {
    static std::atomic<int> n{0};
    return "cp_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++);
  }
};

}  // namespace clickpipe::test

#define EXPECT_STORE_ERROR(expr, want_code, text)                                                \
  do {                                                                                           \
    auto caught_ =                                                                               \
        ::clickpipe::test::expect_throws<::clickpipe::StoreError>([&] { (void)(expr); }, #expr); \
    if (caught_) {                                                                               \
      EXPECT_EQ(caught_->code(), want_code) << caught_->what();                                  \
      EXPECT_NE(std::string(caught_->what()).find(text), std::string::npos) << caught_->what();  \
    }                                                                                            \
  } while (0)

#define EXPECT_INVALID_FIELD(expr, want_field)                                                     \
  do {                                                                                             \
    auto caught_ =                                                                                 \
        ::clickpipe::test::expect_throws<::clickpipe::InvalidField>([&] { (void)(expr); }, #expr); \
    if (caught_) {                                                                                 \
      EXPECT_EQ(caught_->field(), want_field) << caught_->what();                                  \
    }                                                                                              \
  } while (0)
