#include "run.hpp"

#include <fmt/core.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "clickpipe/format.hpp"
#include "clickpipe/runtime/pipe_service.hpp"
#include "clickpipe/store/file_store.hpp"
#include "control.hpp"

namespace clickpipe::cli {

using namespace std::chrono_literals;

namespace {

volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

std::string bar(std::uint64_t done, std::uint64_t total) {
  constexpr std::size_t width = 20;
  // More done than estimated (rows written meanwhile) shows a full bar, never a longer one.
  const std::size_t filled =
      total ? static_cast<std::size_t>(std::min<std::uint64_t>(width * done / total, width)) : 0;
  std::string out(width + 2, '.');
  out.front() = '[';
  out.back() = ']';
  out.replace(1, filled, filled, '#');
  return out;
}

// Transitions and retries as they happen; the operator sees the external ones only.
struct Printer : TransitionListener {
  void on_transition(const TransitionEvent& e) override {
    if (e.transition.kind == TransitionKind::External)
      fmt::print("{} {}\n", e.pipe_id, e.transition);
    if (!e.error.empty()) fmt::print("  error: {}\n", e.error);
  }
  void on_retry(const std::string& id, const RetryStatus& r) override {
    fmt::print("{} retrying {} (attempt {}): {}\n", id, r.operation, r.attempt, r.last_error);
  }
};

// One line per pipe, every two seconds: partition bars in Snapshot, throughput and lag in CDC.
class Progress {
 public:
  void print_if_due(PipeService& service) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_print_ <= 2s) return;
    for (const PipeStatus& s : service.statuses()) print(s);
    last_print_ = std::chrono::steady_clock::now();
  }

 private:
  void print(const PipeStatus& s) {
    std::string line = fmt::format("{} {}", s.id, s.state);
    if (s.state == State::Snapshot) {
      for (const auto& t : s.snapshot) {
        line += fmt::format("  {} {} {}/{}", t.table.qualified(),
                            bar(t.partitions_done, t.partitions_total), t.partitions_done,
                            t.partitions_total);
      }
    } else if (s.state == State::Running || s.state == State::Degraded) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - last_print_).count();
      line += fmt::format("  {:.0f} changes/s, lag {} bytes, confirmed {}",
                          double(s.cdc.changes - std::min(s.cdc.changes, last_changes_)) / secs,
                          s.cdc.lag_bytes, s.cdc.confirmed ? to_string(*s.cdc.confirmed) : "-");
      last_changes_ = s.cdc.changes;
    }
    if (s.retry) line += fmt::format("  retrying {}: {}", s.retry->operation, s.retry->last_error);
    if (!s.stopped_tables.empty())
      line += fmt::format("  {} table(s) stopped", s.stopped_tables.size());
    fmt::print("{}\n", line);
    // Each schema change once, as it is seen (the status keeps only the newest).
    TimePoint& shown = schema_shown_[s.id];
    for (const SchemaEvent& e : s.schema_changes) {
      if (e.at <= shown) continue;
      fmt::print("{} schema change: {}\n", s.id, e.description);
      shown = e.at;
    }
  }

  std::chrono::steady_clock::time_point last_print_ = std::chrono::steady_clock::now();
  std::uint64_t last_changes_ = 0;
  std::map<std::string, TimePoint> schema_shown_;  // newest schema change printed, per pipe
};

}  // namespace

int run(const CliConfig& cfg) {
  // The store makes its own directory private (0700) and refuses one that is not, so only the
  // parents are made here, as before; the control directory inside is made and checked the same.
  std::filesystem::path store_path = std::filesystem::path(cfg.store).lexically_normal();
  if (!store_path.has_filename()) store_path = store_path.parent_path();  // a trailing slash
  if (store_path.has_parent_path()) std::filesystem::create_directories(store_path.parent_path());
  ServiceOptions o;
  o.store = FileStore::open(cfg.store);
  const std::filesystem::path control = control_dir(cfg.store);
  make_control_dir(control);
  // The listeners print what the operator needs; the runtime's own log would drown it.
  o.logger = std::make_shared<spdlog::logger>("clickpipe",
                                              std::make_shared<spdlog::sinks::null_sink_mt>());
  o.listeners = {std::make_shared<Printer>()};
  o.executors = [&cfg](const std::string&, Mode) {
    return pg_to_clickhouse::make_executors(cfg.executors);
  };
  PipeService service(o);
  for (const auto& b : service.broken())
    fmt::print(stderr, "broken record {}: {}\n", b.name, b.reason);
  if (!service.get(cfg.pipe.id)) service.create(cfg.pipe);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  fmt::print("running pipe {} (store {}); Ctrl-C stops it, a later run resumes it\n", cfg.pipe.id,
             cfg.store);

  Progress progress;
  CommandInbox inbox(service, control);
  while (!stop_requested) {
    inbox.answer();  // never throws: nothing planted in control/ stops the pipe
    progress.print_if_due(service);
    std::this_thread::sleep_for(200ms);
  }
  fmt::print("stopping: saving and joining\n");
  service.shutdown();
  return 0;
}

}  // namespace clickpipe::cli
