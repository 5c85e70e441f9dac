// PostgreSQL text values as ClickHouse TabSeparated text (internal to the destination).
#pragma once

#include <string>
#include <string_view>

#include "clickpipe/clickhouse/layout.hpp"

namespace clickpipe::clickhouse::detail {

// Appends `v` with TabSeparated escaping.
void escape_tsv(std::string& out, std::string_view v);

// Appends the column's text for `v` converted as `conv` says, unescaped.
void append_raw(std::string& out, const MappedColumn& m, Conversion conv, std::string_view v);

// Appends the column's TabSeparated text for the non-NULL source text `v` (already unescaped).
// Throws InvalidField for text the conversion cannot read.
void append_converted(std::string& out, const MappedColumn& m, std::string_view v);

// The conversions whose text never holds a character TabSeparated escapes, written straight from
// COPY text (escaped) into `out`. False for the others: unescape first, then append_converted().
bool append_plain(std::string& out, const MappedColumn& m, std::string_view v);

}  // namespace clickpipe::clickhouse::detail
