// A table's current rows, read by key: for values a change did not carry (unchanged TOAST).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "clickpipe/change.hpp"
#include "clickpipe/postgres/connection.hpp"

namespace clickpipe::postgres {

// `columns` of the row of `relation` (already quoted, e.g. from relation_name()) whose
// `key_columns` equal `key`, in the order of `columns`; nullopt when no row has that key. The key
// travels as parameters, never in SQL text. A column or relation gone since throws PgFatalError
// with SQLSTATE 42703 or 42P01.
std::optional<Values> read_row_by_key(Connection& conn, const std::string& relation,
                                      const std::vector<std::string>& columns,
                                      const std::vector<std::string>& key_columns,
                                      const std::vector<std::optional<std::string>>& key);

}  // namespace clickpipe::postgres
