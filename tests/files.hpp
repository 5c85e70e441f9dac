// Whole files in and out, for tests that plant or inspect what a store wrote.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

namespace clickpipe::test {

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void spit(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

// Rewrites the saved record `file` with `edit` applied to the whole document (its "record" body,
// "format_version", ...) and the body's checksum computed again, as anyone who can write the
// store could: the checksum proves no author.
inline void rewrite_record(const std::filesystem::path& file,
                           const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(slurp(file));
  edit(j);
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a, 64 bits, as the store computes it
  for (unsigned char c : j.at("record").dump()) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char sum[32];
  std::snprintf(sum, sizeof sum, "fnv1a64:%016llx", static_cast<unsigned long long>(h));
  j["checksum"] = sum;
  spit(file, j.dump());
}

}  // namespace clickpipe::test
