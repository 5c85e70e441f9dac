// Small pieces every benchmark program uses.
#pragma once

#include <fmt/format.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/null_sink.h>
#include <sys/vfs.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "clickpipe/table.hpp"

namespace clickpipe::bench {

using Steady = std::chrono::steady_clock;

inline double since(Steady::time_point t) {
  return std::chrono::duration<double>(Steady::now() - t).count();
}

// An environment variable the bench's script sets; exits with a hint when it is missing.
// Ends the benchmark, loudly, unless `ok`: a figure from a run that went wrong is not printed.
inline void must(bool ok, const std::string& what) {
  if (!ok) {
    fmt::print(stderr, "failed: {}\n", what);
    std::exit(1);
  }
}

struct Ran {
  int status = -1;  // as from pclose
  std::string out;  // what it printed on stdout
  double seconds = 0;
};

// Runs a shell command and times it, keeping what it prints.
inline Ran run_captured(const std::string& cmd) {
  Ran r;
  const auto t0 = Steady::now();
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
    r.status = ::pclose(p);
  }
  r.seconds = since(t0);
  return r;
}

// The sample at rank p (0..1) of the sorted samples, nearest rank; 0 without samples.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size(), std::max<std::size_t>(rank, 1)) - 1];
}

inline double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

// How far single runs moved: (slowest - fastest) / median, in percent.
inline double spread_percent(const std::vector<double>& v) {
  if (v.empty()) return 0;
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return 100.0 * (*hi - *lo) / median(v);
}

// "p50 X unit, p99 Y unit (N samples)". A p99 of fewer than 100 samples would be the maximum
// under another name, so below 100 the tail is printed as what it is: "max".
inline std::string tail(const std::vector<double>& v, int decimals, const char* unit) {
  const bool enough = v.size() >= 100;
  return fmt::format("p50 {:.{}f} {}, {} {:.{}f} {} ({} samples)", percentile(v, 0.5), decimals,
                     unit, enough ? "p99" : "max", percentile(v, enough ? 0.99 : 1.0), decimals,
                     unit, v.size());
}

// The order in which `variants` run in round `round`: as listed in even rounds, reversed in odd
// ones, so that no variant always runs first (cold caches) or last (a server's deferred work).
inline std::vector<std::size_t> round_order(std::size_t variants, int round) {
  std::vector<std::size_t> order(variants);
  for (std::size_t i = 0; i < variants; ++i) order[i] = round % 2 == 0 ? i : variants - 1 - i;
  return order;
}

// Threads of this process now, from /proc/self/task.
inline long threads_now() {
  long n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// " (on tmpfs, where fsync costs nothing: not a durable checkpoint)" when `path` is on tmpfs.
inline std::string tmpfs_warning(const std::string& path) {
  struct statfs f {};
  constexpr decltype(f.f_type) kTmpfs = 0x01021994;  // TMPFS_MAGIC
  if (::statfs(path.c_str(), &f) == 0 && f.f_type == kTmpfs) {
    return " (on tmpfs, where fsync costs nothing: not a durable checkpoint)";
  }
  return "";
}

// A logger that drops everything: benchmarks measure the work, not the logging.
inline std::shared_ptr<spdlog::logger> quiet() {
  static auto logger =
      std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
  return logger;
}

// The table the in-memory benchmarks use: id int8 (the key) and v text.
inline TableDefinition two_column_table(const std::string& name) {
  TableDefinition d;
  d.table = TableRef{"public", name};
  d.columns = {Column{.name = "id", .type = "int8", .type_oid = 20, .nullable = false},
               Column{.name = "v", .type = "text", .type_oid = 25}};
  d.primary_key = {"id"};
  return d;
}

}  // namespace clickpipe::bench
