// TLS by default, and TLS that checks. ./scripts/test.sh runs PostgreSQL and ClickHouse 18.16 with
// a certificate from a throwaway CA made for DNS name localhost only (scripts/tls.sh), so 127.0.0.1
// is a name mismatch, and an unrelated CA of the same name stands for a forged certificate. The
// servers' tests need CLICKPIPE_PG_*, CLICKPIPE_CH_* and CLICKPIPE_TLS_*; without them they fail,
// never skip. What a source off loopback gets without an sslmode needs no server.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "../expect.hpp"
#include "../servers.hpp"
#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/error.hpp"
#include "clickpipe/postgres/connection.hpp"

namespace clickpipe {
namespace {

using clickhouse::Client;
using clickhouse::ClientSettings;
using postgres::Connection;
using postgres::ConnectionSettings;
using postgres::effective_sslmode;

// The password in every refused connection: the TLS handshake fails before it is sent, and no
// message may repeat it.
const std::string kCanary = "CANARY-tls-4e8c20";

// libpq reads these when a setting is not given; the tests below give what they mean.
class Tls : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : {"PGSSLMODE", "PGHOST", "PGHOSTADDR", "PGSSLROOTCERT"}) ::unsetenv(v);
  }
};

ConnectionSettings at(const std::string& host, const std::string& sslmode = "",
                      const std::string& ca_file = "") {
  ConnectionSettings s;
  s.host = host;
  s.sslmode = sslmode;
  s.ca_file = ca_file;
  return s;
}

TEST_F(Tls, ARemoteSourceWithoutSslmodeGetsTls) {
  for (const char* host : {"db.example.com", "10.0.0.5", "192.168.1.1", "2001:db8::1",
                           "127.0.0.1,db.example.com", "localhost.example.com"}) {
    EXPECT_EQ(effective_sslmode(at(host)), "require") << host;
    EXPECT_EQ(effective_sslmode(at(host, "", "/etc/ssl/pg-ca.pem")), "verify-full") << host;
  }
  ConnectionSettings uri;
  uri.conninfo = "postgresql://repl@db.example.com:5432/app";
  EXPECT_EQ(effective_sslmode(uri), "require");
  uri.conninfo = "host=db.example.com sslrootcert=/etc/ssl/pg-ca.pem";
  EXPECT_EQ(effective_sslmode(uri), "verify-full") << "a CA in the connection string counts";
  ConnectionSettings addr;
  addr.conninfo = "host=localhost hostaddr=10.1.2.3";
  EXPECT_EQ(effective_sslmode(addr), "require") << "libpq connects to hostaddr, not to host";
  ::setenv("PGHOST", "db.example.com", 1);
  EXPECT_EQ(effective_sslmode(ConnectionSettings{}), "require") << "no host: libpq takes PGHOST";
}

TEST_F(Tls, LoopbackKeepsLibpqsDefault) {
  for (const char* host :
       {"", "localhost", "LOCALHOST", "127.0.0.1", "127.45.6.7", "::1", "::ffff:127.0.0.1",
        "/var/run/postgresql", "@abstract", "localhost,127.0.0.1"}) {
    EXPECT_EQ(effective_sslmode(at(host)), "") << "'" << host << "'";
  }
  EXPECT_EQ(effective_sslmode(at("127.0.0.1", "prefer")), "prefer")
      << "prefer on loopback stays the user's choice";
}

TEST_F(Tls, AModeThatFallsBackToPlaintextIsRefusedOffLoopback) {
  for (const char* mode : {"prefer", "allow"}) {
    const auto e = test::expect_throws<InvalidField>(
        [&] { effective_sslmode(at("db.example.com", mode)); }, mode);
    if (e) {
      EXPECT_EQ(e->field(), "source.sslmode");
      EXPECT_NE(std::string(e->what()).find("plaintext"), std::string::npos) << e->what();
    }
  }
  ConnectionSettings in_string;
  in_string.conninfo = "postgresql://db.example.com/app?sslmode=prefer";
  test::expect_throws<InvalidField>([&] { effective_sslmode(in_string); }, "prefer in a URI");
  ::setenv("PGSSLMODE", "prefer", 1);
  test::expect_throws<InvalidField>([&] { effective_sslmode(at("db.example.com")); },
                                    "prefer from PGSSLMODE");
  ::unsetenv("PGSSLMODE");
  // Plaintext chosen on purpose is taken; explicit modes pass through.
  EXPECT_EQ(effective_sslmode(at("db.example.com", "disable")), "disable");
  EXPECT_EQ(effective_sslmode(at("db.example.com", "require", "/ca.pem")), "require");
  EXPECT_EQ(effective_sslmode(at("db.example.com", "verify-ca")), "verify-ca");
  for (const char* typo : {"verify_full", "REQUIRE", "on", "true"}) {
    const auto e =
        test::expect_throws<InvalidField>([&] { effective_sslmode(at("127.0.0.1", typo)); }, typo);
    if (e) {
      EXPECT_EQ(e->field(), "source.sslmode");
    }
  }
  // Connection::open decides the same way before it connects.
  ConnectionSettings s = at("db.example.com", "prefer");
  s.password = kCanary;
  const auto e = test::expect_throws<InvalidField>([&] { Connection::open(s); }, "open");
  EXPECT_EQ(test::message(e).find(kCanary), std::string::npos);
}

// --- PostgreSQL over TLS (the server ./scripts/test.sh starts)

TEST_F(Tls, PostgresVerifyFullByTheCertificatesNameWithItsCaConnects) {
  const ConnectionSettings s = test::postgres_tls_settings();
  for (bool replication : {false, true}) {
    Connection c = Connection::open(s, replication);
    EXPECT_EQ(c.settings().sslmode, "verify-full");
    EXPECT_EQ(c.exec("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").value(0, 0), "t")
        << (replication ? "the replication connection" : "a query connection");
  }
  // An explicit require on loopback encrypts too; disable does not.
  ConnectionSettings plain = test::postgres_settings();
  plain.sslmode = "require";
  EXPECT_EQ(Connection::open(plain)
                .exec("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .value(0, 0),
            "t");
  plain.sslmode = "disable";
  EXPECT_EQ(Connection::open(plain)
                .exec("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .value(0, 0),
            "f");
}

void expect_refused(ConnectionSettings s, const std::string& why, const std::string& what) {
  const std::string real = s.password;
  s.password = kCanary;
  const auto e = test::expect_throws<postgres::PgFatalError>(
      [&] { Connection::open(s); }, what + ": a certificate refused is fatal, not retried");
  const std::string msg = test::message(e);
  EXPECT_NE(msg.find(why), std::string::npos) << what << ": " << msg;
  EXPECT_NE(msg.find("sslmode=verify-full"), std::string::npos) << what << ": " << msg;
  EXPECT_EQ(msg.find(kCanary), std::string::npos) << what << ": " << msg;
  EXPECT_EQ(msg.find(real), std::string::npos) << what << ": " << msg;
}

TEST_F(Tls, PostgresVerifyFullRefusesAnotherHostName) {
  ConnectionSettings s = test::postgres_tls_settings();
  s.host = "127.0.0.1";  // the certificate names localhost only
  expect_refused(s, "does not match host name", "127.0.0.1");
}

TEST_F(Tls, PostgresVerifyFullRefusesAnotherCa) {
  ConnectionSettings s = test::postgres_tls_settings();
  s.ca_file = test::tls_other_ca();
  expect_refused(s, "certificate verify failed", "the other CA");
}

// --- ClickHouse over HTTPS (18.16's https_port, same certificate)

TEST_F(Tls, ClickHouseChecksThePeerByDefault) { EXPECT_TRUE(ClientSettings{}.verify_peer); }

TEST_F(Tls, ClickHouseHttpsWithItsCaWorks) {
  Client c(test::https_clickhouse_settings());
  EXPECT_TRUE(c.settings().verify_peer);
  EXPECT_EQ(c.query("SELECT 1"), "1\n");
}

void expect_ch_refused(ClientSettings s, const std::string& what) {
  const std::string real = s.password;
  s.password = kCanary;
  // Fatal (a certificate does not heal by retrying) and about the certificate, not some other
  // failure such as a refused connection.
  const auto e = test::expect_throws<clickhouse::ClickHouseFatalError>(
      [&] {
        Client c(s);
        c.query("SELECT 1");
      },
      what);
  const std::string msg = test::message(e);
  EXPECT_TRUE(msg.find("certificate") != std::string::npos || msg.find("SSL") != std::string::npos)
      << what << ": " << msg;
  EXPECT_EQ(msg.find(kCanary), std::string::npos) << what << ": " << msg;
  EXPECT_EQ(msg.find(real), std::string::npos) << what << ": " << msg;
}

TEST_F(Tls, ClickHouseHttpsRefusesAnotherCa) {
  ClientSettings s = test::https_clickhouse_settings();
  s.ca_file = test::tls_other_ca();
  expect_ch_refused(s, "the other CA");
  s.ca_file.clear();  // the system's CAs do not know the throwaway one either
  expect_ch_refused(s, "the system CAs");
}

TEST_F(Tls, ClickHouseHttpsRefusesAnotherHostName) {
  ClientSettings s = test::https_clickhouse_settings();
  s.url = "https://127.0.0.1:" + test::server_env("CLICKPIPE_CH_HTTPS_PORT");
  expect_ch_refused(s, "127.0.0.1");
  // Turning the check off is possible, and only explicitly.
  s.verify_peer = false;
  EXPECT_EQ(Client(s).query("SELECT 1"), "1\n");
}

}  // namespace
}  // namespace clickpipe
