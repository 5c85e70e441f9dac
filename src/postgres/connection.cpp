#include "clickpipe/postgres/connection.hpp"

#include <libpq-fe.h>

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
  // intervention (shutdown, cancel), 58 system (I/O); 55P03 lock not available.
  return cls == "08" || cls == "40" || cls == "53" || cls == "57" || cls == "58" || s == "55P03";
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
// The `options` a connection string already carries, kept ahead of the pinned ones (libpq takes
// the last `options` keyword given, so they must be joined).
std::string options_in(const std::string& conninfo) {
  if (conninfo.empty()) return {};
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), nullptr);
  if (!parsed) return {};  // malformed: PQconnectdbParams reports it
  std::string out;
  for (PQconninfoOption* o = parsed; o->keyword; ++o) {
    if (std::string_view(o->keyword) == "options" && o->val) out = o->val;
  }
  PQconninfoFree(parsed);
  return out;
}
}  // namespace

Connection Connection::open(const ConnectionSettings& s, bool replication) {
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
  add("application_name", s.application_name);
  // libpq takes one `options`: the environment's, the connection string's, then the pins.
  std::string options;
  if (const char* env = std::getenv("PGOPTIONS"); env && *env) options = env;
  const std::string given = options_in(s.conninfo);
  if (!given.empty()) options += (options.empty() ? "" : " ") + given;
  options += (options.empty() ? "" : " ") + std::string(pinned_options());
  add("options", options);
  keys.push_back("client_encoding");  // text arrives as UTF-8 whatever the database's encoding
  values.push_back("UTF8");
  if (replication) {
    keys.push_back("replication");
    values.push_back("database");
  }
  keys.push_back("connect_timeout");
  values.push_back("10");
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* c = PQconnectdbParams(keys.data(), values.data(), 1);
  if (!c) throw PgTransientError("connecting to " + s.describe() + ": out of memory", "");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = redact(PQerrorMessage(c), s.password);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    PQfinish(c);
    const std::string what = "connecting to " + s.describe() + ": " + msg;
    // Refusals (bad password, unknown role or database) will not heal by retrying.
    if (msg.find("authentication failed") != std::string::npos ||
        msg.find("does not exist") != std::string::npos ||
        msg.find("no pg_hba.conf entry") != std::string::npos ||
        msg.find("permission denied") != std::string::npos) {
      throw PgFatalError(what, "28000");
    }
    throw PgTransientError(what, "08001");
  }
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
  std::string msg = redact(c_ ? PQerrorMessage(c_) : "no connection", settings_.password);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
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
    msg = redact(PQresultErrorMessage(r), c.settings().password);
    PQclear(r);
  }
  if (msg.empty()) msg = c.error_message();
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
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
