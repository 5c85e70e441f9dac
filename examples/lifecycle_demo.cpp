// Prints the lifecycle diagram and walks one pipe through the model, command by command.
#include <clickpipe/clickpipe.hpp>

#include <initializer_list>

namespace {

bool step(clickpipe::Lifecycle& pipe, clickpipe::Trigger t) {
  clickpipe::ApplyResult r = pipe.apply(t);
  if (r) {
    fmt::print("  {:<24} {}\n", fmt::format("{}:", t), r.transition());
  } else {
    fmt::print("  {:<24} rejected: {}\n", fmt::format("{}:", t), r.rejection());
  }
  return r.ok();
}

}  // namespace

int main() {
  using clickpipe::Trigger;
  fmt::print("The lifecycle of a Postgres ClickPipe (Mermaid):\n\n{}\n", clickpipe::to_mermaid());

  clickpipe::Lifecycle pipe;
  fmt::print("A pipe starts in {}.\n", pipe.state());
  int failures = 0;
  for (Trigger t :
       {Trigger::Provisioned, Trigger::SetupDone, Trigger::SnapshotDone, Trigger::Pause,
        Trigger::CdcStopped, Trigger::AddTables, Trigger::SetupDone, Trigger::SnapshotDone,
        Trigger::Resync, Trigger::SnapshotDone, Trigger::SwapDone}) {
    failures += step(pipe, t) ? 0 : 1;
  }
  fmt::print("\nA command that is not legal is refused, and nothing changes:\n");
  const bool resumed = step(pipe, Trigger::Resume);
  fmt::print("\nNow {}; allowed commands:", pipe.state());
  pipe.allowed_commands().for_each([](Trigger t) { fmt::print(" {}", t); });
  fmt::print("\n");
  failures += step(pipe, Trigger::Delete) ? 0 : 1;
  failures += step(pipe, Trigger::Terminated) ? 0 : 1;
  return failures == 0 && !resumed && pipe.state() == clickpipe::State::Terminated ? 0 : 1;
}
