#include "clickpipe/clickhouse/quote.hpp"

#include "clickpipe/error.hpp"

namespace clickpipe::clickhouse {

std::string quote(std::string_view name) {
  if (name.empty()) throw InvalidField("name", "an identifier must not be empty");
  if (!valid_utf8(name)) throw InvalidField("name", "identifier is not valid UTF-8");
  std::string out = "`";
  for (char c : name) {
    if (c == '`' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "`";
}

}  // namespace clickpipe::clickhouse
