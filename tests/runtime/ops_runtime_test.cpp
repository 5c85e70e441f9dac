// What the runtime tells operators (issue 15): a summary of each CDC batch, per-table change counts
// and the lag in seconds; and deleting a pipe together with its destination tables.
#include <gtest/gtest.h>

#include <mutex>
#include <vector>

#include "clickpipe/store/file_store.hpp"
#include "clickpipe/store/memory_store.hpp"
#include "world.hpp"

namespace clickpipe::test {
namespace {

class BatchRecorder : public TransitionListener {
 public:
  void on_batch(const std::string& id, const BatchSummary& b) override {
    std::lock_guard lk(mu_);
    ids_.push_back(id);
    batches_.push_back(b);
  }
  std::vector<BatchSummary> batches() const {
    std::lock_guard lk(mu_);
    return batches_;
  }
  std::vector<std::string> ids() const {
    std::lock_guard lk(mu_);
    return ids_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> ids_;
  std::vector<BatchSummary> batches_;
};

std::uint64_t changes_of(const PipeStatus& s, const TableRef& t) {
  for (const auto& tc : s.cdc.tables)
    if (tc.table == t) return tc.changes;
  return 0;
}

TEST(OpsRuntime, EveryAppliedBatchIsSummarisedWithItsChangesWalAndLag) {
  World w;
  auto rec = std::make_shared<BatchRecorder>();
  Pipe& p = w.make(w.config("p"));
  p.add_listener(rec);
  p.start();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  EXPECT_TRUE(rec->batches().empty()) << "no batch before any change";
  const Lsn before = *p.status().cdc.confirmed;

  w.fill(w.orders, 1000, 1003);  // one transaction of 3 changes
  w.mem.source->insert(w.users, row(2000, "u"));
  w.mem.source->insert(w.users, row(2001, "u"));
  ASSERT_TRUE(testing::wait_until(p, [](const PipeStatus& s) {
    return s.cdc.tables.size() == 2 && s.cdc.changes >= 5 && s.cdc.lag_bytes == 0;
  }));

  const PipeStatus s = p.status();
  EXPECT_EQ(changes_of(s, w.orders), 3u);
  EXPECT_EQ(changes_of(s, w.users), 2u);
  ASSERT_EQ(s.cdc.tables.size(), 2u);
  EXPECT_EQ(s.cdc.tables[0].table, w.orders) << "listed in the pipe's table order";
  // Caught up, with commit times seen: the lag is 0 s, not unknown.
  ASSERT_TRUE(s.cdc.lag_seconds.has_value());
  EXPECT_EQ(*s.cdc.lag_seconds, 0.0);

  ASSERT_TRUE(eventually([&] {
    std::uint64_t n = 0;
    for (const auto& b : rec->batches()) n += b.changes;
    return n == 5;
  }));
  const auto batches = rec->batches();
  std::uint64_t wal = 0;
  for (const auto& b : batches) {
    EXPECT_GT(b.changes, 0u) << "empty polls are not batches";
    EXPECT_GT(b.wal_bytes, 0u);
    EXPECT_GE(b.duration.count(), 0);
    wal += b.wal_bytes;
  }
  for (const auto& id : rec->ids()) EXPECT_EQ(id, "p");
  EXPECT_EQ(batches.back().end, *s.cdc.confirmed);
  EXPECT_EQ(wal, s.cdc.confirmed->value - before.value)
      << "the batches' WAL adds up to how far the confirmed position moved";
  ASSERT_TRUE(s.cdc.last_batch.has_value());
  EXPECT_EQ(*s.cdc.last_batch, batches.back());
}

TEST(OpsRuntime, LagSecondsIsUnknownUntilCdcRanThenZeroOnAnIdleSource) {
  World w;
  w.faults->block(testing::op::copy_partition);
  Pipe& p = w.started(w.config("p"));
  ASSERT_TRUE(w.faults->wait_blocked(10s));
  EXPECT_FALSE(p.status().cdc.lag_seconds.has_value()) << "no CDC yet: unknown, not 0";
  w.faults->release();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  // A restarted pipe on a quiet source sees no commit for days: caught up is still 0 s.
  ASSERT_TRUE(
      testing::wait_until(p, [](const PipeStatus& s) { return s.cdc.lag_seconds.has_value(); }));
  EXPECT_EQ(*p.status().cdc.lag_seconds, 0.0);
}

TEST(OpsRuntime, LagSecondsGrowsWhileCdcRetriesInsteadOfStandingStill) {
  World w;
  w.mem.source->use_clock(w.clock);  // commit times on the pipe's clock
  Pipe& p = w.started(w.config("p"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  ASSERT_TRUE(
      testing::wait_until(p, [](const PipeStatus& s) { return s.cdc.lag_seconds.has_value(); }));
  // The destination refuses every batch from now on: CDC retries without end.
  w.faults->transient(testing::op::apply, w.faults->calls(testing::op::apply) + 1, 1000000);
  w.fill(w.orders, 7000, 7001);
  ASSERT_TRUE(testing::wait_until(p, [](const PipeStatus& s) { return s.retry.has_value(); }));
  const double first = *p.status().cdc.lag_seconds;
  w.clock->advance(30s);
  EXPECT_GE(*p.status().cdc.lag_seconds, first + 30.0);
}

TEST(OpsRuntime, DeleteWithDropDestinationDropsThePipesTablesAndSavesTheChoiceFirst) {
  World w;
  auto store = std::make_shared<MemoryStore>();
  PipeOptions o;
  o.logger = quiet_logger();
  o.store = store;
  Pipe p(w.config("p"), testing::with_faults(w.mem.executors("p"), w.faults), o);
  p.start();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  const std::string orders = destination_name(w.orders);
  ASSERT_TRUE(w.mem.destination->has_table(orders));

  w.faults->block(testing::op::teardown);
  ASSERT_TRUE(p.remove(DeleteOptions{true}));
  ASSERT_TRUE(w.faults->wait_blocked(10s));
  // Saved with the Terminating step: a crash now still drops the tables on restart.
  EXPECT_TRUE(store->load_all().records.at(0).drop_destination);
  EXPECT_TRUE(w.mem.destination->has_table(orders)) << "nothing dropped before teardown";
  w.faults->release();
  ASSERT_TRUE(p.wait_for(State::Terminated, 10s));
  EXPECT_FALSE(w.mem.destination->has_table(orders));
  EXPECT_FALSE(w.mem.destination->has_table(destination_name(w.users)));
}

TEST(OpsRuntime, DeleteKeepsTheDestinationTablesByDefault) {
  World w;
  Pipe& p = w.started(w.config("p"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  ASSERT_TRUE(p.remove());
  ASSERT_TRUE(p.wait_for(State::Terminated, 10s));
  EXPECT_TRUE(w.mem.destination->has_table(destination_name(w.orders)));
  EXPECT_FALSE(p.record().drop_destination);
}

// A TableSetup that keeps the interface's defaults for dropping destination tables.
class CannotDrop final : public ForwardingTableSetup {
 public:
  using ForwardingTableSetup::ForwardingTableSetup;
};

TEST(OpsRuntime, DeleteWithDropDestinationIsInvalidWhenTheExecutorsCannotDropAndChangesNothing) {
  World w;
  Executors ex = w.mem.executors("p");
  ex.table_setup = std::make_shared<CannotDrop>(ex.table_setup);
  PipeOptions o;
  o.logger = quiet_logger();
  Pipe p(w.config("p"), ex, o);
  p.start();
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  const CommandResult r = p.remove(DeleteOptions{true});
  EXPECT_EQ(r.status, CommandResult::Status::Invalid);
  EXPECT_NE(r.message.find("cannot drop destination tables"), std::string::npos) << r.message;
  EXPECT_EQ(p.state(), State::Running);
  EXPECT_FALSE(p.record().drop_destination);
  EXPECT_EQ(p.record().intent, Intent::Running);
}

TEST(OpsRuntime, TheDropDestinationChoiceSurvivesTheRecordFormatAndIsAbsentWhenUnset) {
  World w;
  Pipe& p = w.make(w.config("p"));
  PipeRecord r = p.record();
  EXPECT_EQ(encode_record(r, 1).find("drop_destination"), std::string::npos)
      << "older readers see the same record as before";
  r.intent = Intent::Deleted;
  r.drop_destination = true;
  EXPECT_TRUE(decode_record(encode_record(r, 1)).drop_destination);
}

// Regression: resync_recovers_a_pipe_whose_slot_was_dropped. The errors for a missing slot say
// "resync", but a resync kept the saved position, so CDC after it failed the same way.
TEST(OpsRuntime, ResyncRecoversAPipeWhoseSlotWasDropped) {
  World w;
  Pipe& p = w.started(w.config("p"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  ASSERT_TRUE(p.pause());
  ASSERT_TRUE(p.wait_for(State::Paused, 10s));
  w.mem.source->drop_slot(testing::MemoryWorld::slot_name("p"));
  w.fill(w.orders, 5000, 5010);
  ASSERT_TRUE(p.resume());
  ASSERT_TRUE(p.wait_for(State::Failed, 10s));
  EXPECT_NE(p.status().last_error->message.find("missing"), std::string::npos);

  ASSERT_TRUE(p.resync());
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  w.fill(w.orders, 6000, 6010);  // after the resync: reaches the destination through CDC
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  EXPECT_TRUE(w.wait_in_sync(w.users));
  EXPECT_EQ(p.state(), State::Running);
}

// The slot is lost while a resync is half done (some partitions copied under the old slot): the
// retried resync adopts the new slot and copies every partition again, since changes to those
// already copied between their view and the new slot are in no stream.
TEST(OpsRuntime, AResyncThatAdoptsANewSlotCopiesEveryPartitionAgain) {
  World w;
  Pipe& p = w.started(w.config("p"));
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  const std::uint32_t copies = w.faults->calls(testing::op::copy_partition);  // 8 partitions
  w.faults->fatal(testing::op::copy_partition, copies + 3);
  ASSERT_TRUE(p.resync());
  ASSERT_TRUE(p.wait_for(State::Failed, 10s));
  const std::uint32_t before_retry = w.faults->calls(testing::op::copy_partition);
  const std::uint32_t creates = w.faults->calls(testing::op::create_tables);

  w.mem.source->drop_slot(testing::MemoryWorld::slot_name("p"));
  for (int k : {0, 50, 100, 150, 200}) w.mem.source->update(w.orders, row(k, "changed"));
  for (int k : {0, 50, 100}) w.mem.source->update(w.users, row(k, "changed"));
  ASSERT_TRUE(p.retry());
  ASSERT_TRUE(p.wait_for(State::Running, 10s));
  EXPECT_EQ(w.faults->calls(testing::op::copy_partition) - before_retry, copies)
      << "every partition copied again under the new slot";
  EXPECT_GT(w.faults->calls(testing::op::create_tables), creates) << "fresh _resync copies";
  EXPECT_TRUE(w.wait_in_sync(w.orders));
  EXPECT_TRUE(w.wait_in_sync(w.users));
}

}  // namespace
}  // namespace clickpipe::test
