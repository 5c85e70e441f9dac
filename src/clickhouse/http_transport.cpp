// ClickHouse's HTTP interface over libcurl.
#include <curl/curl.h>
#include <strings.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "transports.hpp"

namespace clickpipe::clickhouse::detail {
namespace {

std::once_flag curl_init;

// Collects a response body: a success's whole, up to `limit` bytes, and of an error only its first
// kMaxErrorBodyBytes. Past either bound the transfer is stopped (libcurl then reports a write
// error), so a server cannot make the client hold, or wait for, more.
struct Sink {
  CURL* curl;
  std::size_t limit;
  std::string body;
  bool too_big = false;    // a success larger than `limit`
  bool error_cut = false;  // an error body cut at kMaxErrorBodyBytes

  static std::size_t collect(char* data, std::size_t size, std::size_t n, void* self) {
    auto& s = *static_cast<Sink*>(self);
    const std::size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(s.curl, CURLINFO_RESPONSE_CODE, &status);
    const std::size_t bound = status == 200 ? s.limit : kMaxErrorBodyBytes;
    const std::size_t room = bound - std::min(bound, s.body.size());
    if (len > room) {
      if (status == 200) {
        s.too_big = true;
      } else {
        s.body.append(data, room);
        s.error_cut = true;
      }
      return 0;
    }
    s.body.append(data, len);
    return len;
  }
};

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

// The code in an X-ClickHouse-Exception-Code header: up to 9 digits (atoi would overflow on more,
// which is undefined), else 0.
int header_code(std::string_view v) {
  if (v.empty() || v.size() > 9) return 0;
  int code = 0;
  for (const char c : v) {
    if (c < '0' || c > '9') return 0;
    code = code * 10 + (c - '0');
  }
  return code;
}

// Feeds libcurl from a Producer, a piece at a time; the Producer is called only once the previous
// piece was handed over whole.
struct Stream {
  Stream(const Producer& p, std::string first) : produce(p), pending(std::move(first)) {}
  const Producer& produce;
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

class Http final : public Transport {
 public:
  explicit Http(const ClientSettings& settings) : settings_(settings) {
    std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    curl_ = curl_easy_init();
    if (!curl_) throw ClickHouseFatalError("cannot initialise libcurl", 0);
  }
  ~Http() override { curl_easy_cleanup(curl_); }

  std::string query(std::string_view sql) override { return perform(sql, "", Body::plain(sql)); }

  std::string query(std::string_view sql, const ExternalTable& table) override {
    // With a form body the query travels in the URL.
    const std::string params = "&query=" + escaped(sql) + "&" + escaped(table.name) +
                               "_structure=" + escaped(table.structure) + "&" +
                               escaped(table.name) + "_format=TabSeparated";
    Body body;
    body.table = &table;
    return perform(sql, params, std::move(body));
  }

  void insert(std::string_view insert_sql, std::span<const Setting> settings,
              const Producer& produce) override {
    std::string params;
    for (const Setting& s : settings) {
      params.append(1, '&').append(escaped(s.name)).append(1, '=').append(escaped(s.value));
    }
    std::string body = std::string(insert_sql) + " FORMAT TabSeparated\n";
    if (!produce(body)) {  // all of it in one piece: a plain body
      perform(insert_sql, params, Body::plain(body));
      return;
    }
    Body stream;
    stream.produce = &produce;
    stream.first = std::move(body);
    perform(insert_sql, params, std::move(stream));
  }

  std::string describe() const override { return settings_.describe(); }

 private:
  // A plain body, a multipart form carrying an external table, or a stream that starts with
  // `first` and goes on with `produce`.
  struct Body {
    std::string_view text;
    const ExternalTable* table = nullptr;
    const Producer* produce = nullptr;
    std::string first;
    static Body plain(std::string_view text) {
      Body b;
      b.text = text;
      return b;
    }
  };

  std::string escaped(std::string_view v) const {
    char* e = curl_easy_escape(curl_, v.data(), static_cast<int>(v.size()));
    std::string out(e);
    curl_free(e);
    return out;
  }

  // Runs one request; `sql` only names the statement's kind in messages.
  std::string perform(std::string_view sql, const std::string& url_params, Body body) {
    CURL* c = curl_;
    curl_easy_reset(c);  // keeps the connection cache: the connection is reused
    // The database and wait_end_of_query go in the URL; the credentials in headers.
    const std::string url = settings_.url + "/?database=" + escaped(settings_.database) +
                            "&wait_end_of_query=1" + url_params;
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, ("X-ClickHouse-User: " + settings_.user).c_str());
    headers = curl_slist_append(headers, ("X-ClickHouse-Key: " + settings_.password).c_str());
    if (!body.table)
      headers = curl_slist_append(headers, "Content-Type: text/plain; charset=UTF-8");
    headers = curl_slist_append(headers, "Expect:");
    Sink sink{c, settings_.max_response_bytes, {}};
    Headers seen;
    curl_mime* form = nullptr;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    std::optional<Stream> stream;
    if (body.produce) {
      stream.emplace(*body.produce, std::move(body.first));
      headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
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
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Sink::collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, Headers::collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &seen);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(settings_.connect_timeout.count()));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(settings_.timeout.count()));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    // The server closes a connection idle for 3 s (keep_alive_timeout's default); reusing one
    // close to that races its close, so connections idle longer than 2 s are not reused.
    curl_easy_setopt(c, CURLOPT_MAXAGE_CONN, 2L);
    if (!settings_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, settings_.ca_file.c_str());
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, settings_.verify_peer ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, settings_.verify_peer ? 2L : 0L);
    const CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_mime_free(form);
    if (stream && stream->failure) std::rethrow_exception(stream->failure);

    // Messages name the server and the statement's kind; of the server's answer they keep only
    // what error_summary() lets through (no rows, no statement).
    const std::string what =
        "ClickHouse at " + settings_.describe() + ": " + std::string(statement_kind(sql));
    if (sink.too_big) {
      throw ClickHouseFatalError(what + ": the answer is larger than max_response_bytes (" +
                                     std::to_string(settings_.max_response_bytes) +
                                     " bytes): read it in smaller parts or raise the limit",
                                 0);
    }
    // A certificate refused (unknown CA, wrong host name, an unreadable CA file) will not heal by
    // retrying, as a refused PostgreSQL certificate does not.
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
        rc == CURLE_SSL_CERTPROBLEM) {
      throw ClickHouseFatalError(what + ": " + curl_easy_strerror(rc), 0);
    }
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && sink.error_cut)) {
      // Refused, reset, timed out, name not resolved: whether the request landed is unknown, and
      // retrying is safe (inserts carry versions).
      throw ClickHouseTransientError(what + ": " + curl_easy_strerror(rc), 0);
    }
    const std::string& response = sink.body;
    int code = header_code(seen.exception_code);
    // An error after the response had started comes with HTTP 200, at the end of the body.
    std::string_view error_text = response;
    if (status == 200) {
      error_text =
          response.find("DB::Exception") == std::string::npos
              ? std::string_view()
              : error_text.substr(response.size() - std::min(response.size(), kMaxErrorBodyBytes));
    }
    if (code == 0 && !error_text.empty()) code = exception_code(error_text);
    if (status == 200 && code == 0) return std::move(sink.body);
    const std::string http = "HTTP " + std::to_string(status);
    if (status == 401 || status == 403 || is_authentication_code(code)) {
      // The server's text may name the password's fault; the user is all a message needs.
      const std::string msg = "ClickHouse at " + settings_.describe() +
                              ": authentication failed for user " + settings_.user + " (" + http +
                              (code != 0 ? ", code " + std::to_string(code) : "") + ")";
      if (code != 0) throw_error(msg, code);
      throw ClickHouseFatalError(msg, 0);
    }
    const std::string summary = error_summary(error_text, sql);
    const std::string msg = what + ": " + http + (summary.empty() ? "" : ": " + summary);
    if (code != 0) throw_error(msg, code);
    if (status >= 500 || status == 429 || status == 408) throw ClickHouseTransientError(msg, 0);
    // A 400 with no exception and no body is not a refusal of the query: the server could not
    // read the request (18.16 answers so when a body it reads on a reused connection comes too
    // late, as on a starved machine), so sending it again is right.
    if (status == 400 && response.find_first_not_of(" \r\n") == std::string::npos) {
      throw ClickHouseTransientError(msg + " (no body: the request was not read whole)", 0);
    }
    throw ClickHouseFatalError(msg, 0);
  }

  ClientSettings settings_;
  CURL* curl_;
};

}  // namespace

std::unique_ptr<Transport> http_transport(const ClientSettings& settings) {
  return std::make_unique<Http>(settings);
}

}  // namespace clickpipe::clickhouse::detail
