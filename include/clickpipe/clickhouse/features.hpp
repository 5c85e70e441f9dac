// What clickpipe uses of a ClickHouse server, decided from its version in this one place
// (docs/clickhouse.md has the table). Supported: 18.16 to 26.x.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace clickpipe::clickhouse {

struct ServerVersion {
  int major = 0;
  int minor = 0;
  friend bool operator==(const ServerVersion&, const ServerVersion&) = default;
  friend auto operator<=>(const ServerVersion&, const ServerVersion&) = default;
  std::string to_string() const { return std::to_string(major) + "." + std::to_string(minor); }
};

// A query-level setting pinned on a request.
struct Setting {
  std::string name;
  std::string value;
};

struct Features {
  ServerVersion version;
  // DateTime64 (20.1) and Date32 (21.9): timestamps and dates get typed columns, else String.
  bool datetime64 = false;
  bool date32 = false;
  // ReplacingMergeTree(_version, _is_deleted) (23.2): merges and FINAL drop deleted keys.
  bool replacing_is_deleted = false;
  // The async_insert setting exists (21.11) and is pinned off: a 200 must mean stored.
  bool async_insert = false;

  static Features of(ServerVersion v) noexcept {
    Features f;
    f.version = v;
    f.datetime64 = v >= ServerVersion{20, 1};
    f.date32 = v >= ServerVersion{21, 9};
    f.replacing_is_deleted = v >= ServerVersion{23, 2};
    f.async_insert = v >= ServerVersion{21, 11};
    return f;
  }

  // Pinned on every insert whatever the user's profile says: no row skipped as unparseable, no
  // insert acknowledged before it is written.
  std::vector<Setting> insert_settings() const {
    std::vector<Setting> s = {{"input_format_allow_errors_num", "0"},
                              {"input_format_allow_errors_ratio", "0"}};
    if (async_insert) s.push_back({"async_insert", "0"});
    return s;
  }
};

}  // namespace clickpipe::clickhouse
