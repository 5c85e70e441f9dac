// UTF-8 as JSON writers and ClickHouse identifiers accept it: no overlong forms, no surrogates,
// nothing past U+10FFFF. Shared by everything that checks or cuts text from outside.
#pragma once

#include <cstddef>
#include <string_view>

namespace clickpipe {

// The length of the well-formed UTF-8 sequence at the start of `s`, or 0 (empty, or malformed).
constexpr std::size_t utf8_sequence_length(std::string_view s) noexcept {
  if (s.empty()) return 0;
  const auto b = static_cast<unsigned char>(s[0]);
  if (b < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (n > s.size()) return 0;
  for (std::size_t i = 1; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < (i == 1 ? lo : 0x80) || c > (i == 1 ? hi : 0xBF)) return 0;
  }
  return n;
}

// Calls `each` with every character of `s` (a string_view of its bytes), U+FFFD standing in for
// each byte that starts no well-formed sequence: for writers that must emit valid UTF-8 whatever
// they were given.
template <typename F>
constexpr void for_each_utf8(std::string_view s, F&& each) {
  while (!s.empty()) {
    const std::size_t n = utf8_sequence_length(s);
    each(n ? s.substr(0, n) : std::string_view("\xEF\xBF\xBD"));
    s.remove_prefix(n ? n : 1);
  }
}

constexpr bool valid_utf8(std::string_view s) noexcept {
  while (!s.empty()) {
    const std::size_t n = utf8_sequence_length(s);
    if (n == 0) return false;
    s.remove_prefix(n);
  }
  return true;
}

}  // namespace clickpipe
