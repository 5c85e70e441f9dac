// Status: a pipe's state and progress as a plain value, read under the pipe's lock.
#include <algorithm>

#include "pipe_impl.hpp"

namespace clickpipe {

PipeStatus Pipe::Impl::status_locked() const {
  PipeStatus s;
  s.id = id;
  s.state = d.life.state();
  s.mode = d.life.mode();
  s.since = d.since;
  s.allowed_commands = d.life.allowed_commands();
  s.tables = d.tables;
  for (const auto& t : d.tables) {
    TableProgress p;
    p.table = t;
    auto it = d.load.find(t);
    if (it != d.load.end()) {
      const TableLoad& tl = it->second;
      p.planned = tl.planned;
      p.partitions_total = static_cast<std::uint32_t>(tl.partitions.size());
      p.partitions_done =
          static_cast<std::uint32_t>(std::count(tl.done.begin(), tl.done.end(), true));
      p.rows_copied = tl.rows_done;
      for (const auto& [idx, rows] : tl.rows_in_flight) p.rows_copied += rows;
      for (const auto& part : tl.partitions) p.estimated_rows += part.estimated_rows;
    }
    s.snapshot.push_back(p);
  }
  s.cdc = d.cdc;
  s.cdc.lag_seconds = lag_seconds_locked(clock->now());
  s.slot = d.slot;
  if (retrying) s.retry = retrying->status;
  s.last_error = d.last_error;
  s.degraded_reason = degraded_reason;
  s.settings = d.settings;
  s.history.assign(d.history.begin(), d.history.end());
  s.transitions = d.transitions;
  for (const auto& [t, st] : d.stopped) s.stopped_tables.push_back(st);
  s.schema_changes.assign(d.schema_changes.begin(), d.schema_changes.end());
  return s;
}

}  // namespace clickpipe
