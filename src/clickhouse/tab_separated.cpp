#include "clickpipe/clickhouse/tab_separated.hpp"

#include <utility>

#include "clickpipe/error.hpp"
#include "values.hpp"
#include "writes.hpp"

namespace clickpipe::clickhouse {

namespace detail {

void encode_value(std::string& out, const MappedColumn& m, const Datum& d) {
  if (d.kind == Datum::Kind::UnchangedToast) {
    throw InvalidField("row", "an unchanged TOAST value must be filled before writing");
  }
  if (d.is_null()) {
    out += m.conversion == Conversion::Array ? "[]" : "\\N";
  } else {
    detail::append_converted(out, m, d.text);
  }
}

}  // namespace detail

namespace {
using detail::encode_value;
}  // namespace

std::string convert_value(const MappedColumn& column, std::string_view source_text) {
  std::string out;
  detail::append_converted(out, column, source_text);
  return out;
}

std::string encode_rows(const TableLayout& l, const std::vector<Row>& rows,
                        std::uint32_t synced_at) {
  std::string out;
  const std::string tail = std::to_string(synced_at);
  for (const Row& r : rows) {
    if (r.values.size() != l.columns.size()) {
      throw InvalidField("row", std::to_string(r.values.size()) + " values for " +
                                    std::to_string(l.columns.size()) + " columns of " + l.name);
    }
    for (std::size_t i = 0; i < l.columns.size(); ++i) {
      encode_value(out, l.columns[i], r.values[i]);
      out += '\t';
    }
    out += std::to_string(r.version);
    out += r.deleted ? "\t1\t" : "\t0\t";
    out += tail;
    out += '\n';
  }
  return out;
}

std::vector<std::vector<std::optional<std::string>>> parse_tab_separated(std::string_view body) {
  std::vector<std::vector<std::optional<std::string>>> out;
  std::vector<std::optional<std::string>> row;
  std::string field;
  bool null = false;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '\t' || c == '\n') {
      row.push_back(null ? std::nullopt : std::optional<std::string>(field));
      field.clear();
      null = false;
      if (c == '\n') out.push_back(std::exchange(row, {}));
    } else if (c == '\\' && i + 1 < body.size()) {
      switch (const char e = body[++i]) {
        case 'N': null = true; break;
        case 't': field += '\t'; break;
        case 'n': field += '\n'; break;
        case 'r': field += '\r'; break;
        case '0': field += '\0'; break;
        case 'b': field += '\b'; break;
        case 'f': field += '\f'; break;
        default: field += e;
      }
    } else {
      field += c;
    }
  }
  return out;
}

}  // namespace clickpipe::clickhouse
