// Rows as ClickHouse TabSeparated text: what inserts send and what queries answer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clickpipe/change.hpp"
#include "clickpipe/clickhouse/layout.hpp"

namespace clickpipe::clickhouse {

// One non-NULL source text value as the column's TabSeparated text (what an insert sends).
std::string convert_value(const MappedColumn& column, std::string_view source_text);

// One row to write: values in source text form, its version, and whether it deletes the key.
struct Row {
  Values values;
  std::uint64_t version = 0;
  bool deleted = false;
};

// The TabSeparated body for `rows` (with _version, _is_deleted, _synced_at).
std::string encode_rows(const TableLayout& layout, const std::vector<Row>& rows,
                        std::uint32_t synced_at_epoch_seconds);

// A TabSeparated answer as rows of fields, unescaped; nullopt for \N.
std::vector<std::vector<std::optional<std::string>>> parse_tab_separated(std::string_view body);

}  // namespace clickpipe::clickhouse
