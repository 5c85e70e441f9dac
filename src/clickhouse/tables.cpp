#include "clickpipe/clickhouse/tables.hpp"

#include <fmt/format.h>

#include <chrono>
#include <set>
#include <string_view>
#include <thread>

#include "clickpipe/clickhouse/tab_separated.hpp"
#include "values.hpp"

namespace clickpipe::clickhouse {

namespace {

constexpr std::string_view kEngine = "ReplacingMergeTree";

std::string qualified(Client& client, std::string_view name) {
  return quote(client.settings().database) + "." + quote(name);
}

// ClickHouse prints some types with other spacing than ours ("Decimal(12,3)"); spaces never
// change a type.
std::string without_spaces(std::string_view type) {
  std::string out(type);
  std::erase(out, ' ');
  return out;
}

const std::string* type_of(const ExistingTable& t, std::string_view column) {
  for (const auto& [name, type] : t.columns) {
    if (name == column) return &type;
  }
  return nullptr;
}

// Why `t` lacks `column` of `type`, or nullopt.
std::optional<std::string> column_problem(const ExistingTable& t, std::string_view column,
                                          std::string_view type) {
  const std::string* have = type_of(t, column);
  if (!have) return fmt::format("it has no column {}", quote(column));
  if (without_spaces(*have) != without_spaces(type)) {
    return fmt::format("its column {} is {}, not {}", quote(column), *have, type);
  }
  return std::nullopt;
}

// Whether `name` exists; throws FatalError when it does but is not clickpipe's, so that it is
// neither renamed nor dropped. `role` says what the table was about to undergo.
bool exists_and_ours(Client& client, const std::string& name, std::string_view role) {
  const std::optional<ExistingTable> t = describe_table(client, name);
  if (!t) return false;
  if (auto why = not_clickpipe_because(*t)) {
    throw FatalError(
        fmt::format("ClickHouse table {} is not one clickpipe made ({}), so it is not "
                    "{}: rename or drop it, then retry",
                    qualified(client, name), *why, role));
  }
  return true;
}

constexpr int kUnknownTable = 60;

// ClickHouse 18.16 reads system.tables by opening every table of the database, so a table
// someone else drops meanwhile fails the whole query with UNKNOWN_TABLE, whichever table was
// asked for (Features::system_tables_races_drops). On such a server the read is asked again;
// when other DDL keeps winning, the failure is transient (though code 60 is not, elsewhere),
// left to the caller's retry rather than failing the pipe. A failure naming the table sent with
// the query is not that race and is not asked again.
std::string read_system_tables(Client& client, const ExternalTable& wanted) {
  for (int attempt = 1;; ++attempt) {
    try {
      return client.query(
          "SELECT engine, sorting_key FROM system.tables WHERE (database, name) IN "
          "(SELECT db, t FROM " +
              wanted.name + ") FORMAT TabSeparated",
          wanted);
    } catch (const ClickHouseFatalError& e) {
      if (e.code() != kUnknownTable || !client.features().system_tables_races_drops ||
          std::string_view(e.what()).find("." + wanted.name + " doesn't exist") !=
              std::string_view::npos) {
        throw;
      }
      if (attempt == kSystemTablesAttempts) {
        throw ClickHouseTransientError(
            fmt::format("{} (system.tables refused {} times in a row: ClickHouse {} fails it "
                        "while any table of the database is dropped)",
                        e.what(), attempt, client.version().to_string()),
            e.code());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5 * attempt));
    }
  }
}

}  // namespace

void create_table(Client& client, const TableLayout& layout) {
  if (check_adoptable(client, layout)) return;
  client.query(create_table_sql(layout, client.settings().database));
}

bool table_exists(Client& client, const std::string& name) {
  return client.query("EXISTS TABLE " + qualified(client, name)) == "1\n";
}

std::optional<ExistingTable> describe_table(Client& client, const std::string& name) {
  if (!table_exists(client, name)) return std::nullopt;
  ExistingTable t;
  std::string described;
  try {
    described = client.query("DESCRIBE TABLE " + qualified(client, name));
  } catch (const ClickHouseFatalError& e) {
    if (e.code() == kUnknownTable) return std::nullopt;  // dropped since EXISTS answered
    throw;
  }
  for (const auto& row : parse_tab_separated(described)) {
    if (row.size() >= 2 && row[0] && row[1]) t.columns.emplace_back(*row[0], *row[1]);
  }
  // The names are values here, so they travel as data, in a table sent with the query.
  ExternalTable wanted{"clickpipe_wanted", "db String, t String", {}};
  detail::escape_tsv(wanted.tsv, client.settings().database);
  wanted.tsv += '\t';
  detail::escape_tsv(wanted.tsv, name);
  wanted.tsv += '\n';
  const auto engines = parse_tab_separated(read_system_tables(client, wanted));
  // No row: the table was dropped since EXISTS answered, so there is none.
  if (engines.empty()) return std::nullopt;
  if (engines[0].size() >= 2) {
    if (engines[0][0]) t.engine = *engines[0][0];
    if (engines[0][1]) t.sorting_key = *engines[0][1];
  }
  return t;
}

std::optional<std::string> not_clickpipe_because(const ExistingTable& t) {
  if (t.engine != kEngine) {
    return fmt::format("its engine is {}, not {}", t.engine.empty() ? "unknown" : t.engine,
                       kEngine);
  }
  for (const auto& b : kBookkeepingColumns) {
    if (auto why = column_problem(t, b.name, b.type)) return why;
  }
  return std::nullopt;
}

std::optional<std::string> not_adoptable_because(const ExistingTable& t,
                                                 const TableLayout& layout) {
  if (auto why = not_clickpipe_because(t))
    return fmt::format("it is not one clickpipe made: {}", *why);
  for (const auto& c : layout.columns) {
    if (auto why = column_problem(t, c.name, c.type)) return why;
  }
  // Rows are deduplicated by the sorting key: another key would merge the wrong rows.
  std::string want;
  for (const auto& k : layout.order_by) want += (want.empty() ? "" : ",") + k;
  // 26.x prints a one-column key as "(id)", 18.16 as "id"; quotes only where a name needs them.
  // Both sides lose the same characters, so a name holding them still compares equal.
  const auto bare = [](std::string key) {
    std::erase_if(key, [](char c) { return c == '`' || c == '(' || c == ')' || c == '\\'; });
    return without_spaces(key);
  };
  if (bare(t.sorting_key) != bare(want)) {
    return fmt::format("it is ordered by ({}), not ({})", t.sorting_key, want);
  }
  return std::nullopt;
}

bool is_clickpipe_table(Client& client, const std::string& name) {
  const std::optional<ExistingTable> t = describe_table(client, name);
  return t && !not_clickpipe_because(*t);
}

std::optional<std::string> drop_if_clickpipe(Client& client, const std::string& name) {
  const std::optional<ExistingTable> t = describe_table(client, name);
  if (!t) return std::nullopt;
  if (auto why = not_clickpipe_because(*t)) return why;
  client.query("DROP TABLE IF EXISTS " + qualified(client, name));
  return std::nullopt;
}

bool check_adoptable(Client& client, const TableLayout& layout) {
  const std::optional<ExistingTable> t = describe_table(client, layout.name);
  if (!t) return false;
  if (auto why = not_adoptable_because(*t, layout)) {
    throw FatalError(
        fmt::format("ClickHouse table {} exists and is not taken over: {}. Rename or "
                    "drop it (or leave its source table out of the pipe), then retry",
                    qualified(client, layout.name), *why));
  }
  return true;
}

std::vector<std::vector<std::optional<std::string>>> read_final(Client& client,
                                                                const TableLayout& l) {
  std::string sql = "SELECT ";
  for (std::size_t i = 0; i < l.columns.size(); ++i)
    sql += (i ? ", " : "") + quote(l.columns[i].name);
  sql += " FROM " + quote(client.settings().database) + "." + quote(l.name) +
         " FINAL WHERE `_is_deleted` = 0 ORDER BY ";
  for (std::size_t i = 0; i < l.order_by.size(); ++i) sql += (i ? ", " : "") + quote(l.order_by[i]);
  sql += " FORMAT TabSeparated";
  return parse_tab_separated(client.query(sql));
}

void delete_all(Client& client, const TableLayout& layout, std::uint64_t version) {
  std::string cols;
  for (const auto& m : layout.columns) cols += quote(m.name) + ", ";
  const std::string t = quote(client.settings().database) + "." + quote(layout.name);
  // Both servers read FINAL here: on 23.2+ it already hides deleted rows, before it the WHERE does.
  client.query("INSERT INTO " + t + " (" + cols +
               "`_version`, `_is_deleted`, `_synced_at`) SELECT " + cols + std::to_string(version) +
               ", 1, now() FROM " + t + " FINAL WHERE `_is_deleted` = 0");
}

std::vector<std::string> add_missing_columns(Client& client, const TableLayout& layout) {
  const std::string db = client.settings().database;
  std::set<std::string> have;
  for (const auto& row : parse_tab_separated(
           client.query("DESCRIBE TABLE " + quote(db) + "." + quote(layout.name)))) {
    if (!row.empty() && row[0]) have.insert(*row[0]);
  }
  std::vector<std::string> added;
  for (const auto& m : layout.columns) {
    if (have.count(m.name)) continue;
    client.query("ALTER TABLE " + quote(db) + "." + quote(layout.name) + " ADD COLUMN " +
                 quote(m.name) + " " + m.type);
    added.push_back(m.name);
  }
  return added;
}

void create_resync_table(Client& client, const TableLayout& layout) {
  TableLayout copy = layout;
  copy.name.append(kResyncSuffix);
  // The table the copy will replace, and the old copy the swap drops, are checked now: after the
  // whole load would be a waste of it.
  exists_and_ours(client, layout.name, "replaced by a resync");
  exists_and_ours(client, std::string(layout.name).append(kOldSuffix), "dropped after a resync");
  if (exists_and_ours(client, copy.name, "dropped for a fresh resync copy")) {
    client.query("DROP TABLE IF EXISTS " + qualified(client, copy.name));
  }
  client.query(create_table_sql(copy, client.settings().database));
}

void swap_resync(Client& client, const std::string& name) {
  const std::string resync_name = std::string(name).append(kResyncSuffix);
  const std::string old_name = std::string(name).append(kOldSuffix);
  const std::string main = qualified(client, name), resync = qualified(client, resync_name),
                    old = qualified(client, old_name);
  if (exists_and_ours(client, resync_name, "swapped in")) {
    // All three are checked before the first change.
    const bool old_there = exists_and_ours(client, old_name, "dropped");
    const bool main_there = exists_and_ours(client, name, "swapped out");
    if (old_there) client.query("DROP TABLE IF EXISTS " + old);  // a swap cut short before its drop
    if (main_there) {
      client.query("RENAME TABLE " + main + " TO " + old + ", " + resync + " TO " + main);
      client.query("DROP TABLE IF EXISTS " + old);
    } else {
      client.query("RENAME TABLE " + resync + " TO " + main);
    }
    return;
  }
  // A swap interrupted between its rename and its drop left the old copy behind.
  if (exists_and_ours(client, old_name, "dropped")) client.query("DROP TABLE IF EXISTS " + old);
}

}  // namespace clickpipe::clickhouse
