// Whole ClickHouse tables: creating, reading the FINAL view, following source schema changes,
// deleting all rows (a source TRUNCATE) and the resync swap.
//
// Which tables are clickpipe's. ClickHouse 18.16 keeps no comment on a table, so the mark is the
// layout itself: a ReplacingMergeTree with the bookkeeping columns create_table_sql() adds,
// `_version UInt64`, `_is_deleted UInt8` and `_synced_at DateTime`. What a pipe made is then its
// record (its definitions say which source tables land under which names) plus this mark on the
// table found under such a name: only a table carrying it is adopted, renamed or dropped. The
// mark tells clickpipe's tables from anyone else's, not one pipe's from another's: the names do
// that (pg_to_clickhouse::check_destination_names).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clickpipe/clickhouse/client.hpp"
#include "clickpipe/clickhouse/layout.hpp"

namespace clickpipe::clickhouse {

// The copies a resync makes of table `t`: `t_resync` is loaded, then swapped in for `t`, which
// becomes `t_old` until it is dropped.
inline constexpr std::string_view kResyncSuffix = "_resync";
inline constexpr std::string_view kOldSuffix = "_old";

// Creates the table, or adopts the one already there when check_adoptable() lets it (after a
// crash, or a table removed from a pipe and added again). A table it may not adopt: FatalError.
void create_table(Client& client, const TableLayout& layout);

bool table_exists(Client& client, const std::string& name);

// A table as the server describes it.
struct ExistingTable {
  std::string engine;                                        // e.g. "ReplacingMergeTree"
  std::vector<std::pair<std::string, std::string>> columns;  // (name, type), in order
  std::string sorting_key;  // as system.tables prints it: "id, `two words`"
};
// How often describe_table() reads system.tables on a server that fails such reads while any
// table is dropped (Features::system_tables_races_drops) before its failure is transient.
inline constexpr int kSystemTablesAttempts = 8;
// The table `name` in the client's database; nullopt when there is none.
std::optional<ExistingTable> describe_table(Client& client, const std::string& name);

// Why `table` is not clickpipe's ("its engine is MergeTree, not ReplacingMergeTree"), or
// nullopt when it carries the mark.
std::optional<std::string> not_clickpipe_because(const ExistingTable& table);
// Why `table` cannot be adopted for `layout`: not clickpipe's, or the first of the layout's
// columns it lacks or holds with another type. Columns it has besides are fine (the source may
// have added them). nullopt when it can be adopted.
std::optional<std::string> not_adoptable_because(const ExistingTable& table,
                                                 const TableLayout& layout);

// Whether `name` exists and carries clickpipe's mark.
bool is_clickpipe_table(Client& client, const std::string& name);
// Drops `name` when it exists and carries clickpipe's mark (a deleted pipe's tables). Returns
// why it was kept when it exists but is not clickpipe's, else nullopt (dropped, or not there).
std::optional<std::string> drop_if_clickpipe(Client& client, const std::string& name);
// Whether `layout.name` exists; throws FatalError, naming the table and the first difference,
// when it does but cannot be adopted.
bool check_adoptable(Client& client, const TableLayout& layout);

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
// Creates `<name>_resync` empty, replacing what an interrupted resync left. A `<name>_resync`
// that is not clickpipe's: FatalError, nothing dropped.
void create_resync_table(Client& client, const TableLayout& layout);
// Swaps `<name>_resync` in for `<name>` in one RENAME, then drops the old copy (`<name>_old`).
// Safe to run again after a crash at any step. Every table it would rename or drop is checked
// first: one that is not clickpipe's is a FatalError before anything changes.
void swap_resync(Client& client, const std::string& name);

}  // namespace clickpipe::clickhouse
