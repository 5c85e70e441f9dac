// The replication slot a pipe streams from, and the partitions its initial load is split into.
#pragma once

#include <cstdint>
#include <string>

#include "clickpipe/lsn.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe {

struct SlotInfo {
  std::string name;
  Lsn consistent_point;  // CDC replays every change after it; snapshot rows stand below it

  friend bool operator==(const SlotInfo&, const SlotInfo&) = default;
};

// One piece of a table's initial load. The bounds mean something only to the copier that planned
// them (ctid block numbers, row positions); the runtime stores them and hands them back. They are
// empty or at most 10 decimal digits: the file store refuses anything else, so a planted record
// cannot carry text into the copier's SQL.
struct Partition {
  std::uint32_t index = 0;
  std::string begin;
  std::string end;
  std::uint64_t estimated_rows = 0;
  // A partitioned table is copied leaf by leaf: the leaf partition this range is in (block
  // numbers are per leaf). Empty name for a plain table.
  TableRef leaf{"", ""};

  friend bool operator==(const Partition&, const Partition&) = default;
};

// Where loaded rows go: the pipe's tables, or the `<table>_resync` copies a resync swaps in.
enum class TableTarget : std::uint8_t { Main, Resync };

}  // namespace clickpipe
