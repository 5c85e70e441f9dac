// Publications and logical replication slots.
#pragma once

#include <optional>
#include <span>
#include <string>

#include "clickpipe/lsn.hpp"
#include "clickpipe/postgres/connection.hpp"
#include "clickpipe/slot.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe::postgres {

// Creates the publication for `tables`, or adds the ones it lacks. Idempotent.
void ensure_publication(Connection& conn, const std::string& name,
                        std::span<const TableRef> tables);
void drop_from_publication(Connection& conn, const std::string& name,
                           std::span<const TableRef> tables);
void drop_publication(Connection& conn, const std::string& name);

struct SlotStatus {
  Lsn confirmed_flush;
  Lsn restart;
  std::string wal_status;            // reserved, extended, unreserved, lost
  std::uint64_t retained_bytes = 0;  // WAL the slot keeps: current position - restart_lsn
};

// The thrown error when a slot lost the WAL it needed: only a resync recovers.
class SlotInvalidated : public FatalError {
 public:
  using FatalError::FatalError;
};

std::optional<SlotStatus> slot_status(Connection& conn, const std::string& slot);

// A slot and, when it was created now, the snapshot exported at its consistent point. The snapshot
// stays usable only while `replication` (the connection that created it) stays open and idle.
struct CreatedSlot {
  SlotInfo info;
  std::string snapshot_name;  // empty when the slot already existed
};

// Creates a pgoutput slot on a replication connection (EXPORT_SNAPSHOT), or returns the existing
// one (its confirmed position, no snapshot) when re-run after a crash.
CreatedSlot create_slot(Connection& replication, Connection& sql, const std::string& slot);
// Switches an existing publication to publish_via_partition_root (a partitioned table's changes
// as the parent's); nothing when it is already so or does not exist.
void publish_via_root(Connection& conn, const std::string& publication);
// A slot that lives as long as `replication` (TEMPORARY), for its exported snapshot: exactly the
// transactions that committed before its consistent point. The snapshot stays usable while
// `replication` is open and idle.
CreatedSlot create_temporary_slot(Connection& replication, const std::string& slot);
// Waits up to 5 s for a slot still held by a stream that just closed (its walsender exits
// asynchronously).
void drop_slot(Connection& sql, const std::string& slot);

// Refuses to stream from `saved` when the slot is gone, lost its WAL, or is ahead of `saved`
// (changes between them would be skipped silently).
void check_slot(Connection& sql, const std::string& slot, Lsn saved);

}  // namespace clickpipe::postgres
