#include "clickpipe/postgres/connection.hpp"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <utility>

namespace clickpipe::postgres {

std::string ConnectionSettings::describe() const {
  std::string out;
  auto add = [&](const char* k, const std::string& v) {
    if (v.empty()) return;
    if (!out.empty()) out += ' ';
    out += k;
    out += '=';
    out += v;
  };
  add("host", host);
  add("port", port);
  add("dbname", dbname);
  add("user", user);
  if (out.empty()) out = "(connection string)";
  if (!sslmode.empty()) out += " sslmode=" + sslmode;
  return out;
}

std::string redact(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  for (std::size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at)) {
    text.replace(at, secret.size(), "***");
    at += 3;
  }
  return text;
}

bool is_transient_sqlstate(std::string_view s) {
  if (s.size() != 5) return false;
  const std::string_view cls = s.substr(0, 2);
  // 08 connection, 40 rollback (serialization, deadlock), 53 resources, 57 operator
  // intervention (shutdown, cancel), 58 system (I/O); 55P03 lock not available; 55006 object in
  // use: a slot still held by the walsender of a stream that is going away (a worker killed or
  // handing its pipe over), free once that walsender notices.
  return cls == "08" || cls == "40" || cls == "53" || cls == "57" || cls == "58" || s == "55P03" ||
         s == "55006";
}

void throw_pg_error(const std::string& message, const std::string& sqlstate) {
  if (sqlstate.empty() || is_transient_sqlstate(sqlstate)) {
    throw PgTransientError(message, sqlstate);
  }
  throw PgFatalError(message, sqlstate);
}

Result::Result(Result&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
Result& Result::operator=(Result&& o) noexcept {
  if (this != &o) {
    if (r_) PQclear(r_);
    r_ = std::exchange(o.r_, nullptr);
  }
  return *this;
}
Result::~Result() {
  if (r_) PQclear(r_);
}
int Result::rows() const noexcept { return r_ ? PQntuples(r_) : 0; }
int Result::columns() const noexcept { return r_ ? PQnfields(r_) : 0; }
bool Result::is_null(int row, int col) const noexcept { return PQgetisnull(r_, row, col) != 0; }
std::string_view Result::value(int row, int col) const noexcept {
  return {PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col))};
}
std::optional<std::string> Result::get(int row, int col) const {
  if (is_null(row, col)) return std::nullopt;
  return std::string(value(row, col));
}

std::string_view pinned_options() noexcept {
  return "-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres -c bytea_output=hex "
         "-c extra_float_digits=3 -c lc_monetary=C";
}

namespace {

// What a connection string sets itself (PQconninfoParse fills in no defaults).
struct InConninfo {
  std::string options;
  std::string sslmode;
  std::string host;
  std::string hostaddr;
  std::string sslrootcert;
  std::string password;
  std::string service;
};

InConninfo in_conninfo(const std::string& conninfo) {
  InConninfo out;
  if (conninfo.empty()) return out;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), nullptr);
  if (!parsed) return out;  // malformed (or a bare database name): PQconnectdbParams reports it
  for (PQconninfoOption* o = parsed; o->keyword; ++o) {
    if (!o->val) continue;
    const std::string_view k = o->keyword;
    if (k == "options") out.options = o->val;
    if (k == "sslmode") out.sslmode = o->val;
    if (k == "host") out.host = o->val;
    if (k == "hostaddr") out.hostaddr = o->val;
    if (k == "sslrootcert") out.sslrootcert = o->val;
    if (k == "password") out.password = o->val;
    if (k == "service") out.service = o->val;
  }
  PQconninfoFree(parsed);
  return out;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Without the password, wherever it came from (the keyword or the connection string).
std::string scrub(std::string text, const ConnectionSettings& s) {
  text = redact(std::move(text), s.password);
  return redact(std::move(text), in_conninfo(s.conninfo).password);
}

std::string trimmed(std::string msg) {
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

// One entry of libpq's comma-separated host list. Names other than localhost are not resolved:
// what DNS says can change, so they count as remote.
bool loopback_entry(std::string_view h) {
  if (h.empty() || h.front() == '/' || h.front() == '@') return true;  // default or a socket
  std::string lower(h);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, lower.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, lower.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  }
  return false;
}

bool on_loopback(std::string_view hosts) {
  for (;;) {
    const auto comma = hosts.find(',');
    if (!loopback_entry(hosts.substr(0, comma))) return false;
    if (comma == std::string_view::npos) return true;
    hosts.remove_prefix(comma + 1);
  }
}

// libpq's words for a certificate it will not accept, or a server without TLS when TLS is
// required: a change of configuration fixes them, retrying does not.
bool tls_refusal(const std::string& msg) {
  for (const char* s : {"certificate verify failed", "does not match host name",
                        "root certificate file", "server does not support SSL"}) {
    if (msg.find(s) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

std::string effective_sslmode(const ConnectionSettings& s) {
  const InConninfo given = in_conninfo(s.conninfo);
  std::string mode = !s.sslmode.empty() ? s.sslmode : given.sslmode;
  if (mode.empty()) mode = env("PGSSLMODE");
  // libpq connects to hostaddr when there is one; host then only names the certificate.
  std::string target = !given.hostaddr.empty() ? given.hostaddr : env("PGHOSTADDR");
  if (target.empty()) target = !s.host.empty() ? s.host : given.host;
  if (target.empty()) target = env("PGHOST");
  // A service file can name any host, out of our sight: only a host we can see counts as loopback.
  const bool hidden = target.empty() && (!given.service.empty() || !env("PGSERVICE").empty());
  const bool local = !hidden && on_loopback(target);
  if (!mode.empty()) {
    static constexpr std::array<std::string_view, 6> kModes = {
        "disable", "allow", "prefer", "require", "verify-ca", "verify-full"};
    if (std::find(kModes.begin(), kModes.end(), mode) == kModes.end()) {
      throw InvalidField("source.sslmode", "unknown sslmode '" + mode.substr(0, 40) +
                                               "' (disable, require, verify-ca or verify-full)");
    }
    if (!local && (mode == "allow" || mode == "prefer")) {
      throw InvalidField("source.sslmode",
                         "'" + mode + "' lets a connection to " + target +
                             " fall back to plaintext unnoticed; use verify-full with a CA file, "
                             "require, or disable to choose plaintext on purpose");
    }
    return mode;
  }
  if (local) return "";
  const bool have_ca =
      !s.ca_file.empty() || !given.sslrootcert.empty() || !env("PGSSLROOTCERT").empty();
  return have_ca ? "verify-full" : "require";
}

Connection Connection::open(const ConnectionSettings& given, bool replication) {
  if (given.connect_timeout.count() <= 0)
    throw InvalidField("source.connect_timeout", "must be > 0 seconds");
  // Messages and the connection's settings show the sslmode actually used.
  ConnectionSettings s = given;
  s.sslmode = effective_sslmode(given);
  std::vector<const char*> keys;
  std::vector<const char*> values;
  auto add = [&](const char* k, const std::string& v) {
    if (v.empty()) return;
    keys.push_back(k);
    values.push_back(v.c_str());
  };
  add("dbname", s.conninfo);  // expanded by libpq (expand_dbname = 1), then overridden below
  add("host", s.host);
  add("port", s.port);
  if (!s.conninfo.empty() && !s.dbname.empty()) {
    keys.push_back("dbname");
    values.push_back(s.dbname.c_str());
  } else if (s.conninfo.empty()) {
    add("dbname", s.dbname);
  }
  add("user", s.user);
  add("password", s.password);
  add("sslmode", s.sslmode);
  add("sslrootcert", s.ca_file);
  add("application_name", s.application_name);
  // libpq takes one `options`: the environment's, the connection string's, then the pins.
  std::string options = env("PGOPTIONS");
  const std::string in_string = in_conninfo(s.conninfo).options;
  if (!in_string.empty()) options += (options.empty() ? "" : " ") + in_string;
  options += (options.empty() ? "" : " ") + std::string(pinned_options());
  add("options", options);
  keys.push_back("client_encoding");  // text arrives as UTF-8 whatever the database's encoding
  values.push_back("UTF8");
  if (replication) {
    keys.push_back("replication");
    values.push_back("database");
  }
  const std::string timeout = std::to_string(s.connect_timeout.count());
  add("connect_timeout", timeout);
  const auto tcp_ms = s.tcp_user_timeout.count();
  const std::string tcp_timeout = std::to_string(tcp_ms);
  const std::string idle = std::to_string(std::max<long long>(1, tcp_ms / 3000));
  const std::string one = "1", three = "3";  // `add` keeps pointers: no temporaries
  if (tcp_ms > 0) {
    add("keepalives", one);
    add("keepalives_idle", idle);
    add("keepalives_interval", one);
    add("keepalives_count", three);
    add("tcp_user_timeout", tcp_timeout);
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* c = PQconnectdbParams(keys.data(), values.data(), 1);
  if (!c) throw PgTransientError("connecting to " + s.describe() + ": out of memory", "");
  if (PQstatus(c) != CONNECTION_OK) {
    const std::string msg = trimmed(scrub(PQerrorMessage(c), s));
    PQfinish(c);
    const std::string what = "connecting to " + s.describe() + ": " + msg;
    if (tls_refusal(msg)) throw PgFatalError(what, "");
    // Refusals (bad password, unknown role or database) will not heal by retrying.
    if (msg.find("authentication failed") != std::string::npos ||
        msg.find("does not exist") != std::string::npos ||
        msg.find("no pg_hba.conf entry") != std::string::npos ||
        msg.find("permission denied") != std::string::npos) {
      throw PgFatalError(what, "28000");
    }
    throw PgTransientError(what, "08001");
  }
  // DETAIL and CONTEXT can quote row values (a key that clashed, a value that did not parse):
  // every message taken from this connection is the primary text only.
  PQsetErrorVerbosity(c, PQERRORS_TERSE);
  PQsetErrorContextVisibility(c, PQSHOW_CONTEXT_NEVER);
  Connection conn(c, s);
  ensure_pinned_settings(conn);
  return conn;
}

void ensure_pinned_settings(Connection& conn) {
  // TimeZone, DateStyle and IntervalStyle are reported by the server on every change, so checking
  // them costs no round trip; the other pins travel in the same `options`, so they landed too.
  auto pinned = [&] {
    const char* tz = PQparameterStatus(conn.raw(), "TimeZone");
    const char* ds = PQparameterStatus(conn.raw(), "DateStyle");
    const char* is = PQparameterStatus(conn.raw(), "IntervalStyle");
    return tz && ds && is && std::string_view(tz) == "UTC" &&
           std::string_view(ds).starts_with("ISO") && std::string_view(is) == "postgres";
  };
  if (pinned()) return;
  // Dropped on the way (a pooler ignoring startup options): set them in the session instead.
  for (const char* set :
       {"SET TimeZone = 'UTC'", "SET DateStyle = 'ISO, MDY'", "SET IntervalStyle = 'postgres'",
        "SET bytea_output = 'hex'", "SET extra_float_digits = 3", "SET lc_monetary = 'C'"}) {
    conn.exec(set);
  }
  if (!pinned()) {
    throw PgFatalError("PostgreSQL at " + conn.settings().describe() +
                           " does not keep the session settings clickpipe pins (TimeZone=UTC, "
                           "DateStyle=ISO, IntervalStyle=postgres)",
                       "22023");
  }
}

Connection::Connection(Connection&& o) noexcept
    : c_(std::exchange(o.c_, nullptr)), settings_(std::move(o.settings_)) {}
Connection& Connection::operator=(Connection&& o) noexcept {
  if (this != &o) {
    if (c_) PQfinish(c_);
    c_ = std::exchange(o.c_, nullptr);
    settings_ = std::move(o.settings_);
  }
  return *this;
}
Connection::~Connection() {
  if (c_) PQfinish(c_);
}

std::string Connection::error_message() const {
  return trimmed(scrub(c_ ? PQerrorMessage(c_) : "no connection", settings_));
}

namespace {
Result check(PGresult* r, const Connection& c, std::string_view sql) {
  const ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_COPY_OUT ||
      st == PGRES_COPY_BOTH || st == PGRES_COPY_IN || st == PGRES_EMPTY_QUERY) {
    return Result(r);
  }
  std::string state;
  std::string msg;
  if (r) {
    if (const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE)) state = s;
    // The primary message only: DETAIL and CONTEXT can quote row values (a duplicate key), and
    // the statement is named below, in part.
    const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY);
    const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    msg = primary ? std::string(severity ? severity : "ERROR") + ": " + primary
                  : std::string(PQresultErrorMessage(r));
    msg = scrub(std::move(msg), c.settings());
    PQclear(r);
  }
  if (msg.empty()) msg = c.error_message();
  msg = trimmed(std::move(msg));
  std::string head(sql.substr(0, 80));
  if (sql.size() > 80) head += "...";
  // A lost connection has no SQLSTATE: transient.
  throw_pg_error(msg + " (running: " + head + ")", state);
}
}  // namespace

Result Connection::exec(std::string_view sql) {
  return check(PQexec(c_, std::string(sql).c_str()), *this, sql);
}

Result Connection::exec(std::string_view sql,
                        const std::vector<std::optional<std::string>>& params) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  return check(PQexecParams(c_, std::string(sql).c_str(), static_cast<int>(values.size()), nullptr,
                            values.data(), nullptr, nullptr, 0),
               *this, sql);
}

std::string Connection::identifier(std::string_view name) const {
  char* q = PQescapeIdentifier(c_, name.data(), name.size());
  if (!q) throw PgFatalError("cannot quote identifier: " + error_message(), "22021");
  std::string out(q);
  PQfreemem(q);
  return out;
}

std::string Connection::literal(std::string_view text) const {
  char* q = PQescapeLiteral(c_, text.data(), text.size());
  if (!q) throw PgFatalError("cannot quote literal: " + error_message(), "22021");
  std::string out(q);
  PQfreemem(q);
  return out;
}

int Connection::server_version() const noexcept { return PQserverVersion(c_); }

void ping(Connection& conn) { conn.exec("SELECT 1"); }

}  // namespace clickpipe::postgres
