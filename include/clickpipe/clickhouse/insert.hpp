// Writing rows to a ClickHouse table and proving they landed: versioned inserts (rows in memory,
// or PostgreSQL COPY text streamed through) and the count-back that follows them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/clickhouse/layout.hpp"
#include "clickpipe/clickhouse/tab_separated.hpp"
#include "clickpipe/error.hpp"

namespace clickpipe::clickhouse {

// Inserts in one request; returns the number of rows sent. Re-sending the same rows after an
// unknown outcome leaves the FINAL view as it is (same versions).
std::uint64_t insert(Client& client, const TableLayout& layout, const std::vector<Row>& rows);

// What ClickHouse holds for the keys of some rows just written: `keys` distinct keys were
// written; `landed` of them are held at the newest version written for them or a newer one
// (deleted keys included: their deletion is a row too). A destination that answered an insert
// with success but kept fewer rows shows up as landed < keys. (ClickHouse 18.16 reports no
// written-row count for an HTTP insert, so the rows are counted back; the keys travel as external
// data, never spliced into SQL.) A count-back query the server refuses is a bug in clickpipe:
// ClickHouseFatalError naming the query; a transient failure is rethrown as it is. Either way the
// rows stay unconfirmed and are written again when the pipe retries.
struct Reconciliation {
  std::uint64_t keys = 0;
  std::uint64_t landed = 0;
  bool complete() const noexcept { return landed == keys; }
};
Reconciliation reconcile(Client& client, const TableLayout& layout, const std::vector<Row>& rows);

// The rows of an insert that ClickHouse accepted are not all there. Transient: sending the batch
// again is safe (same versions), and a destination that keeps dropping rows keeps the pipe from
// confirming anything past them.
class RowsMissing : public TransientError {
 public:
  RowsMissing(const std::string& table, Reconciliation r);
  const Reconciliation& reconciliation() const noexcept { return reconciliation_; }

 private:
  Reconciliation reconciliation_;
};

// insert() then reconcile(); throws RowsMissing when rows are missing.
std::uint64_t insert_reconciled(Client& client, const TableLayout& layout,
                                const std::vector<Row>& rows);

// Rows in PostgreSQL's COPY text format turned into this layout's TabSeparated rows, all at one
// version and not deleted (the initial load). Values that need no conversion pass through byte
// for byte: COPY's text escaping is TabSeparated's. The others are decoded and converted as
// encode_rows() does. Keeps the keys of the rows added since the last reconcile(); the rows of
// one COPY have distinct keys. Not thread-safe.
class CopyTextEncoder {
 public:
  // Without `keep_keys`, reconcile() is not available and no keys are kept.
  CopyTextEncoder(TableLayout layout, std::uint64_t version, bool keep_keys = true);
  // Appends `line`'s row to `out`. Throws InvalidField when the field count is wrong.
  void add(std::string_view line, std::string& out);
  // Counts back the rows added since the last call (as reconcile() does) and forgets them.
  Reconciliation reconcile(Client& client);
  // "INSERT INTO db.table (columns..., _version, _is_deleted, _synced_at)", for
  // Client::insert_streamed.
  std::string insert_sql(const std::string& database) const;

 private:
  TableLayout layout_;
  std::vector<std::size_t> key_at_;  // the key columns, in key order
  std::vector<bool> key_;            // per column: part of the key
  std::string tail_;                 // "\t<version>\t0\t<synced_at>\n"
  std::string version_;
  std::string keys_;  // TabSeparated: key columns, then the version
  std::uint64_t key_rows_ = 0;
  bool keep_keys_;
  std::string field_;
};

}  // namespace clickpipe::clickhouse
