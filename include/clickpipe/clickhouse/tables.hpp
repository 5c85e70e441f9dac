// Whole ClickHouse tables: creating, reading the FINAL view, following source schema changes,
// deleting all rows (a source TRUNCATE) and the resync swap.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/clickhouse/layout.hpp"

namespace clickpipe::clickhouse {

// Runs create_table_sql() in the client's database.
void create_table(Client& client, const TableLayout& layout);

bool table_exists(Client& client, const std::string& name);

// The table as ClickHouse's FINAL view shows it, without deleted rows, ordered by the key: each
// row's columns as ClickHouse prints them (TabSeparated, unescaped; nullopt for NULL).
std::vector<std::vector<std::optional<std::string>>> read_final(Client& client,
                                                                const TableLayout& layout);

// Marks every row of the table deleted at `version` (a TRUNCATE at the source): later rows of a
// higher or, inserted after, equal version show again.
void delete_all(Client& client, const TableLayout& layout, std::uint64_t version);
// ALTER TABLE ... ADD COLUMN for each of the layout's columns the table lacks (appended: columns
// added at the source); returns their names. Safe to run again.
std::vector<std::string> add_missing_columns(Client& client, const TableLayout& layout);
// Creates `<name>_resync` empty (replacing what an interrupted resync left).
void create_resync_table(Client& client, const TableLayout& layout);
// Swaps `<name>_resync` in for `<name>` in one RENAME, then drops the old copy. Safe to run again
// after a crash at any step.
void swap_resync(Client& client, const std::string& name);

}  // namespace clickpipe::clickhouse
