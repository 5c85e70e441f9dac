// ClickHouse identifiers in SQL text. Values never go into SQL text: they travel in
// TabSeparated bodies (tab_separated.hpp).
#pragma once

#include <string>
#include <string_view>

namespace clickpipe::clickhouse {

// `name` in backquotes, with backquotes and backslashes escaped. Throws InvalidField for empty
// names and invalid UTF-8.
std::string quote(std::string_view name);
bool valid_utf8(std::string_view text) noexcept;

}  // namespace clickpipe::clickhouse
