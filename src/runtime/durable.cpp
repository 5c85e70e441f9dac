// Record mapping: Durable, as the runtime holds a pipe, to and from PipeRecord, as stores keep it.
#include <cstddef>

#include "pipe_impl.hpp"

namespace clickpipe::runtime_detail {

PipeRecord to_record(const std::string& id, const Durable& d) {
  PipeRecord r;
  r.id = id;
  r.lifecycle = d.life;
  r.intent = d.intent;
  r.drop_destination = d.drop_destination;
  r.since = d.since;
  r.settings = d.settings;
  r.tables = d.tables;
  for (const auto& [t, def] : d.definitions) r.definitions.push_back(def);
  r.pending_added = d.pending_added;
  r.pending_removed = d.pending_removed;
  r.cancelled_added = d.cancelled_added;
  r.slot = d.slot;
  for (const auto& [t, tl] : d.load) {
    TableLoadRecord lr{t, tl.partitions, {}, tl.rows_done};
    for (std::size_t i = 0; i < tl.done.size(); ++i) {
      if (tl.done[i]) lr.done.push_back(static_cast<std::uint32_t>(i));
    }
    r.load.push_back(std::move(lr));
  }
  r.confirmed = d.cdc.confirmed;
  r.cdc_batches = d.cdc.batches;
  r.cdc_changes = d.cdc.changes;
  r.last_error = d.last_error;
  r.history.assign(d.history.begin(), d.history.end());
  r.transitions = d.transitions;
  for (const auto& [t, st] : d.stopped) r.stopped_tables.push_back(st);
  r.schema_changes.assign(d.schema_changes.begin(), d.schema_changes.end());
  r.row_versions = d.row_versions;
  return r;
}

Durable from_record(const PipeRecord& r) {
  Durable d;
  d.life = r.lifecycle;
  d.intent = r.intent;
  d.drop_destination = r.drop_destination;
  d.since = r.since;
  d.settings = r.settings;
  d.tables = r.tables;
  for (const auto& def : r.definitions) d.definitions[def.table] = def;
  d.pending_added = r.pending_added;
  d.pending_removed = r.pending_removed;
  d.cancelled_added = r.cancelled_added;
  d.slot = r.slot;
  for (const auto& lr : r.load) {
    TableLoad& tl = d.load[lr.table];
    tl.planned = true;
    tl.partitions = lr.partitions;
    tl.done.assign(lr.partitions.size(), false);
    for (auto i : lr.done) tl.done.at(i) = true;
    tl.rows_done = lr.rows_done;
  }
  d.cdc.confirmed = r.confirmed;
  d.cdc.batches = r.cdc_batches;
  d.cdc.changes = r.cdc_changes;
  d.last_error = r.last_error;
  d.history.assign(r.history.begin(), r.history.end());
  d.transitions = r.transitions;
  for (const auto& st : r.stopped_tables) d.stopped[st.table] = st;
  d.schema_changes.assign(r.schema_changes.begin(), r.schema_changes.end());
  d.row_versions = r.row_versions;
  return d;
}

}  // namespace clickpipe::runtime_detail
