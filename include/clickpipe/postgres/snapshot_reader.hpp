// Reads many partitions at once over a pool of connections, under one exported snapshot when it is
// still there and from fresh ones when it is not.
#pragma once

#include <cstdint>
#include <functional>
#include <stop_token>
#include <string>
#include <vector>

#include "clickpipe/postgres/snapshot.hpp"

namespace clickpipe::postgres {

class SnapshotReader {
 public:
  // `connections` readers in parallel (each its own connection).
  SnapshotReader(ConnectionSettings settings, std::size_t connections)
      : settings_(std::move(settings)), connections_(connections == 0 ? 1 : connections) {}

  // Called for each batch of rows, from several threads at once.
  using Sink = std::function<void(const Partition& partition, std::vector<Values>&& rows)>;
  // Called once per partition after all its rows went to the sink: the place to checkpoint.
  using Done = std::function<void(const Partition& partition, std::uint64_t rows)>;

  // Reads `partitions` of `table`. A gone `snapshot` (after a restart) falls back to fresh
  // snapshots for the partitions left. Returns the number of rows read; the first error stops
  // the others and is rethrown.
  std::uint64_t read(const TableDefinition& table, const std::vector<Partition>& partitions,
                     const std::string& snapshot, const Sink& sink, const Done& done,
                     std::stop_token stop = {});

  bool fell_back() const noexcept { return fell_back_; }

 private:
  ConnectionSettings settings_;
  std::size_t connections_;
  bool fell_back_ = false;
};

}  // namespace clickpipe::postgres
