// How fast the model decides: transitions per second through the table.
#include <benchmark/benchmark.h>

#include <clickpipe/clickpipe.hpp>

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
void BM_Rejection(benchmark::State& state) {
  clickpipe::Lifecycle l;
  for (auto _ : state) benchmark::DoNotOptimize(l.apply(Trigger::Resume));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Rejection);

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

}  // namespace

BENCHMARK_MAIN();
