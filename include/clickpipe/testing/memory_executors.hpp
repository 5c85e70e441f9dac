// The four executors over MemorySource and MemoryDestination: a whole pipe with no server.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "clickpipe/executors/cdc_streamer.hpp"
#include "clickpipe/executors/executors.hpp"
#include "clickpipe/executors/provisioner.hpp"
#include "clickpipe/executors/snapshot_copier.hpp"
#include "clickpipe/executors/table_setup.hpp"
#include "clickpipe/testing/memory_destination.hpp"
#include "clickpipe/testing/memory_source.hpp"

namespace clickpipe::testing {

// A service's shared infrastructure: the first provision takes `bring_up`, later ones are quick.
class MemoryService {
 public:
  explicit MemoryService(std::chrono::milliseconds bring_up = std::chrono::milliseconds(20))
      : bring_up_(bring_up) {}
  // Brings the service up once (interruptible) and registers the pipe.
  void provision(const PipeInfo& pipe, const ExecContext& ctx);
  int bring_ups() const;
  std::set<std::string> pipes() const;

 private:
  std::chrono::milliseconds bring_up_;
  std::mutex bring_up_mu_;
  mutable std::mutex mu_;
  bool up_ = false;
  int bring_ups_ = 0;
  std::set<std::string> pipes_;
};

class MemoryProvisioner final : public Provisioner {
 public:
  explicit MemoryProvisioner(std::shared_ptr<MemoryService> service)
      : service_(std::move(service)) {}
  void provision(const PipeInfo& pipe, ExecContext& ctx) override;

 private:
  std::shared_ptr<MemoryService> service_;
};

class MemoryTableSetup final : public TableSetup {
 public:
  MemoryTableSetup(std::shared_ptr<MemorySource> source, std::shared_ptr<MemoryDestination> dest,
                   std::string slot_name)
      : source_(std::move(source)), dest_(std::move(dest)), slot_(std::move(slot_name)) {}
  std::vector<TableDefinition> read_definitions(std::span<const TableRef> tables,
                                                ExecContext& ctx) override;
  void create_tables(std::span<const TableDefinition> tables, TableTarget target,
                     ExecContext& ctx) override;
  void swap_resync_tables(std::span<const TableDefinition> tables, ExecContext& ctx) override;
  void remove_tables(std::span<const TableRef> tables, ExecContext& ctx) override;
  void teardown(ExecContext& ctx) override;
  bool can_drop_destination() const override { return true; }
  void drop_destination_tables(std::span<const TableRef> tables, ExecContext& ctx) override;

  std::set<TableRef> publication() const;

 private:
  std::shared_ptr<MemorySource> source_;
  std::shared_ptr<MemoryDestination> dest_;
  std::string slot_;
  mutable std::mutex mu_;
  std::set<TableRef> publication_;
};

// Plans partitions by primary key: a partition's bounds are keys. A FileStore takes only bounds
// of decimal digits (slot.hpp), so pipes over this copier that save to a FileStore need keys of
// at most 10 digits; a MemoryStore takes any.
class MemorySnapshotCopier final : public SnapshotCopier {
 public:
  MemorySnapshotCopier(std::shared_ptr<MemorySource> source,
                       std::shared_ptr<MemoryDestination> dest, std::string slot_name)
      : source_(std::move(source)), dest_(std::move(dest)), slot_(std::move(slot_name)) {}
  std::optional<SlotInfo> begin(std::span<const TableDefinition> tables, bool keep_slot,
                                ExecContext& ctx) override;
  std::vector<Partition> plan_partitions(const TableDefinition& table, ExecContext& ctx) override;
  std::uint64_t copy_partition(const TableDefinition& table, const Partition& partition,
                               TableTarget target, ExecContext& ctx) override;
  void end(ExecContext& ctx) override;

  // Rows per destination insert while copying.
  static constexpr std::size_t kChunkRows = 10000;

 private:
  std::shared_ptr<const MemorySource::Snapshot> view() const;
  std::shared_ptr<MemorySource> source_;
  std::shared_ptr<MemoryDestination> dest_;
  std::string slot_;
  mutable std::mutex mu_;
  std::shared_ptr<const MemorySource::Snapshot> view_;
};

class MemoryCdcStreamer final : public CdcStreamer {
 public:
  MemoryCdcStreamer(std::shared_ptr<MemorySource> source, std::shared_ptr<MemoryDestination> dest,
                    std::string slot_name)
      : source_(std::move(source)), dest_(std::move(dest)), slot_(std::move(slot_name)) {}
  Lsn start(std::optional<Lsn> confirmed, std::span<const TableDefinition> tables,
            ExecContext& ctx) override;
  CdcBatch pull(ExecContext& ctx) override;
  void apply(const CdcBatch& batch, ExecContext& ctx) override;
  void confirm(Lsn position, ExecContext& ctx) override;
  void stop(ExecContext& ctx) override;

 private:
  std::shared_ptr<MemorySource> source_;
  std::shared_ptr<MemoryDestination> dest_;
  std::string slot_;
  std::map<TableRef, TableDefinition> tables_;
  Lsn cursor_;
  bool open_ = false;
};

// A CDC streamer with nothing to stream: each pull waits out the sync interval (or a stop) and
// returns an empty batch at position 1. Counts its starts. Thread-safe, so one instance can serve
// many pipes: for measuring or testing the runtime alone.
class IdleCdcStreamer : public CdcStreamer {
 public:
  Lsn start(std::optional<Lsn> confirmed, std::span<const TableDefinition> tables,
            ExecContext& ctx) override;
  CdcBatch pull(ExecContext& ctx) override;
  void apply(const CdcBatch&, ExecContext&) override {}
  void confirm(Lsn, ExecContext&) override {}
  int starts() const noexcept { return starts_.load(); }

 private:
  std::atomic<int> starts_{0};
};

// One pipe's four executors over a shared source, destination and service.
struct MemoryWorld {
  std::shared_ptr<MemorySource> source = std::make_shared<MemorySource>();
  std::shared_ptr<MemoryDestination> destination = std::make_shared<MemoryDestination>();
  std::shared_ptr<MemoryService> service = std::make_shared<MemoryService>();

  // Executors for pipe `pipe_id` (its slot is "clickpipe_<pipe_id>").
  Executors executors(const std::string& pipe_id) const;
  static std::string slot_name(const std::string& pipe_id) { return "clickpipe_" + pipe_id; }
};

}  // namespace clickpipe::testing
