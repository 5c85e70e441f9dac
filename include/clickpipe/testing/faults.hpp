// Fault injection for executors: wrap any executor, then make its Nth call fail, slow down or
// hang. Every wrapper call is counted, so the wrappers double as call-counting fakes.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "clickpipe/executors/executors.hpp"

namespace clickpipe::testing {

// Operation names, one per executor method.
namespace op {
inline constexpr std::string_view provision = "provision";
inline constexpr std::string_view read_definitions = "read_definitions";
inline constexpr std::string_view create_tables = "create_tables";
inline constexpr std::string_view swap_resync_tables = "swap_resync_tables";
inline constexpr std::string_view remove_tables = "remove_tables";
inline constexpr std::string_view teardown = "teardown";
inline constexpr std::string_view drop_destination_tables = "drop_destination_tables";
inline constexpr std::string_view begin_snapshot = "begin_snapshot";
inline constexpr std::string_view plan_partitions = "plan_partitions";
inline constexpr std::string_view copy_partition = "copy_partition";
inline constexpr std::string_view end_snapshot = "end_snapshot";
inline constexpr std::string_view cdc_start = "cdc_start";
inline constexpr std::string_view pull = "pull";
inline constexpr std::string_view apply = "apply";
inline constexpr std::string_view confirm = "confirm";
inline constexpr std::string_view cdc_stop = "cdc_stop";
}  // namespace op

// Thread-safe. Calls are numbered from 1 per operation.
class FaultPlan {
 public:
  // Calls first..first+times-1 of `operation` throw TransientError.
  FaultPlan& transient(std::string_view operation, std::uint32_t first, std::uint32_t times = 1);
  // Call `nth` of `operation` throws FatalError.
  FaultPlan& fatal(std::string_view operation, std::uint32_t nth);
  // Call `nth` throws a plain std::runtime_error (the runtime must treat it as fatal).
  FaultPlan& unclassified(std::string_view operation, std::uint32_t nth);
  // Calls from `first` on wait `delay` (cut short by cancellation) before running.
  FaultPlan& delay(std::string_view operation, std::chrono::milliseconds delay,
                   std::uint32_t first = 1);
  // Call `nth` blocks until cancelled, then throws Cancelled.
  FaultPlan& hang(std::string_view operation, std::uint32_t nth);

  // Call `nth` blocks, deaf to cancellation (an executor slow to stop), until release().
  FaultPlan& block(std::string_view operation, std::uint32_t nth = 1);
  // Lets every blocked call go on, and makes later block rules pass straight through.
  void release();
  // Waits until a call is blocked in a block rule.
  bool wait_blocked(std::chrono::milliseconds timeout);

  // Called by the wrappers before the real call: counts it and does what a rule says.
  void on_call(std::string_view operation, const ExecContext& ctx);
  std::uint32_t calls(std::string_view operation) const;

 private:
  enum class Action : std::uint8_t { Transient, Fatal, Unclassified, Delay, Hang, Block };
  struct Rule {
    std::string operation;
    std::uint32_t first;
    std::uint32_t last;
    Action action;
    std::chrono::milliseconds delay{0};
  };
  FaultPlan& add(Rule r);
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  std::size_t blocked_ = 0;
  std::vector<Rule> rules_;
  std::map<std::string, std::uint32_t, std::less<>> calls_;
};

// Wraps each of the four executors so that every call goes through `plan` first.
Executors with_faults(Executors inner, std::shared_ptr<FaultPlan> plan);

}  // namespace clickpipe::testing
