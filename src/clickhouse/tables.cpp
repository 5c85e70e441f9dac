#include "clickpipe/clickhouse/tables.hpp"

#include <set>

#include "clickpipe/clickhouse/tab_separated.hpp"

namespace clickpipe::clickhouse {

void create_table(Client& client, const TableLayout& layout) {
  client.query(create_table_sql(layout, client.settings().database));
}

bool table_exists(Client& client, const std::string& name) {
  return client.query("EXISTS TABLE " + quote(client.settings().database) + "." + quote(name)) ==
         "1\n";
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
  copy.name = layout.name + "_resync";
  client.query("DROP TABLE IF EXISTS " + quote(client.settings().database) + "." +
               quote(copy.name));
  client.query(create_table_sql(copy, client.settings().database));
}

void swap_resync(Client& client, const std::string& name) {
  const std::string db = quote(client.settings().database) + ".";
  const std::string main = db + quote(name), resync = db + quote(name + "_resync"),
                    old = db + quote(name + "_old");
  if (table_exists(client, name + "_resync")) {
    client.query("DROP TABLE IF EXISTS " + old);  // a swap interrupted before its drop
    if (table_exists(client, name)) {
      client.query("RENAME TABLE " + main + " TO " + old + ", " + resync + " TO " + main);
    } else {
      client.query("RENAME TABLE " + resync + " TO " + main);
    }
  }
  client.query("DROP TABLE IF EXISTS " + old);
}

}  // namespace clickpipe::clickhouse
