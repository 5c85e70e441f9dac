#include "clickpipe/clickhouse/client.hpp"

#include <cstdio>
#include <regex>

#include "transports.hpp"

namespace clickpipe::clickhouse {

std::string ClientSettings::describe() const {
  if (url.rfind("chdb://", 0) == 0) return url + " (database " + database + ")";
  return url + " as " + user + " (database " + database + ")";
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

void throw_error(const std::string& message, int code) {
  if (is_transient_code(code)) throw ClickHouseTransientError(message, code);
  throw ClickHouseFatalError(message, code);
}

int exception_code(std::string_view text) {
  static const std::regex old_style(R"(Code: (\d+), e\.displayText\(\) = DB::)");
  static const std::regex new_style(R"(Code: (\d+)\. DB::Exception)");
  std::match_results<std::string_view::const_iterator> m;
  if (std::regex_search(text.begin(), text.end(), m, old_style) ||
      std::regex_search(text.begin(), text.end(), m, new_style)) {
    return std::stoi(m[1].str());
  }
  return 0;
}

namespace detail {
std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  if (s.size() > 2000) s = s.substr(0, 2000) + "...";
  return s;
}
}  // namespace detail

Client::Client(ClientSettings settings) : settings_(std::move(settings)) {
  constexpr std::string_view chdb = "chdb://";
  if (settings_.url.rfind(chdb, 0) == 0) {
    transport_ = detail::chdb_transport(settings_, settings_.url.substr(chdb.size()));
  } else if (settings_.url.rfind("http://", 0) == 0 || settings_.url.rfind("https://", 0) == 0) {
    transport_ = detail::http_transport(settings_);
  } else {
    throw InvalidField("destination.url",
                       "'" + settings_.url + "' is neither http://, https:// nor chdb://");
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
                                   " answered version() with '" + detail::trimmed(v) + "'",
                               0);
  }
  version_ = out;
  return out;
}

}  // namespace clickpipe::clickhouse
