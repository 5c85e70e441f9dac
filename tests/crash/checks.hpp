// What every kill test checks, whatever the executors: the saved records and the partitions.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <clickpipe/clickpipe.hpp>
#include <clickpipe/executors/cdc_streamer.hpp>
#include <clickpipe/executors/snapshot_copier.hpp>
#include <clickpipe/store/state_store.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>

namespace clickpipe::crash {

// The directory a kill test shares with its helper process: small files written whole.
struct Dir {
  std::string path;

  std::string read(const std::string& name) const {
    std::ifstream in(path + "/" + name);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // Whole or not at all, even when the process is killed mid-way.
  void write(const std::string& name, const std::string& text) const {
    // A temp name per call: two threads writing the same file must not rename each other's.
    static std::atomic<unsigned> serial{0};
    const std::string tmp =
        path + "/" + name + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(serial++);
    std::ofstream(tmp, std::ios::trunc) << text;
    std::filesystem::rename(tmp, path + "/" + name);
  }
  // One line per broken invariant; the verifying run fails when the file is not empty.
  void violation(const std::string& what) const {
    std::ofstream(path + "/violations", std::ios::app) << what << "\n";
    std::fprintf(stderr, "VIOLATION: %s\n", what.c_str());
  }
};

// A SnapshotCopier that passes every call to another; kill-test wrappers override what they watch.
class ForwardingCopier : public SnapshotCopier {
 public:
  explicit ForwardingCopier(std::shared_ptr<SnapshotCopier> inner) : inner_(std::move(inner)) {}
  std::optional<SlotInfo> begin(std::span<const TableDefinition> t, bool keep,
                                ExecContext& ctx) override {
    return inner_->begin(t, keep, ctx);
  }
  std::vector<Partition> plan_partitions(const TableDefinition& t, ExecContext& ctx) override {
    return inner_->plan_partitions(t, ctx);
  }
  std::uint64_t copy_partition(const TableDefinition& t, const Partition& p, TableTarget target,
                               ExecContext& ctx) override {
    return inner_->copy_partition(t, p, target, ctx);
  }
  void end(ExecContext& ctx) override { inner_->end(ctx); }

 private:
  std::shared_ptr<SnapshotCopier> inner_;
};

// Reports copies of partitions that the store already held as done when this process started.
class DonePartitionGuard final : public ForwardingCopier {
 public:
  DonePartitionGuard(std::shared_ptr<SnapshotCopier> inner, std::set<std::string> done, Dir dir)
      : ForwardingCopier(std::move(inner)), done_(std::move(done)), dir_(std::move(dir)) {}
  std::uint64_t copy_partition(const TableDefinition& t, const Partition& p, TableTarget target,
                               ExecContext& ctx) override {
    const std::string key = ctx.pipe_id + "/" + t.table.qualified() + "#" + std::to_string(p.index);
    if (done_.count(key)) dir_.violation("partition copied again after it was saved done: " + key);
    return ForwardingCopier::copy_partition(t, p, target, ctx);
  }

 private:
  std::set<std::string> done_;
  Dir dir_;
};

// The mutation check (docs/durability.md): leaves the first batch holding an insert unapplied yet
// lets its position be saved and confirmed, so its rows are lost for good (no later change in
// these tests rewrites a freshly inserted row). Once that position is confirmed it writes
// `dropped`: the final comparison must then fail. Called on one worker thread at a time.
class DropOneBatch final : public CdcStreamer {
 public:
  DropOneBatch(std::shared_ptr<CdcStreamer> inner, Dir dir)
      : inner_(std::move(inner)), dir_(std::move(dir)) {}
  Lsn start(std::optional<Lsn> confirmed, std::span<const TableDefinition> t,
            ExecContext& ctx) override {
    if (!noted_) dropped_.reset();  // not confirmed before the restart: replayed, drop another
    return inner_->start(confirmed, t, ctx);
  }
  CdcBatch pull(ExecContext& ctx) override { return inner_->pull(ctx); }
  void apply(const CdcBatch& batch, ExecContext& ctx) override {
    const auto inserts =
        std::count_if(batch.changes.begin(), batch.changes.end(),
                      [](const Change& c) { return c.kind == ChangeKind::Insert; });
    if (!dropped_ && inserts > 0) {
      dropped_ = batch.end;
      what_ = fmt::format("{} changes ({} inserts) up to {}", batch.changes.size(), inserts,
                          to_string(batch.end));
      return;
    }
    inner_->apply(batch, ctx);
  }
  void confirm(Lsn position, ExecContext& ctx) override {
    inner_->confirm(position, ctx);
    if (dropped_ && !noted_ && position >= *dropped_) {
      dir_.write("dropped", what_);
      noted_ = true;
    }
  }
  void stop(ExecContext& ctx) override { inner_->stop(ctx); }

 private:
  std::shared_ptr<CdcStreamer> inner_;
  Dir dir_;
  std::optional<Lsn> dropped_;
  std::string what_;
  bool noted_ = false;
};

// Every saved history must be a chain of rows of the transition table ending in the saved state,
// and no pipe may go back into Snapshot once it reached Running (the initial load resumes; it is
// never started again). Returns the partitions saved done, as "pipe/table#index".
inline std::set<std::string> check_saved_records(const LoadResult& loaded, const Dir& dir) {
  std::set<std::string> done;
  for (const auto& b : loaded.broken) dir.violation("broken record " + b.name + ": " + b.reason);
  for (const PipeRecord& r : loaded.records) {
    State at = r.history.empty() ? State::Provisioning : r.history.front().from;
    bool ran = false;
    for (const HistoryEntry& h : r.history) {
      bool row = false;
      for (const TransitionRow& t : transition_table()) {
        row = row || (t.from == h.from && t.trigger == h.trigger && t.to == h.to);
      }
      if (!row || h.from != at) {
        dir.violation(fmt::format("pipe {}: saved history has {} -[{}]-> {} after {}", r.id, h.from,
                                  h.trigger, h.to, at));
      }
      if (ran && h.to == State::Snapshot) {
        dir.violation(fmt::format("pipe {}: back in Snapshot after Running ({} -[{}]->)", r.id,
                                  h.from, h.trigger));
      }
      ran = ran || h.to == State::Running;
      at = h.to;
    }
    if (at != r.lifecycle.state()) {
      dir.violation(fmt::format("pipe {}: saved state {} but history ends in {}", r.id,
                                r.lifecycle.state(), at));
    }
    for (const auto& l : r.load) {
      for (auto i : l.done) done.insert(r.id + "/" + l.table.qualified() + "#" + std::to_string(i));
    }
  }
  return done;
}

}  // namespace clickpipe::crash
