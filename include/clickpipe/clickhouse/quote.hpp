// ClickHouse identifiers in SQL text. Values never go into SQL text: they travel in
// TabSeparated bodies (tab_separated.hpp).
#pragma once

#include <string>
#include <string_view>

#include "clickpipe/utf8.hpp"  // valid_utf8, which callers of quote() check names with

namespace clickpipe::clickhouse {

// `name` in backquotes, with backquotes and backslashes escaped. Throws InvalidField for empty
// names and invalid UTF-8.
std::string quote(std::string_view name);

}  // namespace clickpipe::clickhouse
