#include "clickpipe/clickhouse/quote.hpp"

#include "clickpipe/error.hpp"

namespace clickpipe::clickhouse {

bool valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    if (c < 0x80) {
      n = 0;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
    } else if ((c >> 4) == 0xe) {
      n = 2;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
    } else {
      return false;
    }
    if (n > 0 && i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += n + 1;
  }
  return true;
}

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
