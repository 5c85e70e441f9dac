// ClickHouse embedded in this process: libchdb.so (npm package @chdb/lib-linux-x64-gnu), loaded
// with dlopen the first time a chdb:// client is opened, so that nothing needs it to build.
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>

#include "clickpipe/clickhouse/quote.hpp"
#include "transports.hpp"

namespace clickpipe::clickhouse::detail {
namespace {

// The part of chdb.h used here, with its handles opaque.
extern "C" {
struct chdb_result;
struct chdb_connection_;
struct chdb_insert_stream_;
}
using Conn = chdb_connection_*;
using InsertStream = chdb_insert_stream_*;

struct Api {
  Conn* (*connect)(int, char**);
  void (*close_conn)(Conn*);
  chdb_result* (*query_n)(Conn, const char*, std::size_t, const char*, std::size_t);
  char* (*result_buffer)(chdb_result*);
  std::size_t (*result_length)(chdb_result*);
  const char* (*result_error)(chdb_result*);
  void (*destroy_query_result)(chdb_result*);
  InsertStream (*stream_insert_n)(Conn, const char*, std::size_t, const char*, std::size_t);
  int (*stream_append)(InsertStream, const void*, std::size_t);
  chdb_result* (*stream_done)(InsertStream);
  const char* (*stream_insert_error)(InsertStream);
  void (*destroy_insert_stream)(InsertStream);
  void (*set_signal_handlers_enabled)(int);
  int (*shutdown)();
};

// The engine serves one directory per process. It stays up for the life of the process: an
// anchor connection is kept open, because closing the last connection shuts the engine down and
// booting it again in the same process is not something libchdb supports well. At exit the
// anchor is closed and the engine stopped before static destructors run: its background
// threads (merges) otherwise race the teardown and crash the exiting process.
struct Engine {
  Api api{};
  std::string directory;
  Conn* anchor = nullptr;

  Conn* connect() const {
    std::string path = "--path=" + directory;
    char* argv[] = {const_cast<char*>("clickpipe"), path.data()};
    Conn* c = api.connect(2, argv);
    if (!c || !*c) {
      throw ClickHouseTransientError("cannot open the embedded ClickHouse at " + directory +
                                         " (is another process using that directory?)",
                                     0);
    }
    return c;
  }
};

std::mutex engine_mu;
Engine* engine = nullptr;  // never freed: it lives as long as the process

void stop_engine() {
  std::lock_guard lk(engine_mu);
  if (!engine || !engine->anchor) return;
  engine->api.close_conn(engine->anchor);
  engine->anchor = nullptr;
  engine->api.shutdown();  // refuses (harmlessly) while a client still holds a connection
}

template <typename F>
void resolve(void* lib, const char* name, F& to, const std::string& path) {
  to = reinterpret_cast<F>(dlsym(lib, name));
  if (!to) {
    throw ClickHouseFatalError(path + " has no " + name + ": not a libchdb.so this build knows", 0);
  }
}

Engine& engine_for(const ClientSettings& settings, const std::string& directory) {
  namespace fs = std::filesystem;
  if (directory.empty()) {
    throw InvalidField("destination.url", "chdb:// needs a directory, e.g. chdb:///var/lib/ch");
  }
  std::error_code ec;
  fs::create_directories(directory, ec);
  if (ec) throw ClickHouseFatalError("cannot create " + directory + ": " + ec.message(), 0);
  const std::string dir = fs::weakly_canonical(fs::absolute(directory)).string();
  std::lock_guard lk(engine_mu);
  if (engine) {
    if (engine->directory != dir) {
      throw ClickHouseFatalError("the embedded ClickHouse of this process stores its data in " +
                                     engine->directory + ", not " + dir +
                                     ": one directory per process",
                                 0);
    }
    return *engine;
  }
  std::string path = settings.chdb_library;
  if (path.empty()) {
    const char* env = std::getenv("CLICKPIPE_CHDB_LIBRARY");
    path = env && *env ? env : "libchdb.so";
  }
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    throw ClickHouseFatalError(
        "cannot load the embedded ClickHouse from " + path + ": " + (why ? why : "unknown") +
            "; install the npm package @chdb/lib-linux-x64-gnu and name its libchdb.so in "
            "destination.chdb_library or CLICKPIPE_CHDB_LIBRARY",
        0);
  }
  auto e = std::make_unique<Engine>();
  Api& a = e->api;
  resolve(lib, "chdb_connect", a.connect, path);
  resolve(lib, "chdb_close_conn", a.close_conn, path);
  resolve(lib, "chdb_query_n", a.query_n, path);
  resolve(lib, "chdb_result_buffer", a.result_buffer, path);
  resolve(lib, "chdb_result_length", a.result_length, path);
  resolve(lib, "chdb_result_error", a.result_error, path);
  resolve(lib, "chdb_destroy_query_result", a.destroy_query_result, path);
  resolve(lib, "chdb_stream_insert_n", a.stream_insert_n, path);
  resolve(lib, "chdb_stream_append", a.stream_append, path);
  resolve(lib, "chdb_stream_done", a.stream_done, path);
  resolve(lib, "chdb_stream_insert_error", a.stream_insert_error, path);
  resolve(lib, "chdb_destroy_insert_stream", a.destroy_insert_stream, path);
  resolve(lib, "chdb_set_signal_handlers_enabled", a.set_signal_handlers_enabled, path);
  resolve(lib, "chdb_shutdown", a.shutdown, path);
  // The host keeps its own signal handling (a service's SIGTERM, the CLI's graceful stop).
  a.set_signal_handlers_enabled(0);
  e->directory = dir;
  e->anchor = e->connect();
  engine = e.release();
  std::atexit(stop_engine);
  return *engine;
}

struct Result {
  const Api& api;
  chdb_result* r;
  ~Result() {
    if (r) api.destroy_query_result(r);
  }
};

class Chdb final : public Transport {
 public:
  Chdb(const ClientSettings& settings, const Engine& e)
      : settings_(settings), e_(e), conn_(e.connect()) {
    try {
      if (settings_.database != "default") run("USE " + quote(settings_.database));
    } catch (...) {
      e_.api.close_conn(conn_);
      throw;
    }
  }
  ~Chdb() override { e_.api.close_conn(conn_); }

  std::string query(std::string_view sql) override { return run(sql); }

  // The embedded engine takes no external data: the table becomes a temporary table of this
  // connection's session for the one query.
  std::string query(std::string_view sql, const ExternalTable& table) override {
    const std::string name = quote(table.name);
    run("DROP TEMPORARY TABLE IF EXISTS " + name);
    run("CREATE TEMPORARY TABLE " + name + " (" + table.structure + ")");
    insert("INSERT INTO " + name, {}, [&](std::string& piece) {
      piece = table.tsv;
      return false;
    });
    std::string out = run(sql);
    run("DROP TEMPORARY TABLE " + name);
    return out;
  }

  void insert(std::string_view insert_sql, std::span<const Setting> settings,
              const Producer& produce) override {
    std::string sql(insert_sql);
    for (std::size_t i = 0; i < settings.size(); ++i) {
      sql.append(i ? ", " : " SETTINGS ").append(settings[i].name).append(" = ");
      literal(sql, settings[i].value);
    }
    constexpr std::string_view format = "TabSeparated";
    const Api& api = e_.api;
    InsertStream s =
        api.stream_insert_n(*conn_, sql.data(), sql.size(), format.data(), format.size());
    struct Guard {
      const Api& api;
      InsertStream s;
      ~Guard() { api.destroy_insert_stream(s); }
    } guard{api, s};
    if (const char* err = api.stream_insert_error(s)) fail(err, insert_sql);
    std::exception_ptr failure;
    bool refused = false;  // the engine took no more data: the insert must not count as done
    std::string piece;
    for (bool more = true; more;) {
      piece.clear();
      try {
        more = produce(piece);
      } catch (...) {
        // As over HTTP: a line no table parses ends the body, so the insert is refused whole.
        failure = std::current_exception();
        piece.assign(1, '\n');
        more = false;
      }
      if (!piece.empty() && api.stream_append(s, piece.data(), piece.size()) != 0) {
        refused = true;
        break;
      }
    }
    Result done{api, api.stream_done(s)};
    if (failure) std::rethrow_exception(failure);
    if (const char* err = done.r ? api.result_error(done.r) : "no result") fail(err, insert_sql);
    if (const char* err = api.stream_insert_error(s)) fail(err, insert_sql);
    if (refused) fail("the insert stream refused data without saying why", insert_sql);
  }

  std::string describe() const override { return settings_.describe(); }

 private:
  std::string run(std::string_view sql) {
    constexpr std::string_view format = "TabSeparated";
    const Api& api = e_.api;
    Result r{api, api.query_n(*conn_, sql.data(), sql.size(), format.data(), format.size())};
    if (!r.r) fail("no result", sql);
    if (const char* err = api.result_error(r.r)) fail(err, sql);
    const char* data = api.result_buffer(r.r);
    if (!data) return {};
    const std::size_t size = api.result_length(r.r);
    // The engine has the answer in memory already; copying a huge one would double it.
    if (size > settings_.max_response_bytes) {
      throw ClickHouseFatalError(where(sql) + ": the answer is larger than max_response_bytes (" +
                                     std::to_string(settings_.max_response_bytes) +
                                     " bytes): read it in smaller parts or raise the limit",
                                 0);
    }
    return std::string(data, size);
  }

  // A setting's value as a SQL literal: numbers as they are, anything else quoted.
  static void literal(std::string& sql, const std::string& v) {
    if (!v.empty() && v.find_first_not_of("0123456789.") == std::string::npos) {
      sql += v;
      return;
    }
    sql += '\'';
    for (char c : v) {
      if (c == '\'' || c == '\\') sql += '\\';
      sql += c;
    }
    sql += '\'';
  }

  std::string where(std::string_view sql) const {
    return "ClickHouse embedded at " + e_.directory + ": " + std::string(statement_kind(sql));
  }

  // The engine's error text as a message: its code, first clause and name, not the rows or the
  // statement it may repeat (error_summary()).
  [[noreturn]] void fail(const char* error, std::string_view sql) const {
    // Only a bounded prefix is read: strnlen, since the text could be anything up to its NUL.
    const std::string_view text(error, strnlen(error, kMaxErrorBodyBytes));
    throw_error(where(sql) + ": " + error_summary(text, sql), exception_code(text));
  }

  ClientSettings settings_;
  const Engine& e_;
  Conn* conn_;
};

}  // namespace

std::unique_ptr<Transport> chdb_transport(const ClientSettings& settings,
                                          const std::string& directory) {
  return std::make_unique<Chdb>(settings, engine_for(settings, directory));
}

}  // namespace clickpipe::clickhouse::detail
