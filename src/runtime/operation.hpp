// The operations the runtime retries, named once. Their text is what status, listeners and log
// lines show (tools and tests match it), so each name stays as it was when it was a string.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace clickpipe::runtime_detail {

enum class Operation : std::uint8_t {
  Provision,              // "provisioning"
  ReadDefinitions,        // "setup: read table definitions"
  CreateTables,           // "setup: create tables"
  CreateResyncTables,     // "snapshot: create resync tables"
  BeginSnapshot,          // "snapshot: begin"
  PlanPartitions,         // "snapshot: plan <table>"
  CopyPartition,          // "snapshot: partition <table>#<index>"
  RemoveCancelledTables,  // "cdc: remove cancelled tables"
  Cdc,                    // "cdc"
  RemoveTables,           // "modifying: remove tables"
  SwapTables,             // "resync: swap tables"
  Teardown,               // "terminating: teardown"
  DropDestination,        // "terminating: drop destination tables"
  SaveTransition,         // "store: save transition"
  SaveDefinitions,        // "store: save table definitions"
  SaveSlot,               // "store: save slot"
  SavePlan,               // "store: save partition plan"
  SavePartition,          // "store: save partition"
  SaveTableSet,           // "store: save table set"
  SaveCdcPosition,        // "store: save CDC position"
  CheckWriter,            // "store: check the lease"
};

std::string_view to_string(Operation operation) noexcept;

// One retried operation and what it works on ("public.orders", "public.orders#3"), if anything:
// partitions copy at once and each keeps its own retry, so the subject tells them apart.
struct OperationId {
  Operation operation = Operation::Provision;
  std::string subject;

  friend bool operator==(const OperationId&, const OperationId&) = default;
};

// "snapshot: partition public.orders#3", or the operation's name alone without a subject.
std::string to_string(const OperationId& id);

}  // namespace clickpipe::runtime_detail
