#include "logging.hpp"

#include <fmt/format.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/sinks/base_sink.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <mutex>
#include <set>
#include <string_view>
#include <utility>

#include "clickpipe/error.hpp"
#include "clickpipe/format.hpp"
#include "clickpipe/utf8.hpp"

namespace clickpipe::cli {

std::string json_text(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

using nlohmann::json;

constexpr std::string_view kPipeLoggerPrefix = "clickpipe:";

// The record log_event is handing to spdlog on this thread. spdlog formats synchronously, on the
// calling thread, with the payload it was given, so a formatter that sees exactly that payload
// (same address and length) knows the record's fields. Carrying them out of band, rather than
// marked inside the message text, means no runtime message can pass for a structured record.
struct Pending {
  std::string_view payload;
  std::string_view pipe;
  std::string_view event;
  std::string_view msg;
  const json* fields = nullptr;  // an object, or null
};
thread_local const Pending* t_pending = nullptr;

std::string_view view(spdlog::string_view_t s) { return {s.data(), s.size()}; }

std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err:
    case spdlog::level::critical: return "error";
    default: return "off";
  }
}

// RFC 3339 in UTC with milliseconds: 2026-11-30T17:00:00.123Z.
std::string rfc3339(spdlog::log_clock::time_point tp) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(tp.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(ms / 1000);
  auto frac = static_cast<int>(ms % 1000);
  if (frac < 0) frac += 1000, --secs;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

// `text` on one line and as valid UTF-8: control characters escaped, bad bytes as U+FFFD.
std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for_each_utf8(text, [&](std::string_view ch) {
    const auto c = static_cast<unsigned char>(ch[0]);
    if (ch.size() == 1 && (c < 0x20 || c == 0x7F)) {
      switch (c) {
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: out += fmt::format("\\x{:02x}", c);
      }
    } else {
      out += ch;
    }
  });
  return out;
}

bool bare(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("_.:/@+-").find(c) != std::string_view::npos;
  });
}

// A field's value in a text line: plain words bare, other strings JSON-quoted (so escaped and
// valid UTF-8), anything else as JSON.
std::string text_value(const json& v) {
  if (v.is_string() && bare(v.get_ref<const std::string&>())) return v.get<std::string>();
  return json_text(v);
}

bool shown_in_text(std::string_view event, std::string_view key) {
  if (key == "state") return false;
  // "Running -[pause]-> Pausing" says all four.
  if (event == "transition")
    return key != "from" && key != "trigger" && key != "to" && key != "kind";
  return true;
}

bool reserved(std::string_view key) {
  return key == "time" || key == "level" || key == "pipe" || key == "event" || key == "msg";
}

struct Record {
  std::string_view pipe;
  std::string_view event;
  std::string_view msg;
  const json* fields = nullptr;
};

Record record_of(const spdlog::details::log_msg& m) {
  Record r;
  const std::string_view payload = view(m.payload);
  if (t_pending && t_pending->payload.data() == payload.data() &&
      t_pending->payload.size() == payload.size()) {
    r.pipe = t_pending->pipe;
    r.event = t_pending->event;
    r.msg = t_pending->msg;
    r.fields = t_pending->fields;
  } else {
    r.msg = payload;
  }
  const std::string_view name = view(m.logger_name);
  if (r.pipe.empty() && name.starts_with(kPipeLoggerPrefix))
    r.pipe = name.substr(kPipeLoggerPrefix.size());
  return r;
}

std::string json_line(const spdlog::details::log_msg& m) {
  const Record r = record_of(m);
  std::string out =
      fmt::format(R"({{"time":"{}","level":"{}")", rfc3339(m.time), level_name(m.level));
  const auto add = [&out](std::string_view key, const json& value) {
    out += ',';
    out += json_text(json(std::string(key)));
    out += ':';
    out += json_text(value);
  };
  if (!r.pipe.empty()) add("pipe", std::string(r.pipe));
  const bool has_fields = r.fields && r.fields->is_object();
  if (has_fields) {
    if (auto it = r.fields->find("state"); it != r.fields->end()) add("state", *it);
  }
  if (!r.event.empty()) add("event", std::string(r.event));
  add("msg", std::string(r.msg));
  if (has_fields) {
    for (const auto& [key, value] : r.fields->items()) {
      if (key == "state") continue;
      add(reserved(key) ? "_" + key : key, value);
    }
  }
  out += '}';
  return out;
}

// The fields of a record as ` key=value ...`, for a text line.
std::string text_fields(std::string_view event, const json* fields) {
  std::string out;
  if (!fields || !fields->is_object()) return out;
  for (const auto& [key, value] : fields->items()) {
    if (!shown_in_text(event, key)) continue;
    out += ' ';
    out += one_line(key);
    out += '=';
    out += text_value(value);
  }
  return out;
}

std::string text_line(const spdlog::details::log_msg& m) {
  const Record r = record_of(m);
  return fmt::format("{} {:<5} {} {}{}", rfc3339(m.time), level_name(m.level),
                     r.pipe.empty() ? std::string("-") : one_line(r.pipe), one_line(r.msg),
                     text_fields(r.event, r.fields));
}

class LineFormatter final : public spdlog::formatter {
 public:
  explicit LineFormatter(LogFormat format) : format_(format) {}

  void format(const spdlog::details::log_msg& m, spdlog::memory_buf_t& dest) override {
    std::string line;
    try {
      line = format_ == LogFormat::Json ? json_line(m) : text_line(m);
    } catch (const std::exception&) {
      // Out of memory, most likely: still one well-formed line rather than a lost record.
      line = fmt::format(
          fmt::runtime(format_ == LogFormat::Json
                           ? R"x({{"time":"{}","level":"{}","msg":"unformattable record"}})x"
                           : "{} {:<5} - unformattable record"),
          rfc3339(m.time), level_name(m.level));
    }
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(format_);
  }

 private:
  LogFormat format_;
};

// Whole lines to a stdio stream: one fwrite each, so lines from several threads never mix.
class FileSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit FileSink(std::FILE* out) : out_(out) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& m) override {
    spdlog::memory_buf_t line;
    formatter_->format(m, line);
    std::fwrite(line.data(), 1, line.size(), out_);
  }
  void flush_() override { std::fflush(out_); }

 private:
  std::FILE* out_;
};

double round1(double x) { return std::round(x * 10.0) / 10.0; }

json optional_number(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

std::string state_name(State s) { return std::string(to_string(s)); }

bool complete(const TableProgress& t) {
  return t.planned && t.partitions_done >= t.partitions_total;
}

}  // namespace

spdlog::level::level_enum parse_log_level(const std::string& text) {
  static constexpr std::pair<std::string_view, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"off", spdlog::level::off}};
  for (const auto& [name, level] : kLevels) {
    if (text == name) return level;
  }
  throw InvalidField("--log-level", "must be trace, debug, info, warn, error or off, not '" +
                                        capped_error(text, 64) + "'");
}

LogFormat parse_log_format(const std::string& text) {
  if (text == "text") return LogFormat::Text;
  if (text == "json") return LogFormat::Json;
  throw InvalidField("--log-format", "must be text or json, not '" + capped_error(text, 64) + "'");
}

std::unique_ptr<spdlog::formatter> make_formatter(LogFormat format) {
  return std::make_unique<LineFormatter>(format);
}

std::shared_ptr<spdlog::logger> make_logger(const LogOptions& options, spdlog::sink_ptr sink) {
  sink->set_formatter(make_formatter(options.format));
  auto logger = std::make_shared<spdlog::logger>("clickpipe", std::move(sink));
  logger->set_level(options.level);
  logger->flush_on(spdlog::level::info);
  return logger;
}

std::shared_ptr<spdlog::logger> make_logger(const LogOptions& options, std::FILE* out) {
  return make_logger(options, std::make_shared<FileSink>(out));
}

void log_event(spdlog::logger& logger, spdlog::level::level_enum level, const std::string& pipe,
               const std::string& event, const std::string& msg, const json& fields) {
  if (!logger.should_log(level)) return;
  json wrapped;
  const json* f = &fields;
  if (!fields.is_null() && !fields.is_object()) {
    wrapped = json{{"fields", fields}};
    f = &wrapped;
  }
  // What a sink with another formatter shows; ours recognise the record and use its parts.
  const std::string payload = msg + text_fields(event, f);
  const Pending pending{payload, pipe, event, msg, f};
  struct Reset {
    ~Reset() { t_pending = nullptr; }
  } reset;
  t_pending = &pending;
  logger.log(level, spdlog::string_view_t(payload.data(), payload.size()));
}

void LogListener::on_transition(const TransitionEvent& e) {
  const Transition& t = e.transition;
  json fields = {{"state", state_name(t.to)},
                 {"from", state_name(t.from)},
                 {"trigger", std::string(to_string(t.trigger))},
                 {"to", state_name(t.to)},
                 {"kind", t.kind == TransitionKind::Internal ? "internal" : "external"}};
  if (!e.error.empty()) fields["error"] = capped_error(e.error);
  // Failed at error level, so an alert on error lines catches it without parsing fields.
  const auto level = t.to == State::Failed ? spdlog::level::err : spdlog::level::info;
  log_event(*logger_, level, e.pipe_id, "transition", fmt::format("{}", t), fields);
}

void LogListener::on_retry(const std::string& pipe_id, const RetryStatus& r) {
  const std::string operation = capped_error(r.operation);
  json next = nullptr;
  if (r.next_attempt_at) {
    const auto in = std::chrono::duration_cast<std::chrono::milliseconds>(
        *r.next_attempt_at - std::chrono::system_clock::now());
    next = std::max<std::int64_t>(0, in.count());
  }
  const std::string attempts = r.max_attempts ? fmt::format("{} of {}", r.attempt, r.max_attempts)
                                              : fmt::format("{}", r.attempt);
  const std::string msg =
      r.next_attempt_at ? fmt::format("{} failed (attempt {}), retrying", operation, attempts)
                        : fmt::format("{} failed (attempt {}), waiting for the error to clear",
                                      operation, attempts);
  log_event(*logger_, spdlog::level::warn, pipe_id, "retry", msg,
            {{"operation", operation},
             {"attempt", r.attempt},
             {"max_attempts", r.max_attempts},
             {"error", capped_error(r.last_error)},
             {"next_attempt_in_ms", next}});
}

void LogListener::on_rejected(const std::string& pipe_id, const Rejection& r) {
  log_event(*logger_, spdlog::level::warn, pipe_id, "rejected",
            "queued command refused: " + message(r),
            {{"state", state_name(r.state)},
             {"command", std::string(to_string(r.trigger))},
             {"reason", std::string(to_string(r.reason))}});
}

void LogListener::on_batch(const std::string& pipe_id, const BatchSummary& b) {
  log_event(*logger_, spdlog::level::info, pipe_id, "batch",
            fmt::format("applied {} change(s)", b.changes),
            {{"changes", b.changes},
             {"wal_bytes", b.wal_bytes},
             {"duration_ms", b.duration.count()},
             {"end", to_string(b.end)},
             {"lag_bytes", b.lag_bytes},
             {"lag_seconds", optional_number(b.lag_seconds)}});
}

void ProgressLog::log_if_due(const std::vector<PipeStatus>& statuses, TimePoint now) {
  std::set<std::string> present;
  for (const PipeStatus& s : statuses) {
    present.insert(s.id);
    auto it = pipes_.find(s.id);
    if (it == pipes_.end()) {
      first_sight(s, now);
      continue;
    }
    PipeSeen& seen = it->second;
    const bool due = now - seen.last_progress >= every_;
    for (const TableProgress& t : s.snapshot) track_table(s, t, seen, due, now);
    if (due) {
      if (s.state == State::Running || s.state == State::Degraded) log_cdc(s, seen, now);
      seen.changes = s.cdc.changes;
      seen.last_progress = now;
    }
    log_schema_changes(s, seen);
    seen.state = s.state;
  }
  std::erase_if(pipes_, [&](const auto& p) { return present.count(p.first) == 0; });
}

void ProgressLog::first_sight(const PipeStatus& s, TimePoint now) {
  PipeSeen& seen = pipes_[s.id];
  seen.state = s.state;
  seen.last_progress = now;
  seen.changes = s.cdc.changes;
  for (const TableProgress& t : s.snapshot) {
    TableSeen& ts = seen.tables[t.table.qualified()];
    ts.last = t;
    ts.sample_rows = t.rows_copied;
    ts.sample_at = now;
    // A load that ended before this process saw it is not this process's to report.
    if (complete(t) || s.state != State::Snapshot) ts.final_at = t.partitions_done;
  }
  for (const SchemaEvent& e : s.schema_changes) {
    if (e.at > seen.schema_shown) {
      seen.schema_shown = e.at;
      seen.schema_shown_count = 0;
    }
    if (e.at == seen.schema_shown) ++seen.schema_shown_count;
  }
}

void ProgressLog::track_table(const PipeStatus& s, const TableProgress& t, PipeSeen& seen, bool due,
                              TimePoint now) {
  const std::string name = t.table.qualified();
  auto [it, fresh] = seen.tables.try_emplace(name);
  TableSeen& ts = it->second;
  if (fresh || t.partitions_done < ts.last.partitions_done || t.rows_copied < ts.sample_rows) {
    // New to this pipe, or a new load of it: rates start from here.
    ts.sample_rows = t.rows_copied;
    ts.sample_at = now;
  }
  const std::uint32_t before = fresh ? 0 : ts.last.partitions_done;
  if (t.partitions_done > before) {
    log_event(
        *logger_, spdlog::level::debug, s.id, "partition",
        fmt::format("{}: {} of {} partition(s) done", name, t.partitions_done, t.partitions_total),
        {{"state", state_name(s.state)},
         {"table", name},
         {"done", t.partitions_done},
         {"total", t.partitions_total}});
  }
  const bool left_snapshot = seen.state == State::Snapshot && s.state != State::Snapshot;
  if (s.state == State::Snapshot && !complete(t)) ts.final_at.reset();
  if (complete(t)) {
    if (ts.final_at != t.partitions_done) {
      log_table(s, t, ts, now);
      ts.final_at = t.partitions_done;
    }
  } else if (left_snapshot && !ts.final_at) {
    // Paused (or failed) mid-load: where the table stopped. A status that no longer shows the
    // load keeps the figures last seen.
    const TableProgress& last = t.planned ? t : ts.last;
    if (last.planned) log_table(s, last, ts, now);
    ts.final_at = last.partitions_done;
  } else if (due && s.state == State::Snapshot && t.planned &&
             (t.rows_copied > 0 || t.partitions_done > 0)) {
    // Tables waiting for their turn have nothing to say yet.
    log_table(s, t, ts, now);
  }
  ts.last = t;
}

void ProgressLog::log_table(const PipeStatus& s, const TableProgress& t, TableSeen& ts,
                            TimePoint now) {
  const std::string name = t.table.qualified();
  const double secs = std::chrono::duration<double>(now - ts.sample_at).count();
  std::optional<double> rows_per_s;
  if (secs > 0 && t.rows_copied >= ts.sample_rows)
    rows_per_s = round1(double(t.rows_copied - ts.sample_rows) / secs);
  const bool done = complete(t);
  std::optional<double> eta_s;
  if (!done && rows_per_s && *rows_per_s > 0 && t.estimated_rows > t.rows_copied)
    eta_s = round1(double(t.estimated_rows - t.rows_copied) / *rows_per_s);
  const std::string msg =
      fmt::format("snapshot of {}{}: {} of {} partition(s), {} row(s)", name,
                  done ? " done" : (s.state == State::Snapshot ? "" : " stopped"),
                  t.partitions_done, t.partitions_total, t.rows_copied);
  log_event(*logger_, spdlog::level::info, s.id, "progress", msg,
            {{"state", state_name(s.state)},
             {"table", name},
             {"rows", t.rows_copied},
             {"estimated_rows", t.estimated_rows},
             {"partitions_done", t.partitions_done},
             {"partitions_total", t.partitions_total},
             {"done", done},
             {"rows_per_s", optional_number(rows_per_s)},
             {"eta_s", optional_number(eta_s)}});
  ts.sample_rows = t.rows_copied;
  ts.sample_at = now;
}

void ProgressLog::log_cdc(const PipeStatus& s, PipeSeen& seen, TimePoint now) {
  const std::uint64_t applied = s.cdc.changes >= seen.changes ? s.cdc.changes - seen.changes : 0;
  // Quiet while there is nothing to say: no change applied and none waiting.
  if (applied == 0 && s.cdc.lag_bytes == 0) return;
  const double secs = std::chrono::duration<double>(now - seen.last_progress).count();
  const double per_s = secs > 0 ? round1(double(applied) / secs) : 0.0;
  log_event(*logger_, spdlog::level::info, s.id, "progress",
            fmt::format("cdc: {} change(s)/s, lag {} byte(s)", per_s, s.cdc.lag_bytes),
            {{"state", state_name(s.state)},
             {"changes", s.cdc.changes},
             {"changes_per_s", per_s},
             {"lag_bytes", s.cdc.lag_bytes},
             {"lag_seconds", optional_number(s.cdc.lag_seconds)},
             {"confirmed", s.cdc.confirmed ? json(to_string(*s.cdc.confirmed)) : json(nullptr)}});
}

void ProgressLog::log_schema_changes(const PipeStatus& s, PipeSeen& seen) {
  // Events are oldest first; several may share a time, so those at the newest time logged are
  // counted rather than compared.
  std::size_t at_shown = 0;
  for (const SchemaEvent& e : s.schema_changes) {
    if (e.at < seen.schema_shown) continue;
    if (e.at == seen.schema_shown) {
      if (at_shown++ < seen.schema_shown_count) continue;
      ++seen.schema_shown_count;
    } else {
      seen.schema_shown = e.at;
      seen.schema_shown_count = 1;
      at_shown = 1;
    }
    const auto level =
        e.kind == SchemaChange::Kind::TableStopped ? spdlog::level::warn : spdlog::level::info;
    log_event(*logger_, level, s.id, "schema_change",
              e.table.qualified() + ": " + capped_error(e.description),
              {{"state", state_name(s.state)},
               {"table", e.table.qualified()},
               {"kind", std::string(to_string(e.kind))}});
  }
}

}  // namespace clickpipe::cli
