#include "clickpipe/testing/faults.hpp"

#include <condition_variable>

#include <stdexcept>
#include "clickpipe/clock.hpp"

namespace clickpipe::testing {

FaultPlan& FaultPlan::add(Rule r) {
  std::lock_guard lk(mu_);
  rules_.push_back(std::move(r));
  return *this;
}

FaultPlan& FaultPlan::transient(std::string_view operation, std::uint32_t first,
                                std::uint32_t times) {
  return add({std::string(operation), first, first + times - 1, Action::Transient});
}
FaultPlan& FaultPlan::fatal(std::string_view operation, std::uint32_t nth) {
  return add({std::string(operation), nth, nth, Action::Fatal});
}
FaultPlan& FaultPlan::unclassified(std::string_view operation, std::uint32_t nth) {
  return add({std::string(operation), nth, nth, Action::Unclassified});
}
FaultPlan& FaultPlan::delay(std::string_view operation, std::chrono::milliseconds delay,
                            std::uint32_t first) {
  return add({std::string(operation), first, UINT32_MAX, Action::Delay, delay});
}
FaultPlan& FaultPlan::hang(std::string_view operation, std::uint32_t nth) {
  return add({std::string(operation), nth, nth, Action::Hang});
}

FaultPlan& FaultPlan::block(std::string_view operation, std::uint32_t nth) {
  return add({std::string(operation), nth, nth, Action::Block});
}

void FaultPlan::release() {
  std::lock_guard lk(mu_);
  released_ = true;
  cv_.notify_all();
}

bool FaultPlan::wait_blocked(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return blocked_ > 0; });
}

std::uint32_t FaultPlan::calls(std::string_view operation) const {
  std::lock_guard lk(mu_);
  auto it = calls_.find(operation);
  return it == calls_.end() ? 0 : it->second;
}

void FaultPlan::on_call(std::string_view operation, const ExecContext& ctx) {
  std::vector<Rule> hits;
  std::uint32_t n = 0;
  {
    std::lock_guard lk(mu_);
    auto it = calls_.find(operation);
    if (it == calls_.end()) it = calls_.emplace(std::string(operation), 0).first;
    n = ++it->second;
    for (const Rule& r : rules_) {
      if (r.operation == operation && n >= r.first && n <= r.last) hits.push_back(r);
    }
  }
  const std::string what = std::string(operation) + " call " + std::to_string(n);
  for (const Rule& r : hits) {
    switch (r.action) {
      case Action::Transient: throw TransientError("injected transient failure of " + what);
      case Action::Fatal: throw FatalError("injected fatal failure of " + what);
      case Action::Unclassified: throw std::runtime_error("injected plain exception from " + what);
      case Action::Block: {
        std::unique_lock lk(mu_);
        ++blocked_;
        cv_.notify_all();
        cv_.wait(lk, [&] { return released_; });
        --blocked_;
        break;
      }
      case Action::Delay:
        sleep_unless_stopped(r.delay, ctx.stop);
        ctx.throw_if_stopped();
        break;
      case Action::Hang:
        while (sleep_unless_stopped(std::chrono::hours(1), ctx.stop)) {
        }
        ctx.throw_if_stopped();
        break;
    }
  }
}

namespace {

class FaultyProvisioner final : public Provisioner {
 public:
  FaultyProvisioner(std::shared_ptr<Provisioner> inner, std::shared_ptr<FaultPlan> plan)
      : inner_(std::move(inner)), plan_(std::move(plan)) {}
  void provision(const PipeInfo& pipe, ExecContext& ctx) override {
    plan_->on_call(op::provision, ctx);
    inner_->provision(pipe, ctx);
  }

 private:
  std::shared_ptr<Provisioner> inner_;
  std::shared_ptr<FaultPlan> plan_;
};

class FaultyTableSetup final : public TableSetup {
 public:
  FaultyTableSetup(std::shared_ptr<TableSetup> inner, std::shared_ptr<FaultPlan> plan)
      : inner_(std::move(inner)), plan_(std::move(plan)) {}
  // Not a call the plan counts or fails: it has no context and must not block.
  void check_tables(std::span<const TableRef> t) const override { inner_->check_tables(t); }
  std::vector<TableDefinition> read_definitions(std::span<const TableRef> t,
                                                ExecContext& ctx) override {
    plan_->on_call(op::read_definitions, ctx);
    return inner_->read_definitions(t, ctx);
  }
  void create_tables(std::span<const TableDefinition> t, TableTarget target,
                     ExecContext& ctx) override {
    plan_->on_call(op::create_tables, ctx);
    inner_->create_tables(t, target, ctx);
  }
  void swap_resync_tables(std::span<const TableDefinition> t, ExecContext& ctx) override {
    plan_->on_call(op::swap_resync_tables, ctx);
    inner_->swap_resync_tables(t, ctx);
  }
  void remove_tables(std::span<const TableRef> t, ExecContext& ctx) override {
    plan_->on_call(op::remove_tables, ctx);
    inner_->remove_tables(t, ctx);
  }
  void teardown(ExecContext& ctx) override {
    plan_->on_call(op::teardown, ctx);
    inner_->teardown(ctx);
  }
  bool can_drop_destination() const override { return inner_->can_drop_destination(); }
  void drop_destination_tables(std::span<const TableRef> t, ExecContext& ctx) override {
    plan_->on_call(op::drop_destination_tables, ctx);
    inner_->drop_destination_tables(t, ctx);
  }

 private:
  std::shared_ptr<TableSetup> inner_;
  std::shared_ptr<FaultPlan> plan_;
};

class FaultySnapshotCopier final : public SnapshotCopier {
 public:
  FaultySnapshotCopier(std::shared_ptr<SnapshotCopier> inner, std::shared_ptr<FaultPlan> plan)
      : inner_(std::move(inner)), plan_(std::move(plan)) {}
  std::optional<SlotInfo> begin(std::span<const TableDefinition> t, bool keep_slot,
                                ExecContext& ctx) override {
    plan_->on_call(op::begin_snapshot, ctx);
    return inner_->begin(t, keep_slot, ctx);
  }
  std::vector<Partition> plan_partitions(const TableDefinition& t, ExecContext& ctx) override {
    plan_->on_call(op::plan_partitions, ctx);
    return inner_->plan_partitions(t, ctx);
  }
  std::uint64_t copy_partition(const TableDefinition& t, const Partition& p, TableTarget target,
                               ExecContext& ctx) override {
    plan_->on_call(op::copy_partition, ctx);
    return inner_->copy_partition(t, p, target, ctx);
  }
  void end(ExecContext& ctx) override {
    plan_->on_call(op::end_snapshot, ctx);
    inner_->end(ctx);
  }

 private:
  std::shared_ptr<SnapshotCopier> inner_;
  std::shared_ptr<FaultPlan> plan_;
};

class FaultyCdcStreamer final : public CdcStreamer {
 public:
  FaultyCdcStreamer(std::shared_ptr<CdcStreamer> inner, std::shared_ptr<FaultPlan> plan)
      : inner_(std::move(inner)), plan_(std::move(plan)) {}
  Lsn start(std::optional<Lsn> confirmed, std::span<const TableDefinition> t,
            ExecContext& ctx) override {
    plan_->on_call(op::cdc_start, ctx);
    return inner_->start(confirmed, t, ctx);
  }
  CdcBatch pull(ExecContext& ctx) override {
    plan_->on_call(op::pull, ctx);
    return inner_->pull(ctx);
  }
  void apply(const CdcBatch& b, ExecContext& ctx) override {
    plan_->on_call(op::apply, ctx);
    inner_->apply(b, ctx);
  }
  void confirm(Lsn p, ExecContext& ctx) override {
    plan_->on_call(op::confirm, ctx);
    inner_->confirm(p, ctx);
  }
  void stop(ExecContext& ctx) override {
    plan_->on_call(op::cdc_stop, ctx);
    inner_->stop(ctx);
  }

 private:
  std::shared_ptr<CdcStreamer> inner_;
  std::shared_ptr<FaultPlan> plan_;
};

}  // namespace

Executors with_faults(Executors inner, std::shared_ptr<FaultPlan> plan) {
  return Executors{std::make_shared<FaultyProvisioner>(std::move(inner.provisioner), plan),
                   std::make_shared<FaultyTableSetup>(std::move(inner.table_setup), plan),
                   std::make_shared<FaultySnapshotCopier>(std::move(inner.snapshot), plan),
                   std::make_shared<FaultyCdcStreamer>(std::move(inner.cdc), plan)};
}

}  // namespace clickpipe::testing
