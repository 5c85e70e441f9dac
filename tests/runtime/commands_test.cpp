// Every command in every state, through the runtime: accepted exactly where the model says,
// and a refusal changes nothing.
#include <gtest/gtest.h>

#include "world.hpp"

namespace clickpipe::test {
namespace {

using testing::drive_to;
using testing::wait_until;
namespace op = testing::op;

// Puts a fresh pipe of `w` into `target` and holds it there (blocked executors hold the
// transitional states). Returns the pipe, or nullptr if it did not get there.
Pipe* hold_in(World& w, State target) {
  PipeConfig cfg = w.config("p");
  switch (target) {
    case State::Provisioning: w.faults->block(op::provision); break;
    case State::Setup: w.faults->block(op::read_definitions); break;
    case State::Snapshot: w.faults->block(op::copy_partition); break;
    case State::Modifying: w.faults->block(op::remove_tables); break;
    case State::Resync: w.faults->block(op::swap_resync_tables); break;
    case State::Terminating: w.faults->block(op::teardown); break;
    case State::Pausing: w.faults->block(op::pull, 3); break;  // deaf to the stop request
    case State::Completed: cfg.mode = Mode::SnapshotOnly; break;
    case State::Failed: w.faults->fatal(op::provision, 1); break;
    default: break;
  }
  struct Sick : HealthPolicy {
    std::optional<std::string> unhealthy(const HealthSignals&) override { return "test"; }
  };
  Pipe& p = w.make(cfg, target == State::Degraded ? std::make_shared<Sick>() : nullptr);
  p.start();
  bool ok = false;
  switch (target) {
    case State::Paused:
    case State::Terminated: ok = drive_to(p, target); break;
    case State::Pausing:
      ok = p.wait_for(State::Running, 10s) && w.faults->wait_blocked(10s) && p.pause() &&
           p.wait_for(State::Pausing, 10s);
      break;
    case State::Modifying:
      ok = p.wait_for(State::Running, 10s) && p.remove_tables({w.users}) &&
           p.wait_for(State::Modifying, 10s);
      break;
    case State::Resync:
      ok = p.wait_for(State::Running, 10s) && p.resync() && p.wait_for(State::Resync, 10s);
      break;
    case State::Terminating:
      ok = p.wait_for(State::Running, 10s) && p.remove() && p.wait_for(State::Terminating, 10s);
      break;
    default: ok = p.wait_for(target, 10s);
  }
  if (ok &&
      (target == State::Provisioning || target == State::Setup || target == State::Snapshot)) {
    ok = w.faults->wait_blocked(10s);
  }
  return ok ? &p : nullptr;
}

CommandResult issue(World& w, Pipe& p, Trigger command) {
  Settings s = p.status().settings;
  switch (command) {
    case Trigger::Pause: return p.pause();
    case Trigger::Resume: return p.resume();
    case Trigger::Retry: return p.retry();
    case Trigger::Resync: return p.resync();
    case Trigger::AddTables: return p.add_tables({w.extra});
    case Trigger::CancelTableAddition: return p.cancel_table_addition();
    case Trigger::RemoveTables: return p.remove_tables({w.orders});
    case Trigger::UpdateSettings: return p.update_settings(s);
    case Trigger::Delete: return p.remove();
    default: ADD_FAILURE() << "not a command"; return {};
  }
}

class EveryCommandIn : public ::testing::TestWithParam<State> {};

TEST_P(EveryCommandIn, IsAcceptedExactlyWhereTheModelSays) {
  const State state = GetParam();
  for (Trigger command : kAllTriggers) {
    if (!is_command(command)) continue;
    World w;
    Pipe* p = hold_in(w, state);
    ASSERT_NE(p, nullptr) << "could not hold a pipe in " << to_string(state);
    const PipeStatus before = p->status();
    ASSERT_EQ(before.state, state);
    const bool legal = before.allowed_commands.contains(command);
    const CommandResult r = issue(w, *p, command);
    EXPECT_EQ(r.accepted(), legal)
        << to_string(command) << " in " << to_string(state) << ": " << r.message;
    if (!legal) {
      EXPECT_EQ(r.status, CommandResult::Status::Rejected);
      ASSERT_TRUE(r.rejection.has_value());
      EXPECT_EQ(r.rejection->state, state);
      EXPECT_EQ(r.rejection->trigger, command);
      const PipeStatus after = p->status();
      EXPECT_EQ(after.state, state);
      EXPECT_EQ(after.transitions, before.transitions) << "a refusal must change nothing";
      EXPECT_EQ(after.tables, before.tables);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Runtime, EveryCommandIn,
                         ::testing::Values(State::Provisioning, State::Setup, State::Snapshot,
                                           State::Running, State::Pausing, State::Paused,
                                           State::Modifying, State::Resync, State::Completed,
                                           State::Failed, State::Degraded, State::Terminating,
                                           State::Terminated),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(Commands, PauseFromPausingIsATypedRejection) {
  World w;
  Pipe* p = hold_in(w, State::Pausing);
  ASSERT_NE(p, nullptr);
  const CommandResult r = p->pause();
  EXPECT_EQ(r.status, CommandResult::Status::Rejected);
  EXPECT_EQ(r.message, "pause is not allowed in state Pausing");
  w.faults->release();
  EXPECT_TRUE(p->wait_for(State::Paused, 10s));
}

TEST(Commands, AnInFlightBatchIsAppliedAndConfirmedOrDroppedNeverHalfConfirmed) {
  // Whatever moment the pause lands, every row committed at or before the confirmed position is
  // at the destination, and the source's slot holds exactly that position.
  for (int round = 0; round < 20; ++round) {
    World w(50);
    Pipe& p = w.started(w.config("p"));
    ASSERT_TRUE(p.wait_for(State::Running, 10s));
    std::atomic<bool> writing{true};
    std::vector<std::pair<int, Lsn>> written;
    std::thread writer([&] {
      for (int i = 0; writing; ++i) {
        written.emplace_back(100000 + i, w.mem.source->insert(w.orders, row(100000 + i, "w")));
      }
    });
    // Pause after a varying number of batches of the writes were applied: the pause lands
    // mid-stream, at a different point each round.
    const auto applied = w.faults->calls(op::apply);
    EXPECT_TRUE(wait_until(p, [&](const PipeStatus&) {
      return w.faults->calls(op::apply) >= applied + 1 + static_cast<unsigned>(round % 5);
    }));
    ASSERT_TRUE(p.pause());
    ASSERT_TRUE(p.wait_for(State::Paused, 10s));
    writing = false;
    writer.join();
    const PipeStatus s = p.status();
    ASSERT_TRUE(s.cdc.confirmed.has_value());
    EXPECT_EQ(w.mem.source->confirmed("clickpipe_p"), s.cdc.confirmed);
    const auto dest = w.mem.destination->final_rows(destination_name(w.orders));
    for (const auto& [id, lsn] : written) {
      if (lsn <= *s.cdc.confirmed) {
        ASSERT_TRUE(dest.count(std::to_string(id))) << "row " << id << " confirmed but missing";
      }
    }
    ASSERT_TRUE(p.resume());
    EXPECT_TRUE(w.wait_in_sync(w.orders));
  }
}

}  // namespace
}  // namespace clickpipe::test
