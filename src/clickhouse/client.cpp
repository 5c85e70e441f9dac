#include "clickpipe/clickhouse/client.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>
#include <string_view>

#include "clickpipe/status.hpp"
#include "clickpipe/utf8.hpp"
#include "transports.hpp"

namespace clickpipe::clickhouse {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

// The URL without user info (everything up to the last '@'), query string and fragment. The last
// '@' rather than the first: an unescaped password may contain '@', '/', '?' or '#' itself.
std::string public_url(std::string_view url) {
  const auto sep = url.find("://");
  const std::string_view scheme =
      sep == std::string_view::npos ? std::string_view() : url.substr(0, sep + 3);
  std::string_view rest = sep == std::string_view::npos ? url : url.substr(sep + 3);
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
  rest = rest.substr(0, rest.find_first_of("?#"));
  return std::string(scheme) + std::string(rest);
}

// The code in "Code: <digits><tail>" starting at `at`, or -1. At most 9 digits, so it fits an int.
int code_at(std::string_view text, std::size_t at, std::string_view tail) {
  std::size_t i = at + std::string_view("Code: ").size();
  int code = 0;
  std::size_t digits = 0;
  while (i < text.size() && is_digit(text[i])) {
    if (++digits > 9) return -1;
    code = code * 10 + (text[i++] - '0');
  }
  if (digits == 0 || !text.substr(i).starts_with(tail)) return -1;
  return code;
}

int find_code(std::string_view text, std::string_view tail) {
  for (auto at = text.find("Code: "); at != std::string_view::npos;
       at = text.find("Code: ", at + 1)) {
    if (const int code = code_at(text, at, tail); code >= 0) return code;
  }
  return -1;
}

// The exception's name newer servers end their text with: "... (UNKNOWN_TABLE)", before
// " (version 26.1.1.1)" over HTTP. Empty when there is none.
std::string_view exception_name(std::string_view text) {
  auto trim = [&] {
    while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\r' ||
                             text.back() == '.')) {
      text.remove_suffix(1);
    }
  };
  trim();
  if (const auto v = text.rfind(" (version "); v != std::string_view::npos && text.ends_with(")")) {
    text = text.substr(0, v);
    trim();
  }
  if (!text.ends_with(")")) return {};
  const auto open = text.rfind('(');
  if (open == std::string_view::npos) return {};
  const std::string_view name = text.substr(open + 1, text.size() - open - 2);
  if (name.size() < 3 || name.size() > 64 || !(name[0] >= 'A' && name[0] <= 'Z')) return {};
  for (const char c : name) {
    if (!((c >= 'A' && c <= 'Z') || is_digit(c) || c == '_')) return {};
  }
  return name;
}

// Where the quoted part opening at `at` ends (just past its closing quote, backslash escapes
// honoured), or the end of `text` when it is not closed.
std::size_t past_quoted(std::string_view text, std::size_t at) {
  const char q = text[at];
  for (std::size_t i = at + 1; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == q) {
      return i + 1;
    }
  }
  return text.size();
}

// The first words of `sql` as a server may repeat them, or empty when too short to tell apart
// from ordinary words.
std::string_view statement_head(std::string_view sql) {
  while (!sql.empty() && (sql.front() == ' ' || sql.front() == '\n' || sql.front() == '\t')) {
    sql.remove_prefix(1);
  }
  sql = sql.substr(0, std::min<std::size_t>(sql.size(), 24));
  return sql.size() < 8 ? std::string_view() : sql;
}

}  // namespace

std::string ClientSettings::describe() const {
  const std::string where = public_url(url);
  if (url.rfind("chdb://", 0) == 0) return where + " (database " + database + ")";
  return where + " as " + user + " (database " + database + ")";
}

void ClientSettings::validate() const {
  const auto sep = url.find("://");
  const std::string_view scheme =
      sep == std::string::npos ? std::string_view() : std::string_view(url).substr(0, sep);
  if (scheme != "http" && scheme != "https" && scheme != "chdb") {
    throw InvalidField("destination.url", "must start with http://, https:// or chdb://");
  }
  const std::string_view rest = std::string_view(url).substr(sep + 3);
  // The URL is not repeated: what comes before '@', after '?' or after '#' may be a secret.
  if (rest.find('@') != std::string_view::npos) {
    throw InvalidField("destination.url",
                       "must not carry user info (user:password@): give the credentials in "
                       "destination.user and destination.password");
  }
  if (rest.find_first_of("?#") != std::string_view::npos) {
    throw InvalidField("destination.url",
                       "must not carry a query string or fragment ('?' or '#'): give "
                       "credentials in destination.user and destination.password");
  }
  if (scheme != "chdb" && rest.substr(0, rest.find('/')).empty()) {
    throw InvalidField("destination.url", "names no host");
  }
  if (max_response_bytes == 0) {
    throw InvalidField("destination.max_response_bytes", "must be at least 1");
  }
}

bool is_transient_code(int code) {
  switch (code) {
    case 159:  // TIMEOUT_EXCEEDED
    case 164:  // READONLY (a replica catching up)
    case 202:  // TOO_MANY_SIMULTANEOUS_QUERIES
    case 203:  // NO_FREE_CONNECTION
    case 209:  // SOCKET_TIMEOUT
    case 210:  // NETWORK_ERROR
    case 241:  // MEMORY_LIMIT_EXCEEDED
    case 242:  // TABLE_IS_READ_ONLY
    case 252:  // TOO_MANY_PARTS
    case 285:  // TOO_FEW_LIVE_REPLICAS
    case 319:  // UNKNOWN_STATUS_OF_INSERT
    case 425:  // SYSTEM_ERROR
    case 999:  // KEEPER_EXCEPTION
      return true;
    default: return false;
  }
}

bool is_authentication_code(int code) {
  // UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTHENTICATION_FAILED
  return code == 192 || code == 193 || code == 194 || code == 516;
}

void throw_error(const std::string& message, int code) {
  if (is_transient_code(code)) throw ClickHouseTransientError(message, code);
  throw ClickHouseFatalError(message, code);
}

int exception_code(std::string_view text) {
  // A hand-written scan rather than std::regex: linear, no recursion, over a bounded prefix.
  text = text.substr(0, std::min(text.size(), kMaxErrorBodyBytes));
  int code = find_code(text, ", e.displayText() = DB::");
  if (code < 0) code = find_code(text, ". DB::Exception");
  return code < 0 ? 0 : code;
}

std::string_view statement_kind(std::string_view sql) {
  static constexpr std::array<std::string_view, 22> kinds = {
      "ALTER", "ATTACH",   "CHECK",  "CREATE",   "DELETE", "DESC",     "DESCRIBE", "DETACH",
      "DROP",  "EXCHANGE", "EXISTS", "INSERT",   "KILL",   "OPTIMIZE", "RENAME",   "SELECT",
      "SET",   "SHOW",     "SYSTEM", "TRUNCATE", "USE",    "WITH"};
  std::size_t i = 0;
  while (i < sql.size() && (sql[i] == ' ' || sql[i] == '\n' || sql[i] == '\t' || sql[i] == '(')) {
    ++i;
  }
  std::string word;
  for (; i < sql.size() && word.size() <= 8 && is_alnum(sql[i]); ++i) {
    word += static_cast<char>(sql[i] >= 'a' && sql[i] <= 'z' ? sql[i] - 'a' + 'A' : sql[i]);
  }
  for (const std::string_view k : kinds) {
    if (word == k) return k;
  }
  return "statement";
}

std::string error_summary(std::string_view text, std::string_view sql) {
  text = text.substr(0, std::min(text.size(), kMaxErrorBodyBytes));
  const int code = exception_code(text);
  const std::string_view name = exception_name(text);
  // The exception's message; a text that is not ClickHouse's (a proxy's page) is taken whole, but
  // one with a code and no message keeps nothing (it could be rows around an exception).
  std::string_view msg = text;
  constexpr std::string_view marker = "DB::Exception: ";
  if (const auto at = msg.find(marker); at != std::string_view::npos) {
    msg = msg.substr(at + marker.size());
  } else if (code != 0) {
    msg = {};
  }
  while (!msg.empty() && (msg.front() == ' ' || msg.front() == '\n' || msg.front() == '\r')) {
    msg.remove_prefix(1);
  }
  const std::string_view head = statement_head(sql);
  // The first clause only: what follows its ": " is where servers put the rows they could not
  // parse, the statement, and the stack of what they were doing.
  std::string clause;
  for (std::size_t i = 0; i < msg.size() && clause.size() < kMaxServerErrorBytes;) {
    const std::string_view rest = msg.substr(i);
    const char c = msg[i];
    if (c == '\n' || c == '\r' || rest.starts_with(": ") || rest.starts_with(", e.what() = ") ||
        rest.starts_with(" (version ") || rest.starts_with(" in scope ") ||
        rest.starts_with(" In scope ") || (!head.empty() && rest.starts_with(head)) ||
        (!name.empty() && rest.starts_with("(") && rest.substr(1).starts_with(name))) {
      break;
    }
    // Quoted parts are values (or names); an apostrophe inside a word ("doesn't") is not a quote.
    if (c == '"' || c == '`' || (c == '\'' && (i == 0 || !is_alnum(msg[i - 1])))) {
      clause += "'\xE2\x80\xA6'";
      i = past_quoted(msg, i);
      continue;
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      clause += ' ';
      ++i;
      continue;
    }
    // Invalid UTF-8 (a proxy's page, a cut) would make the status unprintable as JSON.
    const std::size_t n = utf8_sequence_length(rest);
    if (n == 0) {
      clause += '?';
      ++i;
      continue;
    }
    clause.append(rest.substr(0, n));
    i += n;
  }
  while (!clause.empty() && (clause.back() == ' ' || clause.back() == '.' || clause.back() == ',' ||
                             clause.back() == ';')) {
    clause.pop_back();
  }
  std::string out;
  if (code != 0) out = "Code: " + std::to_string(code) + ". ";
  out += clause;
  if (!name.empty()) out += " (" + std::string(name) + ")";
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return capped_error(out, kMaxServerErrorBytes);
}

Client::Client(ClientSettings settings) : settings_(std::move(settings)) {
  settings_.validate();
  constexpr std::string_view chdb = "chdb://";
  if (settings_.url.rfind(chdb, 0) == 0) {
    transport_ = detail::chdb_transport(settings_, settings_.url.substr(chdb.size()));
  } else {
    transport_ = detail::http_transport(settings_);
  }
  if (settings_.wrap) transport_ = settings_.wrap(std::move(transport_));
}

Client::~Client() = default;

std::string Client::query(std::string_view sql) { return transport_->query(sql); }

std::string Client::query(std::string_view sql, const ExternalTable& table) {
  return transport_->query(sql, table);
}

void Client::insert(std::string_view insert_sql, std::string_view rows) {
  insert_streamed(insert_sql, [rows](std::string& piece) {
    piece.append(rows);
    return false;
  });
}

void Client::insert_streamed(std::string_view insert_sql, const Producer& produce) {
  const std::vector<Setting> pinned = features().insert_settings();
  transport_->insert(insert_sql, pinned, produce);
}

ServerVersion Client::version() {
  if (version_) return *version_;
  const std::string v = query("SELECT version()");
  ServerVersion out;
  if (std::sscanf(v.c_str(), "%d.%d", &out.major, &out.minor) != 2) {
    throw ClickHouseFatalError("ClickHouse at " + settings_.describe() +
                                   " answered version() with '" + error_summary(v) + "'",
                               0);
  }
  version_ = out;
  return out;
}

}  // namespace clickpipe::clickhouse
