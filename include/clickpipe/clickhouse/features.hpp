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
  // Typed date and time columns, used from 22.8, where Date32 and DateTime64 first hold
  // 1900-01-01 to 2299-12-31 (before, they held less: 1925-2283, DateTime64 at first 1970-2105).
  // Else String. Values outside the range are clamped to its ends (docs/type-mapping.md).
  bool datetime64 = false;
  bool date32 = false;
  int date32_years[2] = {1900, 2299};
  // DateTime64 holds years 0001 to 9999 from 26.7.
  int datetime64_years[2] = {1900, 2299};
  // ReplacingMergeTree(_version, _is_deleted) (23.2): merges and FINAL drop deleted keys.
  bool replacing_is_deleted = false;
  // The async_insert setting exists (21.11) and is pinned off: a 200 must mean stored.
  bool async_insert = false;

  static Features of(ServerVersion v) noexcept {
    Features f;
    f.version = v;
    f.datetime64 = f.date32 = v >= ServerVersion{22, 8};
    if (v >= ServerVersion{26, 7}) {
      f.datetime64_years[0] = 1;
      f.datetime64_years[1] = 9999;
    }
    f.replacing_is_deleted = v >= ServerVersion{23, 2};
    f.async_insert = v >= ServerVersion{21, 11};
    f.tsv_parsing_settings = v >= ServerVersion{24, 1};
    f.system_tables_races_drops = v < ServerVersion{19, 3};
    return f;
  }

  // A read of system.tables fails with UNKNOWN_TABLE when any table of the database is dropped
  // meanwhile (ClickHouse issue #3982, from 18.16; fixed by PR #4313 in February 2019, taken
  // here as 19.3): that one read is asked again (tables.hpp).
  bool system_tables_races_drops = false;

  // The TabSeparated input settings below exist (all of them by 24.1).
  bool tsv_parsing_settings = false;

  // Pinned on every insert whatever the user's profile says: no row skipped as unparseable, no
  // insert acknowledged before it is written, no value read other than as it was written.
  std::vector<Setting> insert_settings() const {
    std::vector<Setting> s = {{"input_format_allow_errors_num", "0"},
                              {"input_format_allow_errors_ratio", "0"}};
    if (async_insert) s.push_back({"async_insert", "0"});
    if (tsv_parsing_settings) {
      s.push_back({"input_format_tsv_empty_as_default", "0"});  // '' stays '', not NULL
      s.push_back({"format_tsv_null_representation", "\\N"});
      s.push_back({"input_format_tsv_skip_trailing_empty_lines", "0"});  // the abort line
      s.push_back({"input_format_tsv_allow_variable_number_of_columns", "0"});
    }
    return s;
  }
};

}  // namespace clickpipe::clickhouse
