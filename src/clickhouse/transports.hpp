// The transports Client picks from (internal).
#pragma once

#include <memory>
#include <string>

#include "clickpipe/clickhouse/client.hpp"

namespace clickpipe::clickhouse::detail {

std::unique_ptr<Transport> http_transport(const ClientSettings& settings);
// `directory` is the URL's part after "chdb://".
std::unique_ptr<Transport> chdb_transport(const ClientSettings& settings,
                                          const std::string& directory);

}  // namespace clickpipe::clickhouse::detail
