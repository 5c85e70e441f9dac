// How fast the model decides: transitions per second through the table, next to a hand-written
// switch doing the same cycle and to the same refusal without the per-state row index.
//
// Each benchmark runs once per round, kRounds rounds, in the listed order in even rounds and
// reversed in odd ones; the medians and the ratios between them are printed at the end.
//
//   clickpipe_bench_model [--benchmark_min_time=SECONDS]
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <clickpipe/clickpipe.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

using clickpipe::Trigger;

// A pause/resume cycle: 4 transitions per iteration, all through the table.
void BM_PauseResumeCycle(benchmark::State& state) {
  clickpipe::Lifecycle l;
  l.apply(Trigger::Provisioned);
  l.apply(Trigger::SetupDone);
  l.apply(Trigger::SnapshotDone);
  for (auto _ : state) {
    benchmark::DoNotOptimize(l.apply(Trigger::Pause));
    benchmark::DoNotOptimize(l.apply(Trigger::CdcStopped));
    benchmark::DoNotOptimize(l.apply(Trigger::Resume));
    benchmark::DoNotOptimize(l.apply(Trigger::UpdateSettings));
  }
  state.SetItemsProcessed(state.iterations() * 4);
}
BENCHMARK(BM_PauseResumeCycle);

// A rejected command: the cost of saying no.
// (Hiding the pointer makes the compiler read the pipe's state afresh each time, as a real caller
// would, instead of deciding once for the whole loop. DoNotOptimize on the Lifecycle itself lets
// GCC keep an object wider than a register "in a register" with benchmark 1.7, which crashes.)
void BM_Rejection(benchmark::State& state) {
  clickpipe::Lifecycle pipe;
  clickpipe::Lifecycle* l = &pipe;
  for (auto _ : state) {
    benchmark::DoNotOptimize(l);
    benchmark::DoNotOptimize(l->apply(Trigger::Resume));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Rejection);

// The same refusal without the per-state index: the whole table scanned for a row that matches,
// then again for any row of (state, trigger) to name the reason, as lookups worked before the
// index. What the index saves is the difference to BM_Rejection.
std::optional<std::size_t> find_in_whole_table(const clickpipe::Lifecycle& l, Trigger t) {
  const auto table = clickpipe::transition_table();
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (table[i].from == l.state() && table[i].trigger == t && table[i].guard.holds(l.context()))
      return i;
  }
  return std::nullopt;
}

bool any_row_in_whole_table(const clickpipe::Lifecycle& l, Trigger t) {
  for (const auto& r : clickpipe::transition_table()) {
    if (r.from == l.state() && r.trigger == t) return true;
  }
  return false;
}

void BM_RejectionWholeTable(benchmark::State& state) {
  clickpipe::Lifecycle pipe;
  const clickpipe::Lifecycle* l = &pipe;
  for (auto _ : state) {
    benchmark::DoNotOptimize(l);
    const bool refused =
        !find_in_whole_table(*l, Trigger::Resume) && !any_row_in_whole_table(*l, Trigger::Resume);
    benchmark::DoNotOptimize(refused);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RejectionWholeTable);

// Baseline in the same run: a hand-written switch doing the same pause/resume cycle.
void BM_BaselineSwitch(benchmark::State& state) {
  int s = 3;
  for (auto _ : state) {
    for (int t : {0, 12, 1, 7}) {
      switch (s * 32 + t) {
        case 3 * 32 + 0: s = 4; break;
        case 4 * 32 + 12: s = 5; break;
        case 5 * 32 + 1: s = 3; break;
        default: break;
      }
      benchmark::DoNotOptimize(s);
    }
  }
  state.SetItemsProcessed(state.iterations() * 4);
}
BENCHMARK(BM_BaselineSwitch);

void BM_AllowedCommands(benchmark::State& state) {
  clickpipe::Lifecycle l;
  l.apply(Trigger::Provisioned);
  l.apply(Trigger::SetupDone);
  l.apply(Trigger::SnapshotDone);
  for (auto _ : state) benchmark::DoNotOptimize(l.allowed_commands());
}
BENCHMARK(BM_AllowedCommands);

// Prints each run's time per iteration (ns) as it comes and keeps it for the summary.
class Collector final : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration) continue;
      const double ns =
          r.GetAdjustedRealTime() * 1e9 / benchmark::GetTimeUnitMultiplier(r.time_unit);
      fmt::print("  {:<24} {:8.2f} ns\n", r.benchmark_name(), ns);
      ns_[r.benchmark_name()].push_back(ns);
    }
  }
  double median(const std::string& name) {
    std::vector<double> v = ns_.at(name);
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
  std::pair<double, double> range(const std::string& name) {
    const auto [lo, hi] = std::minmax_element(ns_.at(name).begin(), ns_.at(name).end());
    return {*lo, *hi};
  }

 private:
  std::map<std::string, std::vector<double>> ns_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // Variants compared with each other stand next to each other, so each pair swaps places every
  // round.
  const std::vector<std::string> names = {"BM_PauseResumeCycle", "BM_BaselineSwitch",
                                          "BM_Rejection", "BM_RejectionWholeTable",
                                          "BM_AllowedCommands"};
  constexpr int kRounds = 5;
  Collector c;
  for (int round = 0; round < kRounds; ++round) {
    fmt::print("round {} ({})\n", round + 1, round % 2 == 0 ? "listed order" : "reversed");
    for (std::size_t k = 0; k < names.size(); ++k) {
      const std::string& name = names[round % 2 == 0 ? k : names.size() - 1 - k];
      benchmark::RunSpecifiedBenchmarks(&c, "^" + name + "$");
    }
  }
  fmt::print("\nmedian of {} rounds, time per operation (fastest-slowest round)\n", kRounds);
  for (const std::string& name : names) {
    const auto [lo, hi] = c.range(name);
    fmt::print("  {:<24} {:8.2f} ns ({:.2f}-{:.2f})\n", name, c.median(name), lo, hi);
  }
  const double cycle = c.median("BM_PauseResumeCycle");
  const double sw = c.median("BM_BaselineSwitch");
  fmt::print(
      "table: {:.2f} ns per transition ({:.0f} M transitions/s); hand-written switch: {:.2f} ns "
      "per transition; ratio table/switch {:.1f}x\n",
      cycle / 4, 4e3 / cycle, sw / 4, cycle / sw);
  fmt::print(
      "refusal: {:.2f} ns with the per-state index, {:.2f} ns scanning the whole table "
      "twice; ratio {:.1f}x\n",
      c.median("BM_Rejection"), c.median("BM_RejectionWholeTable"),
      c.median("BM_RejectionWholeTable") / c.median("BM_Rejection"));
  benchmark::Shutdown();
  return 0;
}
