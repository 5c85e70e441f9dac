#include "telemetry.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <memory>
#include <set>
#include <utility>

#include "clickpipe/json.hpp"
#include "clickpipe/lifecycle/state.hpp"
#include "clickpipe/utf8.hpp"
#include "clickpipe/version.hpp"
#include "control.hpp"

namespace clickpipe::cli {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// How many samples in a row a pipe may be missing before its counters are forgotten: a pipe
// created between statuses() and refresh() must keep what its hooks counted meanwhile.
constexpr std::size_t kForgetAfter = 60;
// Samples closer than this to the one before the newest replace the newest instead of adding
// one, so that frequent callers (HTTP requests) cannot grow the history without bound.
constexpr auto kMinSampleSpacing = std::chrono::milliseconds(250);

double seconds_between(TimePoint from, TimePoint to) {
  return std::chrono::duration<double>(to - from).count();
}

// To two decimals; dividing last gives the double nearest to the decimal, which prints short.
double cents(double v) { return std::round(v * 100) / 100; }

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}
std::string number(std::uint64_t v) { return std::to_string(v); }

// A label value as the text format wants it: backslash, double quote and newline escaped; bytes
// that are not UTF-8 become U+FFFD, since a scraper rejects the whole answer otherwise.
std::string label_value(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for_each_utf8(text, [&](std::string_view ch) {
    if (ch == "\\") {
      out += "\\\\";
    } else if (ch == "\"") {
      out += "\\\"";
    } else if (ch == "\n") {
      out += "\\n";
    } else {
      out += ch;
    }
  });
  return out;
}

using Labels = std::vector<std::pair<const char*, std::string>>;

class MetricsWriter {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(std::string_view name, const Labels& labels, const std::string& value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      for (std::size_t i = 0; i < labels.size(); ++i) {
        if (i) out_ += ',';
        out_ += fmt::format("{}=\"{}\"", labels[i].first, label_value(labels[i].second));
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// The description of the first failure `publish` met, kept as the one it returns.
void note(std::string& first, std::string message) {
  if (first.empty()) first = std::move(message);
}

int two_digits(std::string_view s, std::size_t at) {
  const char a = s[at], b = s[at + 1];
  if (a < '0' || a > '9' || b < '0' || b > '9') return -1;
  return (a - '0') * 10 + (b - '0');
}

}  // namespace

bool is_pipe_id(std::string_view text) noexcept {
  if (text.empty() || text.size() > 53) return false;
  for (const char c : text) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

std::string format_published_at(TimePoint t) {
  const auto secs = std::chrono::floor<std::chrono::seconds>(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - secs).count();
  const std::time_t tt = static_cast<std::time_t>(secs.time_since_epoch().count());
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms);
}

std::optional<TimePoint> parse_published_at(std::string_view s) noexcept {
  // YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
      s.back() != 'Z')
    return std::nullopt;
  const int y1 = two_digits(s, 0), y2 = two_digits(s, 2), mo = two_digits(s, 5),
            d = two_digits(s, 8), h = two_digits(s, 11), mi = two_digits(s, 14),
            sec = two_digits(s, 17);
  if (y1 < 0 || y2 < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
      mi > 59 || sec < 0 || sec > 60)
    return std::nullopt;
  std::int64_t nanos = 0;
  const std::string_view rest = s.substr(19, s.size() - 20);
  if (!rest.empty()) {
    if (rest[0] != '.' || rest.size() < 2 || rest.size() > 10) return std::nullopt;
    std::int64_t scale = 100'000'000;
    for (const char c : rest.substr(1)) {
      if (c < '0' || c > '9') return std::nullopt;
      nanos += (c - '0') * scale;
      scale /= 10;
    }
  }
  std::tm tm{};
  tm.tm_year = y1 * 100 + y2 - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  const std::time_t tt = timegm(&tm);
  if (tt == static_cast<std::time_t>(-1) && !(y1 == 19 && y2 == 69)) return std::nullopt;
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(
      std::chrono::seconds(tt) + std::chrono::nanoseconds(nanos)));
}

Telemetry::Telemetry() = default;

void Telemetry::on_transition(const TransitionEvent& event) {
  std::lock_guard lock(mu_);
  ++pipes_[event.pipe_id].transitions;
}

void Telemetry::on_retry(const std::string& pipe_id, const RetryStatus& retry) {
  (void)retry;
  std::lock_guard lock(mu_);
  ++pipes_[pipe_id].retries;
}

void Telemetry::on_batch(const std::string& pipe_id, const BatchSummary& batch) {
  const double secs = std::chrono::duration<double>(batch.duration).count();
  std::size_t bucket = 0;
  while (bucket < kBatchDurationBuckets.size() && secs > kBatchDurationBuckets[bucket]) ++bucket;
  std::lock_guard lock(mu_);
  Histogram& h = pipes_[pipe_id].batches;
  ++h.counts[bucket];
  h.sum += secs;
  ++h.count;
}

void Telemetry::sample(PipeData& d, const PipeStatus& s, TimePoint now) {
  Sample next{now, s.cdc.changes, {}};
  for (const auto& t : s.snapshot) next.rows[t.table.qualified()] = t.rows_copied;

  // A clock set back, or a counter that went down (a resync reloads, a pipe deleted and made
  // again), makes the old samples meaningless: start over rather than report negative rates.
  bool reset =
      !d.samples.empty() && (now < d.samples.back().at || next.changes < d.samples.back().changes);
  if (!reset && !d.samples.empty()) {
    for (const auto& [table, rows] : next.rows) {
      auto it = d.samples.back().rows.find(table);
      if (it != d.samples.back().rows.end() && rows < it->second) reset = true;
    }
  }
  if (reset) d.samples.clear();
  const std::size_t n = d.samples.size();
  if (n >= 2 && now - d.samples[n - 2].at < kMinSampleSpacing) {
    d.samples.back() = std::move(next);
  } else {
    d.samples.push_back(std::move(next));
  }
  // Keep the newest sample at least kRateWindow old as the base the rates are measured from.
  while (d.samples.size() > 2 && d.samples[1].at <= now - kRateWindow) d.samples.pop_front();

  const Sample& first = d.samples.front();
  const Sample& last = d.samples.back();
  const double dt = seconds_between(first.at, last.at);
  d.changes_per_s = dt > 0 ? static_cast<double>(last.changes - first.changes) / dt : 0;
  d.rows_per_s.assign(s.snapshot.size(), 0);
  if (dt <= 0) return;
  for (std::size_t i = 0; i < s.snapshot.size(); ++i) {
    const std::string table = s.snapshot[i].table.qualified();
    auto from = first.rows.find(table);
    auto to = last.rows.find(table);
    if (from != first.rows.end() && to != last.rows.end())
      d.rows_per_s[i] = static_cast<double>(to->second - from->second) / dt;
  }
}

void Telemetry::refresh(const std::vector<PipeStatus>& pipes,
                        const std::vector<BrokenRecord>& broken, TimePoint now) {
  std::lock_guard lock(mu_);
  std::set<std::string> seen;
  for (const PipeStatus& s : pipes) {
    PipeData& d = pipes_[s.id];
    d.status = s;
    d.present = true;
    d.absent_for = 0;
    sample(d, s, now);
    seen.insert(s.id);
  }
  for (auto it = pipes_.begin(); it != pipes_.end();) {
    PipeData& d = it->second;
    if (!seen.count(it->first)) {
      d.present = false;
      d.status.reset();
      d.samples.clear();
      if (++d.absent_for > kForgetAfter) {
        it = pipes_.erase(it);
        continue;
      }
    }
    ++it;
  }
  broken_ = broken;
  published_at_ = now;
}

json Telemetry::document(const PipeData& d) const {
  const PipeStatus& s = *d.status;
  json j = s;
  j["live"] = true;
  j["published_at"] = format_published_at(published_at_);
  j["cdc"]["changes_per_s"] = cents(d.changes_per_s);
  json& snapshot = j["snapshot"];
  for (std::size_t i = 0; i < s.snapshot.size() && i < snapshot.size(); ++i) {
    const TableProgress& t = s.snapshot[i];
    const double rate = i < d.rows_per_s.size() ? d.rows_per_s[i] : 0;
    const bool done =
        t.planned && t.partitions_total > 0 && t.partitions_done >= t.partitions_total;
    const std::uint64_t left =
        t.estimated_rows > t.rows_copied ? t.estimated_rows - t.rows_copied : 0;
    snapshot[i]["rows_per_s"] = cents(rate);
    // Whole seconds, rounded up: an estimate, and "0 s" while rows remain would mislead.
    snapshot[i]["eta_s"] = !done && rate > 0 && left > 0
                               ? json(std::ceil(static_cast<double>(left) / rate))
                               : json(nullptr);
  }
  j["retries_total"] = d.retries;
  j["slot_wal"] = nullptr;
  if (auto it = slots_.find(s.id); it != slots_.end()) {
    const SlotSample& slot = it->second;
    j["slot_wal"] =
        json{{"exists", slot.exists},
             {"retained_bytes", slot.exists ? json(slot.retained_bytes) : json(nullptr)},
             {"wal_status", slot.exists ? json(slot.wal_status) : json(nullptr)},
             {"sampled_at", format_published_at(slot.at)}};
  }
  return j;
}

void Telemetry::set_slot(const std::string& id, std::optional<SlotSample> sample) {
  std::lock_guard lock(mu_);
  if (sample) {
    slots_[id] = std::move(*sample);
  } else {
    slots_.erase(id);
  }
}

json Telemetry::pipes_json() const {
  std::lock_guard lock(mu_);
  json pipes = json::array();
  for (const auto& [id, d] : pipes_) {
    if (d.present) pipes.push_back(document(d));
  }
  json broken = json::array();
  for (const auto& b : broken_) broken.push_back({{"name", b.name}, {"reason", b.reason}});
  return json{{"pipes", std::move(pipes)}, {"broken", std::move(broken)}};
}

std::optional<json> Telemetry::pipe_json(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = pipes_.find(id);
  if (it == pipes_.end() || !it->second.present) return std::nullopt;
  return document(it->second);
}

std::size_t Telemetry::pipe_count() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const auto& [id, d] : pipes_) n += d.present ? 1 : 0;
  return n;
}

std::string Telemetry::metrics_text() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<const std::string*, const PipeData*>> live;
  for (const auto& [id, d] : pipes_) {
    if (d.present) live.emplace_back(&id, &d);
  }
  MetricsWriter w;
  w.family("clickpipe_up", "gauge", "1 while the clickpipe process runs.");
  w.sample("clickpipe_up", {}, "1");
  w.family("clickpipe_build_info", "gauge", "The version of clickpipe, as a label; always 1.");
  w.sample("clickpipe_build_info",
           {{"version", fmt::format("{}.{}.{}", kVersionMajor, kVersionMinor, kVersionPatch)}},
           "1");
  w.family("clickpipe_pipes", "gauge", "Pipes run by this process.");
  w.sample("clickpipe_pipes", {}, number(std::uint64_t{live.size()}));
  w.family("clickpipe_broken_records", "gauge",
           "Saved pipe records that could not be read, so their pipes do not run.");
  w.sample("clickpipe_broken_records", {}, number(std::uint64_t{broken_.size()}));

  w.family("clickpipe_pipe_state", "gauge",
           "1 for the state the pipe is in, 0 for every other state.");
  for (const auto& [id, d] : live) {
    for (const State st : kAllStates) {
      if (st == State::Unknown) continue;
      w.sample("clickpipe_pipe_state", {{"pipe", *id}, {"state", std::string(to_string(st))}},
               d->status->state == st ? "1" : "0");
    }
  }

  // One family per TableProgress field, each with a line per table of each pipe.
  const auto per_table = [&](const char* name, const char* type, const char* help, auto field) {
    w.family(name, type, help);
    for (const auto& [id, d] : live) {
      for (const TableProgress& t : d->status->snapshot)
        w.sample(name, {{"pipe", *id}, {"table", t.table.qualified()}}, number(field(t)));
    }
  };
  per_table("clickpipe_snapshot_rows_copied_total", "counter",
            "Rows the initial load copied, per table.",
            [](const TableProgress& t) { return t.rows_copied; });
  per_table("clickpipe_snapshot_partitions_done", "gauge",
            "Partitions of the initial load copied, per table.",
            [](const TableProgress& t) { return std::uint64_t{t.partitions_done}; });
  per_table("clickpipe_snapshot_partitions_total", "gauge",
            "Partitions the initial load planned, per table.",
            [](const TableProgress& t) { return std::uint64_t{t.partitions_total}; });

  w.family("clickpipe_cdc_changes_applied_total", "counter", "Changes CDC applied.");
  for (const auto& [id, d] : live)
    w.sample("clickpipe_cdc_changes_applied_total", {{"pipe", *id}},
             number(d->status->cdc.changes));
  w.family("clickpipe_cdc_table_changes_applied_total", "counter",
           "Changes CDC applied per table since the process started.");
  for (const auto& [id, d] : live) {
    for (const TableChanges& t : d->status->cdc.tables)
      w.sample("clickpipe_cdc_table_changes_applied_total",
               {{"pipe", *id}, {"table", t.table.qualified()}}, number(t.changes));
  }
  w.family("clickpipe_cdc_batches_total", "counter", "CDC batches applied and confirmed.");
  for (const auto& [id, d] : live)
    w.sample("clickpipe_cdc_batches_total", {{"pipe", *id}}, number(d->status->cdc.batches));
  w.family("clickpipe_cdc_lag_bytes", "gauge",
           "Source WAL the pipe has not confirmed yet: source head minus confirmed position.");
  for (const auto& [id, d] : live)
    w.sample("clickpipe_cdc_lag_bytes", {{"pipe", *id}}, number(d->status->cdc.lag_bytes));
  w.family("clickpipe_cdc_lag_seconds", "gauge",
           "Seconds since the newest applied transaction committed while changes wait; 0 when "
           "caught up. Absent while unknown.");
  for (const auto& [id, d] : live) {
    if (const auto& lag = d->status->cdc.lag_seconds)
      w.sample("clickpipe_cdc_lag_seconds", {{"pipe", *id}}, number(*lag));
  }
  w.family("clickpipe_slot_retained_wal_bytes", "gauge",
           "WAL the replication slot keeps on the source: read from the source (its position "
           "minus the slot's restart_lsn) in every state, else the source head minus the "
           "confirmed position as last streamed. Absent while unknown.");
  for (const auto& [id, d] : live) {
    if (auto it = slots_.find(*id); it != slots_.end()) {
      if (it->second.exists)
        w.sample("clickpipe_slot_retained_wal_bytes", {{"pipe", *id}},
                 number(it->second.retained_bytes));
      continue;
    }
    const CdcProgress& c = d->status->cdc;
    if (!c.confirmed || c.source_head.value == 0) continue;
    const std::uint64_t held =
        c.source_head > *c.confirmed ? c.source_head.value - c.confirmed->value : 0;
    w.sample("clickpipe_slot_retained_wal_bytes", {{"pipe", *id}}, number(held));
  }
  w.family("clickpipe_retries_total", "counter",
           "Failed attempts retried or waiting, since the process started.");
  for (const auto& [id, d] : live)
    w.sample("clickpipe_retries_total", {{"pipe", *id}}, number(d->retries));
  w.family("clickpipe_transitions_total", "counter",
           "Lifecycle transitions taken since the process started.");
  for (const auto& [id, d] : live)
    w.sample("clickpipe_transitions_total", {{"pipe", *id}}, number(d->transitions));

  w.family("clickpipe_cdc_batch_duration_seconds", "histogram",
           "Time from the start of a CDC batch's pull to its confirmation.");
  for (const auto& [id, d] : live) {
    const Histogram& h = d->batches;
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < h.counts.size(); ++i) {
      cumulative += h.counts[i];
      const std::string le =
          i < kBatchDurationBuckets.size() ? number(kBatchDurationBuckets[i]) : std::string("+Inf");
      w.sample("clickpipe_cdc_batch_duration_seconds_bucket", {{"pipe", *id}, {"le", le}},
               number(cumulative));
    }
    w.sample("clickpipe_cdc_batch_duration_seconds_sum", {{"pipe", *id}}, number(h.sum));
    w.sample("clickpipe_cdc_batch_duration_seconds_count", {{"pipe", *id}}, number(h.count));
  }
  return w.take();
}

std::string Telemetry::publish(const fs::path& dir) const noexcept {
  try {
    return publish_files(dir);
  } catch (const std::exception& e) {
    try {
      return fmt::format("cannot publish status into {}: {}", dir.string(), e.what());
    } catch (...) {
    }
  } catch (...) {
  }
  return "publish failed";  // short enough for the string itself: no allocation to fail
}

std::string Telemetry::publish_files(const fs::path& dir) const {
  // The documents are made under the lock, the files written after it: hooks must not wait for
  // the disk.
  std::vector<std::pair<std::string, std::string>> files;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, d] : pipes_) {
      if (!d.present || !is_pipe_id(id)) continue;
      files.emplace_back(id + ".json",
                         document(d).dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
    }
  }
  std::string first;
  std::set<std::string> current;
  for (const auto& [name, text] : files) {
    current.insert(name);
    if (const int err = write_private_file(dir, name, text)) {
      note(first, fmt::format("cannot write status file {}: {}", (dir / name).string(),
                              std::strerror(err)));
    }
  }

  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    note(first,
         fmt::format("cannot open status directory {}: {}", dir.string(), std::strerror(errno)));
    return first;
  }
  // Owns fd from here on.
  const std::unique_ptr<DIR, int (*)(DIR*)> listing(::fdopendir(fd), &::closedir);
  if (!listing) {
    note(first,
         fmt::format("cannot list status directory {}: {}", dir.string(), std::strerror(errno)));
    ::close(fd);
    return first;
  }
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(listing.get())) {
    const std::string_view name = e->d_name;
    constexpr std::string_view ext = ".json";
    if (name.size() <= ext.size() || name.substr(name.size() - ext.size()) != ext) continue;
    if (!is_pipe_id(name.substr(0, name.size() - ext.size()))) continue;
    if (!current.count(std::string(name))) stale.emplace_back(name);
  }
  for (const std::string& name : stale) {
    // Only files and links (the link itself): a directory of that name is someone else's.
    struct stat st {};
    if (::fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) continue;
    if (::unlinkat(fd, name.c_str(), 0) != 0 && errno != ENOENT) {
      note(first, fmt::format("cannot remove stale status file {}: {}", (dir / name).string(),
                              std::strerror(errno)));
    }
  }
  return first;
}

}  // namespace clickpipe::cli
