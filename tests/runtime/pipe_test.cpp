#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <thread>

#include "../expect.hpp"
#include "clickpipe/json.hpp"
#include "world.hpp"

namespace clickpipe::test {
namespace {

using testing::drive_to;
using testing::wait_until;
namespace op = testing::op;
using Log = std::vector<std::string>;

TEST(Pipe, InitialLoadThenCdcKeepsTheDestinationEqualToTheSource) {
  World w;
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  EXPECT_TRUE(w.in_sync(w.orders));
  EXPECT_TRUE(w.in_sync(w.users));
  EXPECT_EQ(w.log_from(0, 3),
            (Log{"Provisioning -[provisioned]-> Setup", "Setup -[setup_done]-> Snapshot",
                 "Snapshot -[snapshot_done]-> Running"}));

  w.mem.source->update(w.orders, row(3, "changed"));
  w.mem.source->erase(w.orders, row(4, ""));
  w.fill(w.users, 1000, 1100);
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  EXPECT_TRUE(w.wait_in_sync(w.users));
}

TEST(Pipe, SnapshotCopiesEachPartitionOnceAndReportsProgress) {
  World w(1000);
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  // orders: 1000 rows / 50 = 20 partitions; users: 500 / 50 = 10.
  EXPECT_EQ(w.faults->calls(op::copy_partition), 30u);
  const PipeStatus s = p.status();
  ASSERT_EQ(s.snapshot.size(), 2u);
  EXPECT_EQ(s.snapshot[0].partitions_total, 20u);
  EXPECT_EQ(s.snapshot[0].partitions_done, 20u);
  EXPECT_EQ(s.snapshot[0].rows_copied, 1000u);
  EXPECT_EQ(s.snapshot[1].rows_copied, 500u);
  ASSERT_TRUE(s.slot.has_value());
  EXPECT_EQ(s.slot->name, "clickpipe_p1");
}

TEST(Pipe, MaxPartitionsPerTableGrowsThePartitions) {
  World w(1000);
  PipeConfig cfg = w.config("p1");
  cfg.settings.max_partitions_per_table = 4;
  Pipe& p = w.started(cfg);
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  EXPECT_EQ(p.status().snapshot[0].partitions_total, 4u);
  EXPECT_TRUE(w.in_sync(w.orders));
}

TEST(Pipe, PauseStopsCdcAndResumeCatchesUp) {
  World w;
  Witness witness(w);
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  // Paused only once the stream is open: a pause before CDC starts has no stream to close.
  ASSERT_TRUE(eventually([&] { return w.faults->calls(op::pull) > 0; }));
  ASSERT_TRUE(drive_to(p, State::Paused));
  const auto confirmed = p.status().cdc.confirmed;
  EXPECT_EQ(w.mem.source->confirmed("clickpipe_p1"), confirmed)
      << "confirmed exactly what was saved";
  EXPECT_EQ(w.faults->calls(op::cdc_stop), 1u) << "the stream was closed";
  const auto pulls = w.faults->calls(op::pull);

  w.fill(w.orders, 5000, 5100);
  ASSERT_TRUE(witness.saw_a_later_write()) << "a running pipe would have pulled the rows by now";
  EXPECT_EQ(w.faults->calls(op::pull), pulls) << "a paused pipe pulls nothing";
  EXPECT_FALSE(w.in_sync(w.orders));
  EXPECT_EQ(p.status().cdc.confirmed, confirmed);

  ASSERT_TRUE(p.resume());
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  ASSERT_TRUE(w.listener->wait_for_entries(6));
  const Log log = w.listener->log();
  EXPECT_EQ(Log(log.begin() + 3, log.begin() + 6),
            (Log{"Running -[pause]-> Pausing", "Pausing -[cdc_stopped]-> Paused",
                 "Paused -[resume]-> Running"}));
}

TEST(Pipe, CdcOnlyStartsAtTheSlotAndCopiesNothingOld) {
  World w;
  Pipe& p = w.started(w.config("p1", Mode::CdcOnly));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  EXPECT_EQ(w.faults->calls(op::copy_partition), 0u);
  ASSERT_TRUE(wait_until(p, [](const PipeStatus& s) { return s.cdc.confirmed.has_value(); }));
  w.mem.source->insert(w.orders, row(9001, "new"));
  ASSERT_TRUE(wait_until(p, [&](const PipeStatus&) {
    return w.mem.destination->final_rows(destination_name(w.orders)).size() == 1;
  }));
  EXPECT_EQ(w.log_from(0, 2),
            (Log{"Provisioning -[provisioned]-> Setup", "Setup -[setup_done]-> Running"}));
}

TEST(Pipe, SnapshotOnlyCompletesWithoutASlot) {
  World w;
  Pipe& p = w.started(w.config("p1", Mode::SnapshotOnly));
  ASSERT_TRUE(p.wait_for(State::Completed, 10s));
  EXPECT_TRUE(w.in_sync(w.orders));
  EXPECT_FALSE(w.mem.source->slot("clickpipe_p1").has_value());
  EXPECT_EQ(w.faults->calls(op::cdc_start), 0u);
  EXPECT_EQ(p.status().allowed_commands,
            (TriggerSet{Trigger::Resync, Trigger::UpdateSettings, Trigger::Delete}));
}

TEST(Pipe, ResyncLoadsResyncTablesAndSwapsThem) {
  World w;
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  const auto copies = w.faults->calls(op::copy_partition);
  ASSERT_TRUE(p.resync());
  ASSERT_TRUE(wait_until(
      p, [](const PipeStatus& s) { return s.state == State::Running && s.transitions >= 6; }));
  EXPECT_EQ(w.faults->calls(op::copy_partition), 2 * copies);
  EXPECT_EQ(w.faults->calls(op::swap_resync_tables), 1u);
  EXPECT_FALSE(w.mem.destination->has_table(destination_name(w.orders, true)));
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  EXPECT_EQ(w.log_from(3, 6),
            (Log{"Running -[resync]-> Snapshot", "Snapshot -[snapshot_done]-> Resync",
                 "Resync -[swap_done]-> Running"}));
}

TEST(Pipe, AddTablesCopiesOnlyTheNewTableAndCdcGoesOn) {
  World w;
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  const auto copies = w.faults->calls(op::copy_partition);
  ASSERT_TRUE(p.add_tables({w.extra}));
  w.fill(w.orders, 7000, 7010);  // written during the addition: must arrive after it
  ASSERT_TRUE(wait_until(
      p, [](const PipeStatus& s) { return s.state == State::Running && s.tables.size() == 3; }));
  EXPECT_EQ(w.faults->calls(op::copy_partition), copies + 1) << "extra has 40 rows: 1 partition";
  EXPECT_TRUE(w.wait_in_sync(w.extra));
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  w.mem.source->insert(w.extra, row(777, "later"));
  EXPECT_TRUE(w.wait_in_sync(w.extra));
  EXPECT_EQ(w.log_from(3, 7),
            (Log{"Running -[add_tables]-> Pausing", "Pausing -[cdc_stopped]-> Setup",
                 "Setup -[setup_done]-> Snapshot", "Snapshot -[snapshot_done]-> Running"}));
}

TEST(Pipe, AddTablesRejectsBadArgumentsAndChangesNothing) {
  World w;
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  CommandResult r = p.add_tables({w.orders});
  EXPECT_EQ(r.status, CommandResult::Status::Invalid);
  EXPECT_NE(r.message.find("public.orders is already in the pipe"), std::string::npos);
  EXPECT_EQ(p.add_tables({}).status, CommandResult::Status::Invalid);
  EXPECT_EQ(p.state(), State::Running);
  EXPECT_EQ(p.status().tables.size(), 2u);
}

TEST(Pipe, CancelTableAdditionDropsTheNewTableAndResumesCdc) {
  World w;
  w.faults->block(op::copy_partition, 2);  // the first partition of the added table
  PipeConfig cfg = w.config("p1");
  cfg.tables = {w.orders};
  cfg.settings.rows_per_partition = 1000;  // orders: one partition
  Pipe& p = w.started(cfg);
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  ASSERT_TRUE(p.add_tables({w.extra}));
  ASSERT_TRUE(w.faults->wait_blocked(10s));
  EXPECT_EQ(p.state(), State::Snapshot);
  ASSERT_TRUE(p.cancel_table_addition());
  w.faults->release();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  EXPECT_EQ(p.status().tables, std::vector<TableRef>{w.orders});
  ASSERT_TRUE(
      wait_until(p, [&](const PipeStatus&) { return w.faults->calls(op::remove_tables) == 1; }));
  w.mem.source->insert(w.orders, row(4242, "after cancel"));
  EXPECT_TRUE(w.wait_in_sync(w.orders));
}

TEST(Pipe, RemoveTablesStopsReplicatingThemAndKeepsTheirData) {
  World w;
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  ASSERT_TRUE(p.remove_tables({w.users}));
  ASSERT_TRUE(wait_until(
      p, [](const PipeStatus& s) { return s.state == State::Running && s.tables.size() == 1; }));
  const auto users_before = w.mem.destination->final_rows(destination_name(w.users));
  w.fill(w.users, 8000, 8010);
  w.fill(w.orders, 8000, 8010);
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  EXPECT_EQ(w.mem.destination->final_rows(destination_name(w.users)), users_before);
  EXPECT_EQ(w.log_from(3, 6),
            (Log{"Running -[remove_tables]-> Pausing", "Pausing -[cdc_stopped]-> Modifying",
                 "Modifying -[tables_removed]-> Running"}));
}

TEST(Pipe, RemoveTablesFromPausedReturnsToPaused) {
  World w;
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(drive_to(p, State::Paused));
  ASSERT_TRUE(p.remove_tables({w.users}));
  ASSERT_TRUE(wait_until(
      p, [](const PipeStatus& s) { return s.state == State::Paused && s.tables.size() == 1; }));
  EXPECT_EQ(p.remove_tables({w.orders}).status, CommandResult::Status::Invalid)
      << "the last table cannot be removed";
}

TEST(Pipe, DeleteDropsTheSlotAndEndsTerminated) {
  World w;
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  ASSERT_TRUE(w.mem.source->slot("clickpipe_p1").has_value());
  ASSERT_TRUE(drive_to(p, State::Terminated));
  EXPECT_FALSE(w.mem.source->slot("clickpipe_p1").has_value());
  EXPECT_TRUE(p.status().allowed_commands.empty());
  EXPECT_EQ(p.resume().status, CommandResult::Status::Rejected);
}

TEST(Pipe, UpdateSettingsAppliesLiveAndRejectsBadValuesByName) {
  World w;
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  Settings s = p.status().settings;
  s.pull_batch_size = 7;
  ASSERT_TRUE(p.update_settings(s));
  EXPECT_EQ(p.status().settings.pull_batch_size, 7u);
  EXPECT_EQ(p.state(), State::Running);
  // A pull already waiting keeps the settings it began with: let one batch go by first.
  w.mem.source->insert(w.orders, row(8999, "marker"));
  ASSERT_TRUE(w.wait_in_sync(w.orders));
  const auto batches = p.status().cdc.batches;
  w.fill(w.orders, 9000, 9070);  // one transaction of 70: a whole transaction stays in one batch
  for (int i = 0; i < 14; ++i) w.mem.source->insert(w.orders, row(9100 + i, "x"));
  ASSERT_TRUE(w.wait_in_sync(w.orders));
  EXPECT_GE(p.status().cdc.batches - batches, 3u) << "14 single-row transactions, 7 per batch";

  s.pull_batch_size = 0;
  const CommandResult bad = p.update_settings(s);
  EXPECT_EQ(bad.status, CommandResult::Status::Invalid);
  EXPECT_NE(bad.message.find("settings.pull_batch_size"), std::string::npos);
  EXPECT_EQ(p.status().settings.pull_batch_size, 7u);
}

TEST(Pipe, InvalidConfigIsRejectedNamingTheField) {
  World w;
  PipeConfig cfg = w.config("p1");
  cfg.tables.push_back(w.orders);
  auto e = expect_throws<InvalidField>([&] { w.make(cfg); });
  EXPECT_EQ(e ? e->field() : "", "tables[2]");
  cfg = w.config("");
  EXPECT_THROW(w.make(cfg), InvalidField);
  cfg = w.config("p1");
  cfg.settings.partitions_in_parallel = 0;
  e = expect_throws<InvalidField>([&] { w.make(cfg); });
  EXPECT_EQ(e ? e->field() : "", "settings.partitions_in_parallel");
}

TEST(Pipe, ShutdownKeepsTheStateAndStartGoesOn) {
  World w;
  Witness witness(w);
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  p.shutdown();
  EXPECT_EQ(p.state(), State::Running);
  const auto pulls = w.faults->calls(op::pull);
  w.fill(w.orders, 6000, 6010);
  ASSERT_TRUE(witness.saw_a_later_write()) << "a running pipe would have pulled the rows by now";
  EXPECT_EQ(w.faults->calls(op::pull), pulls) << "a pipe shut down pulls nothing";
  EXPECT_FALSE(w.in_sync(w.orders));
  p.start();
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  EXPECT_EQ(p.status().history.size(), 3u) << "no new transition: it simply carried on";
}

TEST(Pipe, StatusJsonHasTheDocumentedFields) {
  World w;
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  const nlohmann::json j = p.status();
  for (const char* field :
       {"id", "state", "mode", "since", "allowed_commands", "tables", "snapshot", "cdc", "slot",
        "retry", "last_error", "settings", "history"}) {
    EXPECT_TRUE(j.contains(field)) << field;
  }
  EXPECT_EQ(j.at("state"), "Running");
  EXPECT_EQ(j.at("snapshot")[0].at("table"), "public.orders");
  EXPECT_EQ(j.at("history").size(), 3u);
  EXPECT_EQ(j.at("history")[2].at("to"), "Running");
  EXPECT_EQ(j.at("slot").at("name"), "clickpipe_p1");
}

TEST(Pipe, HistoryMatchesWhatListenersSaw) {
  World w;
  Pipe& p = w.started(w.config("p1"));
  ASSERT_TRUE(drive_to(p, State::Paused));
  ASSERT_TRUE(p.resume());
  ASSERT_TRUE(drive_to(p, State::Terminated));
  const PipeStatus s = p.status();
  ASSERT_TRUE(w.listener->wait_for_entries(s.history.size()));
  const Log log = w.listener->log();
  ASSERT_EQ(log.size(), s.history.size());
  for (std::size_t i = 0; i < log.size(); ++i) {
    EXPECT_EQ(log[i], fmt::format("{} -[{}]-> {}", s.history[i].from, s.history[i].trigger,
                                  s.history[i].to));
  }
}

// The defect an upgrade would bring: tables written under the packed versions of records before
// format 3 hold versions about 2^20 times larger than commit LSNs, so new changes would lose. Such
// a pipe keeps the packed scheme until a resync rebuilds its tables, then moves to commit LSNs.
TEST(Pipe, UpgradedPipeKeepsPackedVersionsUntilAResyncRebuildsItsTables) {
  World w;
  Pipe& first = w.started(w.config("legacy"));
  ASSERT_TRUE(first.wait_for(State::Running, 10s));
  first.shutdown();
  PipeRecord saved = first.record();
  saved.row_versions = RowVersions::PackedLegacy;
  PipeOptions opts;
  opts.logger = quiet_logger();
  opts.clock = w.clock;
  Pipe again(saved, testing::with_faults(w.mem.executors("legacy"), w.faults), opts);
  again.start();
  ASSERT_TRUE(again.wait_for(State::Running, 10s));
  const std::string name = testing::destination_name(w.orders);
  const TableDefinition def = table_def("orders");

  const Lsn packed_at = w.mem.source->update(w.orders, row(7, "packed"));
  ASSERT_TRUE(w.wait_in_sync(w.orders));
  EXPECT_EQ(w.mem.destination->latest(name, testing::key_of(def, row(7, "")))->version,
            packed_at.value << 20);
  EXPECT_EQ(again.record().row_versions, RowVersions::PackedLegacy);

  ASSERT_TRUE(again.resync());
  ASSERT_TRUE(wait_until(
      again,
      [](const PipeStatus& s) {
        return s.state == State::Running && s.history.back().trigger == Trigger::SwapDone;
      },
      10s));
  EXPECT_EQ(again.record().row_versions, RowVersions::CommitLsn);
  const Lsn plain_at = w.mem.source->update(w.orders, row(8, "commit lsn"));
  ASSERT_TRUE(w.wait_in_sync(w.orders));
  EXPECT_EQ(w.mem.destination->latest(name, testing::key_of(def, row(8, "")))->version,
            plain_at.value);
}

}  // namespace
}  // namespace clickpipe::test
