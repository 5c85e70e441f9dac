// Where a machine's CPU went over a stretch of a benchmark: PostgreSQL (the postmaster and all its
// processes, ended ones included), the ClickHouse server, this process (the pipe and the bench's
// own polling), the tools this process ran (psql, curl, pg_recvlogical), everything else, and
// idle. Read from /proc: each process's utime + stime, plus cutime + cstime, which hold the time
// of the children it has reaped, so processes that came and went during the stretch count too.
// Shares are of the machine's capacity (elapsed time x cores), as /proc/stat counts it.
#pragma once

#include <fmt/format.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace clickpipe::bench {

struct CpuTotals {
  double busy = 0;  // seconds, summed over the cores
  double idle = 0;  // idle and waiting for I/O
  double postgres = 0;
  double clickhouse = 0;
  double self = 0;
  double tools = 0;
};

class CpuSplit {
 public:
  // The servers' root processes from CLICKPIPE_BENCH_PG_PID and CLICKPIPE_BENCH_CH_PID, which
  // bench/e2e_bench.sh exports; a server without one is not split out (it lands in "other").
  CpuSplit()
      : postgres_(pid_from("CLICKPIPE_BENCH_PG_PID")), ch_(pid_from("CLICKPIPE_BENCH_CH_PID")) {}

  CpuTotals now() const {
    CpuTotals t;
    read_machine(t);
    struct Proc {
      pid_t ppid = 0;
      double own = 0, reaped = 0;
    };
    std::map<pid_t, Proc> procs;
    std::map<pid_t, std::vector<pid_t>> children;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
      const std::string name = e.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream in(e.path() / "stat");
      std::string text;
      if (!std::getline(in, text)) continue;  // ended meanwhile
      const auto close = text.rfind(')');
      if (close == std::string::npos) continue;
      // After "pid (comm)": state, ppid, 9 fields, utime, stime, cutime, cstime (in ticks).
      std::istringstream rest(text.substr(close + 1));
      std::string state, skip;
      Proc p;
      double ticks[4] = {0, 0, 0, 0};
      rest >> state >> p.ppid;
      for (int i = 0; i < 9; ++i) rest >> skip;
      for (double& v : ticks) rest >> v;
      p.own = (ticks[0] + ticks[1]) / tick();
      p.reaped = (ticks[2] + ticks[3]) / tick();
      const auto pid = static_cast<pid_t>(std::atol(name.c_str()));
      procs[pid] = p;
      children[p.ppid].push_back(pid);
    }
    auto tree = [&](pid_t root, bool with_root_own) {
      double sum = 0;
      std::vector<pid_t> pending{root};
      while (!pending.empty()) {
        const pid_t pid = pending.back();
        pending.pop_back();
        auto it = procs.find(pid);
        if (it == procs.end()) continue;
        sum += it->second.reaped + (pid != root || with_root_own ? it->second.own : 0);
        for (pid_t c : children[pid]) pending.push_back(c);
      }
      return sum;
    };
    if (postgres_ > 0) t.postgres = tree(postgres_, true);
    if (ch_ > 0) t.clickhouse = tree(ch_, true);
    const pid_t self = ::getpid();
    if (procs.count(self)) t.self = procs[self].own;
    t.tools = tree(self, false);
    return t;
  }

  // "PostgreSQL 36 %, ClickHouse server 19 %, ..." between two readings.
  std::string split(const CpuTotals& a, const CpuTotals& b, const char* self_name) const {
    const double capacity = (b.busy - a.busy) + (b.idle - a.idle);
    if (capacity <= 0) return "no time passed";
    auto pct = [&](double x) { return 100.0 * x / capacity; };
    const double pg = b.postgres - a.postgres, ch = b.clickhouse - a.clickhouse;
    const double self = b.self - a.self, tools = b.tools - a.tools;
    std::string out;
    if (postgres_ > 0) out += fmt::format("PostgreSQL {:.0f} %, ", pct(pg));
    if (ch_ > 0) out += fmt::format("ClickHouse server {:.0f} %, ", pct(ch));
    out +=
        fmt::format("{} {:.0f} %, the tools it ran {:.0f} %, ", self_name, pct(self), pct(tools));
    out += fmt::format("other {:.0f} %, idle {:.0f} % ({:.1f} s x {} cores)",
                       pct((b.busy - a.busy) - pg - ch - self - tools), pct(b.idle - a.idle),
                       capacity / static_cast<double>(cores()), cores());
    return out;
  }

 private:
  static pid_t pid_from(const char* name) {
    const char* v = std::getenv(name);
    return v ? static_cast<pid_t>(std::atol(v)) : 0;
  }
  static double tick() { return static_cast<double>(::sysconf(_SC_CLK_TCK)); }
  static long cores() { return ::sysconf(_SC_NPROCESSORS_ONLN); }

  // The first line of /proc/stat: user nice system idle iowait irq softirq steal (ticks).
  static void read_machine(CpuTotals& t) {
    std::ifstream in("/proc/stat");
    std::string cpu;
    double v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    in >> cpu;
    for (double& x : v) in >> x;
    t.idle = (v[3] + v[4]) / tick();
    t.busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick();
  }

  pid_t postgres_;
  pid_t ch_;
};

}  // namespace clickpipe::bench
