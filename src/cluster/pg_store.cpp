#include "clickpipe/cluster/pg_store.hpp"

#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <climits>

#include "clickpipe/store/file_store.hpp"

namespace clickpipe::cluster {
namespace {

using Params = std::vector<std::optional<std::string>>;
using steady = std::chrono::steady_clock;

std::uint64_t to_u64(std::string_view s) {
  std::uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

std::string default_worker_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host[0] ? host : "localhost") + ":" + std::to_string(::getpid());
}

// Version 1: the whole schema. A later version appends its statements here; the meta table
// records how far a schema has come.
const std::vector<std::vector<std::string>>& migrations() {
  static const std::vector<std::vector<std::string>> m = {{
      "CREATE SEQUENCE IF NOT EXISTS {s}.tokens",
      "CREATE TABLE IF NOT EXISTS {s}.workers (id bigint PRIMARY KEY, name text NOT NULL, "
      "address text NOT NULL DEFAULT '', started_at timestamptz NOT NULL DEFAULT "
      "clock_timestamp(), lease_until timestamptz NOT NULL, draining boolean NOT NULL DEFAULT "
      "false)",
      "CREATE TABLE IF NOT EXISTS {s}.pipes (id text PRIMARY KEY, record text NOT NULL, owner "
      "bigint, token bigint NOT NULL, saved_at timestamptz NOT NULL DEFAULT clock_timestamp())",
      "CREATE INDEX IF NOT EXISTS pipes_owner ON {s}.pipes (owner)",
      "CREATE TABLE IF NOT EXISTS {s}.commands (seq bigserial PRIMARY KEY, pipe_id text NOT "
      "NULL, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT clock_timestamp(), "
      "taken_by bigint, answer text, answered_at timestamptz)",
      "CREATE INDEX IF NOT EXISTS commands_waiting ON {s}.commands (pipe_id) WHERE answer IS "
      "NULL",
  }};
  return m;
}

std::string expand(std::string sql, const std::string& schema) {
  for (std::size_t at; (at = sql.find("{s}")) != std::string::npos;) sql.replace(at, 3, schema);
  return sql;
}

}  // namespace

void validate(const PgStoreOptions& o) {
  const std::string& s = o.schema;
  // 56 at most: the notice channel is "<schema>_events", and channel names stop at 63 bytes.
  const bool ok = !s.empty() && s.size() <= 56 && !(s[0] >= '0' && s[0] <= '9') && s != "public" &&
                  !s.starts_with("pg_") && std::all_of(s.begin(), s.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                  });
  if (!ok) {
    throw InvalidField("store.schema",
                       "must be 1 to 56 characters of a-z, 0-9 and _, not starting with a digit, "
                       "and not public or pg_*: a schema of clickpipe's own");
  }
  if (o.lease < std::chrono::milliseconds(100)) {
    throw InvalidField("store.lease_ms", "must be at least 100 ms (default 10000)");
  }
}

// One connection, opened on first use and again after it broke; one user at a time.
struct PgStore::Conn {
  postgres::ConnectionSettings settings;
  std::mutex mu;
  std::optional<postgres::Connection> c;
  std::string schema;
  std::chrono::milliseconds statement_timeout{0};  // 0: none (the LISTEN connection)

  postgres::Connection& get() {
    if (!c) {
      c = postgres::Connection::open(settings);
      // Durable when the statement returns, whatever the server's default.
      c->exec("SET synchronous_commit = on");
      // No statement outlives a lease: a stuck one must not hold the worker past it.
      if (statement_timeout.count() > 0) {
        c->exec("SET statement_timeout = " + std::to_string(statement_timeout.count()));
      }
      c->exec("SET client_min_messages = warning");  // no NOTICEs from IF NOT EXISTS on stderr
    }
    return *c;
  }
};

// Runs `f` on `conn`, turning what goes wrong into StoreErrors; a connection that failed is
// dropped and opened again on next use.
template <class F>
auto PgStore::with(Conn& conn, const std::string& doing, F&& f) {
  std::lock_guard lk(conn.mu);
  try {
    return f(conn.get());
  } catch (const postgres::PgTransientError& e) {
    conn.c.reset();
    throw StoreError(StoreErrorCode::Unavailable,
                     doing + " in " + conn.schema + " failed (will retry): " + e.what());
  } catch (const postgres::PgFatalError& e) {
    // Connection-class states mean the session is gone, whatever libpq classified it as.
    // 25006: a read-only session, as after a failover lands on a standby: waiting can heal it.
    const bool connection = e.sqlstate().rfind("08", 0) == 0 || e.sqlstate().empty();
    const bool heals = connection || e.sqlstate() == "25006";
    if (heals) conn.c.reset();
    throw StoreError(heals ? StoreErrorCode::Unavailable : StoreErrorCode::Refused,
                     doing + " in " + conn.schema + " failed: " + e.what());
  } catch (const InvalidField& e) {
    throw StoreError(StoreErrorCode::Refused, doing + ": " + e.what());
  }
}

PgStore::PgStore(PgStoreOptions options) : options_(std::move(options)) {
  if (options_.worker_name.empty()) options_.worker_name = default_worker_name();
  options_.connection.application_name = "clickpipe-store";
  // A store that vanished (failover, blackholed network) fails a call within about half a lease.
  options_.connection.tcp_user_timeout =
      std::max(options_.lease / 2, std::chrono::milliseconds(1000));
  for (auto* slot : {&save_conn_, &coord_conn_, &lease_conn_, &listen_conn_}) {
    *slot = std::make_unique<Conn>();
    (*slot)->settings = options_.connection;
    if (slot != &listen_conn_) (*slot)->statement_timeout = options_.lease;
    (*slot)->schema = "schema " + options_.schema + " of " + options_.connection.describe();
  }
}

PgStore::~PgStore() {
  heartbeat_ = {};  // requests stop and joins
}

std::unique_ptr<PgStore> PgStore::open(PgStoreOptions options) {
  validate(options);
  std::unique_ptr<PgStore> store(new PgStore(std::move(options)));
  store->migrate();
  return store;
}

std::unique_ptr<PgStore> PgStore::attach(PgStoreOptions options) {
  validate(options);
  std::unique_ptr<PgStore> store(new PgStore(std::move(options)));
  const std::string& schema = store->options_.schema;
  store->with(*store->coord_conn_, "reading the store", [&](postgres::Connection& c) {
    std::string value;
    try {
      auto r =
          c.exec("SELECT value FROM " + store->table("meta") + " WHERE key = 'schema_version'");
      value = r.rows() == 1 ? std::string(r.value(0, 0)) : "";
    } catch (const postgres::PgFatalError& e) {
      if (e.sqlstate() != "42P01" && e.sqlstate() != "3F000") throw;
      throw StoreError(StoreErrorCode::NotFound, "there is no store schema " + schema + " in " +
                                                     c.settings().describe() +
                                                     ": is the schema's name right?");
    }
    int version = 0;
    const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), version);
    if (ec != std::errc() || p != value.data() + value.size()) {
      throw StoreError(StoreErrorCode::Corrupt,
                       "store schema " + schema + ": meta.schema_version is not a number");
    }
    if (version > kSchemaVersion) {
      throw StoreError(StoreErrorCode::Refused,
                       "store schema " + schema + " is version " + std::to_string(version) +
                           ", newer than this clickpipe knows (" + std::to_string(kSchemaVersion) +
                           "): run a newer clickpipe");
    }
  });
  return store;
}

std::string PgStore::table(const std::string& name) const {
  return "\"" + options_.schema + "\".\"" + name + "\"";
}

void PgStore::migrate() {
  with(*coord_conn_, "creating the store", [&](postgres::Connection& c) {
    const std::string s = c.identifier(options_.schema);
    c.exec("BEGIN");
    try {
      // Workers starting together migrate one after the other.
      c.exec("SELECT pg_advisory_xact_lock(hashtext('clickpipe.store'), hashtext($1))",
             {options_.schema});
      c.exec("CREATE SCHEMA IF NOT EXISTS " + s);
      c.exec("CREATE TABLE IF NOT EXISTS " + s +
             ".meta (key text PRIMARY KEY, value text NOT NULL)");
      auto r = c.exec("SELECT value FROM " + s + ".meta WHERE key = 'schema_version'");
      int version = 0;
      if (r.rows() == 1) {
        const auto v = r.value(0, 0);
        const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), version);
        if (ec != std::errc() || p != v.data() + v.size() || version < 0) {
          throw StoreError(StoreErrorCode::Corrupt, "store schema " + options_.schema +
                                                        ": meta.schema_version is not a number");
        }
      }
      if (version > kSchemaVersion) {
        throw StoreError(StoreErrorCode::Refused,
                         "store schema " + options_.schema + " is version " +
                             std::to_string(version) + ", newer than this clickpipe knows (" +
                             std::to_string(kSchemaVersion) + "): run a newer clickpipe");
      }
      for (int v = version; v < kSchemaVersion; ++v) {
        for (const std::string& sql : migrations()[static_cast<std::size_t>(v)])
          c.exec(expand(sql, s));
      }
      c.exec("INSERT INTO " + s +
                 ".meta VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = "
                 "EXCLUDED.value",
             {std::to_string(std::max(version, kSchemaVersion))});
      c.exec("COMMIT");
    } catch (...) {
      try {
        c.exec("ROLLBACK");
      } catch (...) {
      }
      throw;
    }
  });
}

// ---- membership ----

void PgStore::join() {
  const auto t0 = steady::now();
  const std::uint64_t id = with(*lease_conn_, "joining", [&](postgres::Connection& c) {
    auto r =
        c.exec("INSERT INTO " + table("workers") +
                   " (id, name, address, lease_until) VALUES (nextval('" + options_.schema +
                   ".tokens'), $1, $2, clock_timestamp() + $3 * interval '1 millisecond') "
                   "RETURNING id",
               {options_.worker_name, options_.address, std::to_string(options_.lease.count())});
    return to_u64(r.value(0, 0));
  });
  {
    std::lock_guard lk(state_mu_);
    worker_ = id;
    lost_ = false;
    lost_why_.clear();
    deadline_ = t0 + options_.lease - options_.lease / 20;
  }
  heartbeat_ = std::jthread([this, id](std::stop_token stop) { heartbeat_loop(id, stop); });
}

void PgStore::heartbeat_loop(std::uint64_t id, std::stop_token stop) {
  const auto period = options_.lease / 4;
  std::unique_lock lk(state_mu_);
  while (!stop.stop_requested() && !lost_) {
    lease_cv_.wait_for(lk, stop, period, [] { return false; });
    if (stop.stop_requested()) return;
    lk.unlock();
    point("renewing");
    const auto t0 = steady::now();
    std::optional<bool> renewed;
    std::string error;
    try {
      renewed = with(*lease_conn_, "renewing the lease", [&](postgres::Connection& c) {
        return c.exec("UPDATE " + table("workers") +
                          " SET lease_until = clock_timestamp() + $2 * interval '1 "
                          "millisecond' WHERE id = $1 AND lease_until > clock_timestamp() "
                          "RETURNING id",
                      {std::to_string(id), std::to_string(options_.lease.count())})
                   .rows() == 1;
      });
    } catch (const StoreError& e) {
      error = e.what();
    }
    lk.lock();
    if (worker_ != id) return;
    if (renewed && *renewed) {
      deadline_ = t0 + options_.lease - options_.lease / 20;
    } else if (renewed) {
      lost_ = true;
      lost_why_ = "the lease of worker " + std::to_string(id) + " had run out when it was renewed";
    } else if (deadline_passed_locked()) {
      lost_ = true;
      lost_why_ =
          "the lease of worker " + std::to_string(id) + " could not be renewed in time: " + error;
    }
  }
}

bool PgStore::deadline_passed_locked() const { return worker_ == 0 || steady::now() >= deadline_; }

bool PgStore::lease_lost() const {
  std::lock_guard lk(state_mu_);
  return worker_ != 0 && (lost_ || steady::now() >= deadline_);
}

std::uint64_t PgStore::worker_id() const {
  std::lock_guard lk(state_mu_);
  return worker_;
}

void PgStore::rejoin() {
  std::uint64_t old = 0;
  {
    std::lock_guard lk(state_mu_);
    old = worker_;
    worker_ = 0;
    owned_.clear();
    fenced_.clear();
  }
  heartbeat_ = {};
  if (old) {
    // This process has stopped the old id's pipes: they need not wait out its lease.
    try {
      with(*coord_conn_, "giving up worker " + std::to_string(old), [&](postgres::Connection& c) {
        c.exec("UPDATE " + table("pipes") + " SET owner = NULL WHERE owner = $1",
               {std::to_string(old)});
        c.exec("DELETE FROM " + table("workers") + " WHERE id = $1", {std::to_string(old)});
        c.exec("SELECT pg_notify($1, 'released')", {options_.schema + "_events"});
      });
    } catch (const StoreError&) {
      // Its lease runs out by itself; the pipes are taken over then.
    }
  }
  join();  // when it throws, worker_id() stays 0 and the worker tries again
}

void PgStore::set_draining() {
  const std::uint64_t me = worker_id();
  with(*coord_conn_, "marking the worker draining", [&](postgres::Connection& c) {
    c.exec("UPDATE " + table("workers") + " SET draining = true WHERE id = $1",
           {std::to_string(me)});
  });
}

void PgStore::leave() {
  for (const std::string& id : owned()) {
    try {
      release(id);
    } catch (const StoreError&) {
    }
  }
  std::uint64_t me = 0;
  {
    std::lock_guard lk(state_mu_);
    me = worker_;
  }
  heartbeat_ = {};
  if (!me) return;
  with(*coord_conn_, "leaving", [&](postgres::Connection& c) {
    c.exec("DELETE FROM " + table("workers") + " WHERE id = $1", {std::to_string(me)});
    c.exec("SELECT pg_notify($1, 'left')", {options_.schema + "_events"});
  });
  std::lock_guard lk(state_mu_);
  worker_ = 0;
}

std::uint64_t PgStore::me_or_throw(const std::string& doing) const {
  if (worker_ == 0) {
    throw StoreError(StoreErrorCode::Refused,
                     doing +
                         ": this process has not joined the cluster (only a cluster worker "
                         "writes pipes to a PostgreSQL store)");
  }
  return worker_;
}

void PgStore::fenced(const std::string& id, const std::string& why, bool moved) {
  if (moved) {
    std::lock_guard lk(state_mu_);
    fenced_.insert(id);  // kept in owned_ until take_fenced: every later save is fenced too
  }
  throw StoreError(StoreErrorCode::Fenced,
                   "pipe " + id + " is no longer this worker's to write: " + why);
}

// ---- StateStore ----

void PgStore::check_writer(const std::string& id) {
  std::string why;
  bool moved = false;
  {
    std::lock_guard lk(state_mu_);
    if (worker_ == 0 || lost_ || deadline_passed_locked()) {
      // The whole worker stops (lease_lost), not this pipe alone: a renewal that still gets
      // through keeps every pipe this worker's.
      why = lost_ ? lost_why_ : "the lease of this worker may have run out";
    } else if (!owned_.count(id) || fenced_.count(id)) {
      why = "another worker owns it now";
      moved = true;
    } else {
      return;
    }
  }
  fenced(id, why, moved);
}

void PgStore::save(const PipeRecord& record) {
  std::uint64_t me = 0;
  std::optional<std::uint64_t> token;
  {
    std::lock_guard lk(state_mu_);
    me = me_or_throw("saving pipe " + record.id);
    if (auto it = owned_.find(record.id); it != owned_.end()) token = it->second;
    if (!token && fenced_.count(record.id)) token = 0;  // never inserted anew: refused below
  }
  if (token) check_writer(record.id);
  auto encode = [&](std::uint64_t t) {
    try {
      return encode_record(record, t);
    } catch (const std::exception& e) {
      throw StoreError(StoreErrorCode::Refused, "saving pipe " + record.id + ": " + e.what());
    }
  };
  const std::string doing = "saving pipe " + record.id;
  if (token) {
    const std::string data = encode(*token);
    const bool saved = with(*save_conn_, doing, [&](postgres::Connection& c) {
      return c.exec("UPDATE " + table("pipes") +
                        " p SET record = $2, saved_at = clock_timestamp() WHERE p.id = $1 AND "
                        "p.owner = $3 AND p.token = $4 AND EXISTS (SELECT 1 FROM " +
                        table("workers") +
                        " w WHERE w.id = $3 AND w.lease_until > clock_timestamp()) RETURNING "
                        "p.id",
                    {record.id, data, std::to_string(me), std::to_string(*token)})
                 .rows() == 1;
    });
    if (!saved) {
      fenced(record.id, "its fencing token " + std::to_string(*token) + " is stale", true);
    }
    point("saved");
    return;
  }
  // A new pipe: it gets a token and this worker as its owner in the statement that inserts it.
  const std::uint64_t t = with(*save_conn_, doing, [&](postgres::Connection& c) {
    return to_u64(c.exec("SELECT nextval('" + options_.schema + ".tokens')").value(0, 0));
  });
  const std::string data = encode(t);
  const int inserted = with(*save_conn_, doing, [&](postgres::Connection& c) {
    return c
        .exec("INSERT INTO " + table("pipes") +
                  " (id, record, owner, token) SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 "
                  "FROM " +
                  table("workers") +
                  " w WHERE w.id = $3 AND w.lease_until > clock_timestamp()) ON CONFLICT (id) DO "
                  "NOTHING RETURNING id",
              {record.id, data, std::to_string(me), std::to_string(t)})
        .rows();
  });
  if (inserted == 1) {
    std::lock_guard lk(state_mu_);
    owned_[record.id] = t;
    return;
  }
  if (holds(record.id)) {
    throw StoreError(
        StoreErrorCode::AlreadyExists,
        "a pipe '" + record.id + "' already exists in store schema " + options_.schema);
  }
  fenced(record.id, "the lease of this worker has run out", false);
}

void PgStore::remove(const std::string& id) {
  std::uint64_t me = 0, token = 0;
  {
    std::lock_guard lk(state_mu_);
    me = me_or_throw("removing pipe " + id);
    auto it = owned_.find(id);
    if (it == owned_.end()) {
      throw StoreError(StoreErrorCode::NotFound, "removing pipe " + id + ": not this worker's");
    }
    token = it->second;
  }
  const bool removed = with(*save_conn_, "removing pipe " + id, [&](postgres::Connection& c) {
    const bool gone = c.exec("DELETE FROM " + table("pipes") +
                                 " p WHERE p.id = $1 AND p.owner = $2 AND p.token = $3 AND "
                                 "EXISTS (SELECT 1 FROM " +
                                 table("workers") +
                                 " w WHERE w.id = $2 AND w.lease_until > clock_timestamp()) "
                                 "RETURNING id",
                             {id, std::to_string(me), std::to_string(token)})
                          .rows() == 1;
    if (gone) {
      c.exec("UPDATE " + table("commands") +
                 " SET answer = '{\"status\":\"not_found\",\"message\":\"the pipe was deleted\"}', "
                 "answered_at = clock_timestamp() WHERE pipe_id = $1 AND answer IS NULL",
             {id});
    }
    return gone;
  });
  if (!removed) fenced(id, "its fencing token " + std::to_string(token) + " is stale", true);
  std::lock_guard lk(state_mu_);
  owned_.erase(id);
}

bool PgStore::holds(const std::string& id) {
  return with(*coord_conn_, "looking up pipe " + id, [&](postgres::Connection& c) {
    return c.exec("SELECT 1 FROM " + table("pipes") + " WHERE id = $1", {id}).rows() == 1;
  });
}

LoadResult PgStore::load_all() {
  LoadResult out;
  with(*coord_conn_, "reading the pipes", [&](postgres::Connection& c) {
    auto r = c.exec("SELECT id, record FROM " + table("pipes") + " ORDER BY id");
    for (int i = 0; i < r.rows(); ++i) {
      const std::string id(r.value(i, 0));
      try {
        PipeRecord rec = decode_record(r.value(i, 1));
        if (rec.id != id) throw InvalidField("record.id", "it holds another pipe's record");
        out.records.push_back(std::move(rec));
      } catch (const std::exception& e) {
        out.broken.push_back({id, std::string("corrupt: ") + e.what()});
      }
    }
  });
  return out;
}

// ---- assignment ----

ClusterView PgStore::view() {
  const std::uint64_t me = worker_id();
  return with(*coord_conn_, "reading the cluster", [&](postgres::Connection& c) {
    // Rows of workers long dead that own nothing are of no use to anyone.
    c.exec("DELETE FROM " + table("workers") +
           " w WHERE w.lease_until < clock_timestamp() - interval '10 minutes' AND NOT EXISTS "
           "(SELECT 1 FROM " +
           table("pipes") + " p WHERE p.owner = w.id)");
    auto r = c.exec("SELECT (SELECT count(*) FROM " + table("workers") +
                        " WHERE lease_until > clock_timestamp() AND NOT draining), (SELECT "
                        "count(*) FROM " +
                        table("pipes") + "), (SELECT count(*) FROM " + table("pipes") +
                        " WHERE owner = $1)",
                    {std::to_string(me)});
    return ClusterView{to_u64(r.value(0, 0)), to_u64(r.value(0, 1)), to_u64(r.value(0, 2))};
  });
}

std::vector<Claim> PgStore::claim(std::size_t n, const std::set<std::string>& skip) {
  std::vector<Claim> out;
  if (n == 0) return out;
  std::uint64_t me = 0;
  {
    std::lock_guard lk(state_mu_);
    me = me_or_throw("taking pipes");
    if (lost_ || deadline_passed_locked()) return out;
  }
  // Ids are a-z, 0-9 and _ (PipeConfig::validate): the array literal needs no quoting.
  std::string skip_list = "{";
  for (const std::string& id : skip) skip_list += (skip_list.size() > 1 ? "," : "") + id;
  skip_list += "}";
  with(*coord_conn_, "taking pipes", [&](postgres::Connection& c) {
    // Rows another worker is taking right now are skipped, not waited for; the owner's lease is
    // judged by the database's clock, the same one that renews it.
    auto r = c.exec(
        "UPDATE " + table("pipes") + " p SET owner = $1, token = nextval('" + options_.schema +
            ".tokens') WHERE p.id IN (SELECT q.id FROM " + table("pipes") +
            " q WHERE (q.owner IS NULL OR NOT EXISTS (SELECT 1 FROM " + table("workers") +
            " w WHERE w.id = q.owner AND w.lease_until > clock_timestamp())) AND q.id <> ALL "
            "($3::text[]) ORDER BY q.id LIMIT $2 FOR UPDATE SKIP LOCKED) AND EXISTS (SELECT 1 "
            "FROM " +
            table("workers") +
            " m WHERE m.id = $1 AND m.lease_until > clock_timestamp()) RETURNING p.id, p.token, "
            "p.record",
        {std::to_string(me), std::to_string(n), skip_list});
    for (int i = 0; i < r.rows(); ++i) {
      Claim cl;
      cl.id = std::string(r.value(i, 0));
      cl.token = to_u64(r.value(i, 1));
      try {
        PipeRecord rec = decode_record(r.value(i, 2));
        if (rec.id != cl.id) throw InvalidField("record.id", "it holds another pipe's record");
        cl.record = std::move(rec);
      } catch (const std::exception& e) {
        cl.broken = std::string("corrupt: ") + e.what();
      }
      out.push_back(std::move(cl));
    }
  });
  if (!out.empty()) point("claimed");
  std::lock_guard lk(state_mu_);
  for (const Claim& cl : out) {
    owned_[cl.id] = cl.token;
    fenced_.erase(cl.id);
  }
  std::sort(out.begin(), out.end(), [](const Claim& a, const Claim& b) { return a.id < b.id; });
  return out;
}

void PgStore::release(const std::string& id) {
  std::uint64_t me = 0, token = 0;
  {
    std::lock_guard lk(state_mu_);
    auto it = owned_.find(id);
    if (it == owned_.end() || worker_ == 0) return;
    me = worker_;
    token = it->second;
  }
  point("releasing");
  with(*coord_conn_, "releasing pipe " + id, [&](postgres::Connection& c) {
    c.exec("UPDATE " + table("pipes") +
               " SET owner = NULL WHERE id = $1 AND owner = $2 AND token = $3",
           {id, std::to_string(me), std::to_string(token)});
    c.exec("SELECT pg_notify($1, 'released')", {options_.schema + "_events"});
  });
  std::lock_guard lk(state_mu_);  // only once released: a release that failed is tried again
  if (auto it = owned_.find(id); it != owned_.end() && it->second == token) owned_.erase(it);
  fenced_.erase(id);
}

std::map<std::string, std::uint64_t> PgStore::held() {
  const std::uint64_t me = worker_id();
  if (me == 0) return {};
  auto rows = with(*coord_conn_, "reading this worker's pipes", [&](postgres::Connection& c) {
    auto r = c.exec("SELECT id, token FROM " + table("pipes") + " WHERE owner = $1",
                    {std::to_string(me)});
    std::map<std::string, std::uint64_t> out;
    for (int i = 0; i < r.rows(); ++i) out[std::string(r.value(i, 0))] = to_u64(r.value(i, 1));
    return out;
  });
  std::lock_guard lk(state_mu_);
  if (worker_ != me) return {};
  for (auto& [id, token] : rows) {
    if (!fenced_.count(id)) owned_[id] = token;
  }
  for (auto it = owned_.begin(); it != owned_.end();) {
    it = rows.count(it->first) ? std::next(it) : owned_.erase(it);
  }
  return rows;
}

Claim PgStore::read_claim(const std::string& id) {
  Claim cl;
  cl.id = id;
  with(*coord_conn_, "reading pipe " + id, [&](postgres::Connection& c) {
    auto r = c.exec("SELECT token, record FROM " + table("pipes") + " WHERE id = $1", {id});
    if (r.rows() != 1) {
      cl.broken = "it is gone";
      return;
    }
    cl.token = to_u64(r.value(0, 0));
    try {
      PipeRecord rec = decode_record(r.value(0, 1));
      if (rec.id != id) throw InvalidField("record.id", "it holds another pipe's record");
      cl.record = std::move(rec);
    } catch (const std::exception& e) {
      cl.broken = std::string("corrupt: ") + e.what();
    }
  });
  return cl;
}

std::vector<std::string> PgStore::owned() const {
  std::lock_guard lk(state_mu_);
  std::vector<std::string> out;
  for (const auto& [id, t] : owned_) out.push_back(id);
  return out;
}

std::vector<std::string> PgStore::take_fenced() {
  std::lock_guard lk(state_mu_);
  std::vector<std::string> out(fenced_.begin(), fenced_.end());
  for (const std::string& id : out) owned_.erase(id);
  fenced_.clear();
  return out;
}

std::vector<WorkerRow> PgStore::workers() {
  return with(*coord_conn_, "reading the workers", [&](postgres::Connection& c) {
    auto r = c.exec("SELECT id, name, address, lease_until > clock_timestamp(), draining FROM " +
                    table("workers") + " ORDER BY id");
    std::vector<WorkerRow> out;
    for (int i = 0; i < r.rows(); ++i) {
      out.push_back({to_u64(r.value(i, 0)), std::string(r.value(i, 1)), std::string(r.value(i, 2)),
                     r.value(i, 3) == "t", r.value(i, 4) == "t"});
    }
    return out;
  });
}

std::vector<PipeOwner> PgStore::owners() {
  return with(*coord_conn_, "reading the owners", [&](postgres::Connection& c) {
    auto r = c.exec("SELECT p.id, w.id, p.token FROM " + table("pipes") + " p LEFT JOIN " +
                    table("workers") +
                    " w ON w.id = p.owner AND w.lease_until > clock_timestamp() ORDER BY p.id");
    std::vector<PipeOwner> out;
    for (int i = 0; i < r.rows(); ++i) {
      PipeOwner o{std::string(r.value(i, 0)), std::nullopt, to_u64(r.value(i, 2))};
      if (!r.is_null(i, 1)) o.owner = to_u64(r.value(i, 1));
      out.push_back(std::move(o));
    }
    return out;
  });
}

// ---- commands ----

std::int64_t PgStore::submit_command(const std::string& pipe_id, const std::string& body) {
  return with(*coord_conn_, "sending a command to pipe " + pipe_id, [&](postgres::Connection& c) {
    auto r = c.exec("WITH c AS (INSERT INTO " + table("commands") +
                        " (pipe_id, body) VALUES ($1, $2) RETURNING seq) SELECT seq, "
                        "pg_notify($3, 'command') FROM c",
                    {pipe_id, body, options_.schema + "_events"});
    return static_cast<std::int64_t>(to_u64(r.value(0, 0)));
  });
}

std::optional<std::string> PgStore::command_answer(std::int64_t seq) {
  return with(*coord_conn_, "reading a command's answer", [&](postgres::Connection& c) {
    auto r = c.exec("SELECT answer FROM " + table("commands") + " WHERE seq = $1",
                    {std::to_string(seq)});
    return r.rows() == 1 ? r.get(0, 0) : std::nullopt;
  });
}

bool PgStore::withdraw_command(std::int64_t seq, const std::string& answer) {
  return with(*coord_conn_, "withdrawing a command", [&](postgres::Connection& c) {
    return c.exec("UPDATE " + table("commands") +
                      " SET answer = $2, answered_at = clock_timestamp() WHERE seq = $1 AND "
                      "taken_by IS NULL AND answer IS NULL RETURNING seq",
                  {std::to_string(seq), answer})
               .rows() == 1;
  });
}

std::vector<StoreCommand> PgStore::take_commands() {
  std::uint64_t me = 0;
  {
    std::lock_guard lk(state_mu_);
    if (worker_ == 0 || owned_.empty()) return {};
    me = worker_;
  }
  std::vector<StoreCommand> out =
      with(*coord_conn_, "taking commands", [&](postgres::Connection& c) {
        auto r = c.exec("UPDATE " + table("commands") +
                            " c SET taken_by = $1 WHERE c.seq IN "
                            "(SELECT k.seq FROM " +
                            table("commands") + " k JOIN " + table("pipes") +
                            " p ON p.id = k.pipe_id WHERE k.taken_by IS NULL AND k.answer IS "
                            "NULL AND p.owner = $1 ORDER BY k.seq FOR UPDATE OF k SKIP LOCKED) "
                            "RETURNING c.seq, c.pipe_id, c.body",
                        {std::to_string(me)});
        std::vector<StoreCommand> cmds;
        for (int i = 0; i < r.rows(); ++i) {
          cmds.push_back({static_cast<std::int64_t>(to_u64(r.value(i, 0))),
                          std::string(r.value(i, 1)), std::string(r.value(i, 2))});
        }
        return cmds;
      });
  std::sort(out.begin(), out.end(),
            [](const StoreCommand& a, const StoreCommand& b) { return a.seq < b.seq; });
  return out;
}

void PgStore::answer_command(std::int64_t seq, const std::string& answer) {
  with(*coord_conn_, "answering a command", [&](postgres::Connection& c) {
    c.exec("UPDATE " + table("commands") +
               " SET answer = $2, answered_at = clock_timestamp() WHERE seq = $1",
           {std::to_string(seq), answer});
    // Answered commands a day old are history nobody reads.
    c.exec("DELETE FROM " + table("commands") +
           " WHERE answered_at < clock_timestamp() - interval '1 day'");
  });
}

// ---- notices ----

bool PgStore::wait_for_notice(std::chrono::milliseconds timeout) {
  Conn& conn = *listen_conn_;
  std::unique_lock lk(conn.mu);
  try {
    if (!conn.c) {
      conn.get().exec("LISTEN " + conn.get().identifier(options_.schema + "_events"));
    }
    pg_conn* raw = conn.c->raw();
    auto drain = [&] {
      bool any = false;
      while (PGnotify* n = PQnotifies(raw)) {
        any = true;
        PQfreemem(n);
      }
      return any;
    };
    if (drain()) return true;
    pollfd p{PQsocket(raw), POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(timeout.count(), INT_MAX)));
    if (rc <= 0) return false;
    if (PQconsumeInput(raw) == 0) {
      conn.c.reset();  // listened again on the next call
      return false;
    }
    return drain();
  } catch (const std::exception&) {
    conn.c.reset();
    lk.unlock();
    std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(500)));
    return false;
  }
}

void PgStore::notify() {
  with(*coord_conn_, "notifying the workers", [&](postgres::Connection& c) {
    c.exec("SELECT pg_notify($1, 'changed')", {options_.schema + "_events"});
  });
}

}  // namespace clickpipe::cluster
