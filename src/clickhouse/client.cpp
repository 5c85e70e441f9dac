#include "clickpipe/clickhouse/client.hpp"

#include <curl/curl.h>
#include <strings.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <regex>

namespace clickpipe::clickhouse {

std::string ClientSettings::describe() const {
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

namespace {

std::once_flag curl_init;

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

struct Headers {
  std::string exception_code;
  static std::size_t collect(char* data, std::size_t size, std::size_t n, void* self) {
    std::string_view line(data, size * n);
    constexpr std::string_view key = "X-ClickHouse-Exception-Code:";
    if (line.size() > key.size() && strncasecmp(line.data(), key.data(), key.size()) == 0) {
      std::string v(line.substr(key.size()));
      while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.pop_back();
      while (!v.empty() && v.front() == ' ') v.erase(v.begin());
      static_cast<Headers*>(self)->exception_code = v;
    }
    return size * n;
  }
};

// "Code: 62, e.displayText() = DB::Exception: ..." anywhere in a body: the server's error, even
// when it came with HTTP 200 (an error after the response had started).
int code_in(const std::string& body) {
  static const std::regex re(R"(Code: (\d+), e\.displayText\(\) = DB::)");
  std::smatch m;
  if (std::regex_search(body, m, re)) return std::atoi(m[1].str().c_str());
  static const std::regex newer(R"(Code: (\d+)\. DB::Exception)");
  if (std::regex_search(body, m, newer)) return std::atoi(m[1].str().c_str());
  return 0;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  if (s.size() > 2000) s = s.substr(0, 2000) + "...";
  return s;
}

}  // namespace

Client::Client(ClientSettings settings) : settings_(std::move(settings)) {
  std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  curl_ = curl_easy_init();
  if (!curl_) throw ClickHouseFatalError("cannot initialise libcurl", 0);
}

Client::~Client() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

// Either a plain body (the query, then any data) or a multipart form carrying an external table.
struct Client::Body {
  std::string_view text;
  const ExternalTable* table = nullptr;
  const Producer* produce = nullptr;
};

namespace {

// Feeds libcurl from a Producer, a piece at a time; the Producer is called only once the previous
// piece was handed over whole.
struct Stream {
  const Client::Producer& produce;
  std::string pending;
  std::size_t at = 0;
  bool more = true;
  std::exception_ptr failure;

  static std::size_t read(char* to, std::size_t size, std::size_t n, void* self) {
    auto& s = *static_cast<Stream*>(self);
    try {
      while (s.at == s.pending.size() && s.more) {
        s.pending.clear();
        s.at = 0;
        s.more = s.produce(s.pending);
      }
    } catch (...) {
      // Everything sent so far is whole rows. End the body with an empty line, which no table
      // can parse, so that ClickHouse refuses the whole insert instead of storing the rows it
      // got (as it does when the connection just drops).
      s.failure = std::current_exception();
      s.pending = "\n";
      s.at = 0;
      s.more = false;
    }
    const std::size_t k = std::min(size * n, s.pending.size() - s.at);
    std::memcpy(to, s.pending.data() + s.at, k);
    s.at += k;
    return k;  // 0 once everything was sent
  }
};

}  // namespace

std::string Client::query(std::string_view sql, std::string_view data) {
  std::string body(sql);
  if (!data.empty()) {
    body += '\n';
    body.append(data);
  }
  return perform("", Body{body});
}

std::string Client::query(std::string_view sql, const ExternalTable& table) {
  // With a form body the query travels in the URL.
  CURL* c = static_cast<CURL*>(curl_);
  auto escaped = [c](std::string_view v) {
    char* e = curl_easy_escape(c, v.data(), static_cast<int>(v.size()));
    std::string out(e);
    curl_free(e);
    return out;
  };
  const std::string params = "&query=" + escaped(sql) + "&" + escaped(table.name) +
                             "_structure=" + escaped(table.structure) + "&" + escaped(table.name) +
                             "_format=TabSeparated";
  return perform(params, Body{{}, &table});
}

std::string Client::query_streamed(std::string_view sql, const Producer& produce) {
  return perform("", Body{sql, nullptr, &produce});  // the query leads the body, then the data
}

std::string Client::perform(const std::string& url_params, const Body& body) {
  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_reset(c);  // keeps the connection cache: the connection is reused
  // The database and wait_end_of_query go in the URL; the credentials in headers.
  char* db =
      curl_easy_escape(c, settings_.database.c_str(), static_cast<int>(settings_.database.size()));
  const std::string url = settings_.url + "/?database=" + db + "&wait_end_of_query=1" + url_params;
  curl_free(db);
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, ("X-ClickHouse-User: " + settings_.user).c_str());
  headers = curl_slist_append(headers, ("X-ClickHouse-Key: " + settings_.password).c_str());
  if (!body.table) headers = curl_slist_append(headers, "Content-Type: text/plain; charset=UTF-8");
  headers = curl_slist_append(headers, "Expect:");
  std::string response;
  Headers seen;
  curl_mime* form = nullptr;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  std::optional<Stream> stream;
  if (body.produce) {
    stream.emplace(Stream{*body.produce, std::string(body.text) + "\n"});
    headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, Stream::read);
    curl_easy_setopt(c, CURLOPT_READDATA, &*stream);
  } else if (body.table) {
    form = curl_mime_init(c);
    curl_mimepart* part = curl_mime_addpart(form);
    curl_mime_name(part, body.table->name.c_str());
    curl_mime_filename(part, body.table->name.c_str());
    curl_mime_data(part, body.table->tsv.data(), body.table->tsv.size());
    curl_easy_setopt(c, CURLOPT_MIMEPOST, form);
  } else {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.text.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.text.size()));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, Headers::collect);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &seen);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(settings_.connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(settings_.timeout.count()));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  if (!settings_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, settings_.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, settings_.verify_peer ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, settings_.verify_peer ? 2L : 0L);
  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_mime_free(form);
  if (stream && stream->failure) std::rethrow_exception(stream->failure);

  const std::string what = "ClickHouse at " + settings_.describe();
  if (rc != CURLE_OK) {
    // Refused, reset, timed out, name not resolved: whether the request landed is unknown, and
    // retrying is safe (inserts carry versions).
    throw ClickHouseTransientError(what + ": " + curl_easy_strerror(rc), 0);
  }
  int code = seen.exception_code.empty() ? 0 : std::atoi(seen.exception_code.c_str());
  if (code == 0 && (status != 200 || response.find("DB::Exception") != std::string::npos)) {
    code = code_in(response);
  }
  if (status == 200 && code == 0) return response;
  const std::string msg = what + ": HTTP " + std::to_string(status) + ": " + trimmed(response);
  if (code != 0) {
    if (is_transient_code(code)) throw ClickHouseTransientError(msg, code);
    throw ClickHouseFatalError(msg, code);
  }
  if (status >= 500 || status == 429 || status == 408) throw ClickHouseTransientError(msg, 0);
  throw ClickHouseFatalError(msg, 0);
}

ServerVersion Client::version() {
  if (version_) return *version_;
  const std::string v = query("SELECT version()");
  ServerVersion out;
  std::sscanf(v.c_str(), "%d.%d", &out.major, &out.minor);
  version_ = out;
  return out;
}

}  // namespace clickpipe::clickhouse
