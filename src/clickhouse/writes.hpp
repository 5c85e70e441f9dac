// What the two insert paths (insert.cpp: rows in memory; copy_encoder.cpp: COPY text) share
// (internal to the destination).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "clickpipe/change.hpp"
#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/clickhouse/layout.hpp"

namespace clickpipe::clickhouse::detail {

// One value as the column's TabSeparated text.
void encode_value(std::string& out, const MappedColumn& m, const Datum& d);

// The layout's key columns, in key order.
std::vector<std::size_t> key_columns(const TableLayout& l);
// "INSERT INTO db.table (columns..., _version, _is_deleted, _synced_at)".
std::string insert_prefix(const std::string& database, const TableLayout& l);
std::uint32_t now_epoch_seconds();

// The keys a count back uploads, as the table `clickpipe_keys`: `tsv` holds per row the key
// columns as text (k0, k1, ...) and then the version expected at least.
ExternalTable keys_table(std::size_t key_columns, std::string tsv);
// How many distinct keys of `keys` the table holds at all. Enough for initial-load rows: they all
// carry version 0 and nothing newer is written while they load, and cheaper than the grouping
// reconcile() needs.
std::uint64_t count_present(Client& client, const TableLayout& l,
                            const std::vector<std::size_t>& key_at, const ExternalTable& keys);

}  // namespace clickpipe::clickhouse::detail
