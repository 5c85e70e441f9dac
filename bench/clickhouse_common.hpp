// What the benchmarks that talk to ClickHouse print next to every figure: the settings in effect.
#pragma once

#include <clickpipe/clickhouse/client.hpp>
#include <string>

namespace clickpipe::bench {

// The settings of this session that differ from ClickHouse's defaults (the server's profile and
// what the client pins), as one line.
inline std::string ch_session_settings(clickhouse::Client& ch) {
  std::string out =
      ch.query("SELECT concat(name, '=', value) FROM system.settings WHERE changed ORDER BY name");
  while (!out.empty() && out.back() == '\n') out.pop_back();
  for (std::size_t at = 0; (at = out.find('\n', at)) != std::string::npos;)
    out.replace(at, 1, ", ");
  return out.empty() ? "the defaults" : out;
}

}  // namespace clickpipe::bench
