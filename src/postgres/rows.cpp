#include "clickpipe/postgres/rows.hpp"

namespace clickpipe::postgres {

std::optional<Values> read_row_by_key(Connection& conn, const std::string& relation,
                                      const std::vector<std::string>& columns,
                                      const std::vector<std::string>& key_columns,
                                      const std::vector<std::optional<std::string>>& key) {
  std::string cols, where;
  for (const auto& c : columns) cols += (cols.empty() ? "" : ", ") + conn.identifier(c);
  for (std::size_t k = 0; k < key_columns.size(); ++k) {
    where += (where.empty() ? "" : " AND ") + conn.identifier(key_columns[k]) + " = $" +
             std::to_string(k + 1);
  }
  Result r = conn.exec("SELECT " + cols + " FROM " + relation + " WHERE " + where, key);
  if (r.rows() == 0) return std::nullopt;
  Values out;
  out.reserve(columns.size());
  for (int c = 0; c < static_cast<int>(columns.size()); ++c) {
    out.push_back(r.is_null(0, c) ? Datum::null() : Datum::of(std::string(r.value(0, c))));
  }
  return out;
}

}  // namespace clickpipe::postgres
