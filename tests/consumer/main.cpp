#include <clickpipe/clickpipe.hpp>
#include <clickpipe/json.hpp>
#include <nlohmann/json.hpp>

int main() {
  clickpipe::Lifecycle pipe;
  pipe.apply(clickpipe::Trigger::Provisioned);
  pipe.apply(clickpipe::Trigger::SetupDone);
  pipe.apply(clickpipe::Trigger::SnapshotDone);
  nlohmann::json j = pipe;
  fmt::print("consumer ok: {} {}\n", pipe.state(), j.at("state").get<std::string>());
  return pipe.state() == clickpipe::State::Running ? 0 : 1;
}
