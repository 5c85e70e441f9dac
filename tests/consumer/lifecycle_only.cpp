// Uses clickpipe::lifecycle alone: the model must bring no fmt, spdlog, JSON or threads with it.
#include <clickpipe/lifecycle/diagram.hpp>
#include <clickpipe/lifecycle/lifecycle.hpp>

#if defined(FMT_VERSION) || defined(SPDLOG_VERSION) || defined(NLOHMANN_JSON_VERSION_MAJOR) || \
    defined(_GLIBCXX_THREAD)
#error "the header-only model pulled in fmt, spdlog, nlohmann_json or <thread>"
#endif

#include <cstdio>

// A walk through the lifecycle, checked while compiling.
constexpr clickpipe::State walk() {
  clickpipe::Lifecycle pipe;
  pipe.apply(clickpipe::Trigger::Provisioned);
  pipe.apply(clickpipe::Trigger::SetupDone);
  pipe.apply(clickpipe::Trigger::SnapshotDone);
  pipe.apply(clickpipe::Trigger::Pause);
  pipe.apply(clickpipe::Trigger::CdcStopped);
  return pipe.state();
}
static_assert(walk() == clickpipe::State::Paused);

int main() {
  clickpipe::Lifecycle pipe;
  pipe.apply(clickpipe::Trigger::Provisioned);
  bool refused = !pipe.apply(clickpipe::Trigger::Pause).ok();  // Setup cannot be paused
  std::string_view state = clickpipe::to_string(pipe.state());
  std::printf("lifecycle ok: %.*s %s %zu rows\n", static_cast<int>(state.size()), state.data(),
              refused ? "refused" : "accepted", clickpipe::transition_table().size());
  return refused ? 0 : 1;
}
