// `clickpipe status`: what the pipes of a store are doing, read from the store directory alone
// (no connection to the running process). A running `clickpipe run` publishes each pipe's live
// status document in DIR/status/<id>.json (Telemetry::publish); without a fresh one, the pipe's
// saved record says what it can.
#pragma once

#include <chrono>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "clickpipe/store/record.hpp"

namespace clickpipe::cli {

// A live status file older than this is a process that stopped publishing: the record is shown.
inline constexpr std::chrono::seconds kLiveStatusMaxAge{10};
// A live status file larger than this is not read (a pipe's document is far smaller).
inline constexpr std::size_t kMaxLiveStatusBytes = 1024 * 1024;

// Where `clickpipe run` publishes the live status of the pipes stored in `store`.
std::string status_dir(const std::string& store);

// The pipes of `store` as a JSON array, one entry per record file (*.json in the store, by file
// name): the pipe's live document when DIR/status/<id>.json is a regular file (never through a
// symlink, never waiting on a FIFO) of at most kMaxLiveStatusBytes, holds a JSON object for that
// id, and its published_at is less than kLiveStatusMaxAge old; else the fallback made from the
// record, {"id", "state", "intent", "tables", "confirmed", "stopped_tables", "last_error",
// "live": false}. A record that cannot be read shows as {"file", "broken"}. With `id`, only that
// pipe: throws std::runtime_error("no pipe 'x' in DIR") when the store has no record of it.
nlohmann::json read_status(const std::string& store, const std::optional<std::string>& id);

// The status document made from a saved record alone (what read_status shows without a live
// file): {"id", "state", "intent", "tables", "confirmed", "stopped_tables", "last_error",
// "live": false}.
nlohmann::json record_document(const PipeRecord& record);

// read_status's result (or Telemetry::pipes_json's, or one document) as a table for a terminal:
// a line per pipe (ID, STATE, LAG, CHANGES/S, CONFIRMED, RETRY, LAST ERROR), then per pipe a line
// per table (TABLE, ROWS, PARTITIONS, ROWS/S, ETA, CDC CHANGES) and its stopped tables, then the
// broken records. What a document does not have shows as "-". Control characters in names and
// errors are shown as '?', so nothing read from the store can steer the terminal.
std::string render_status_table(const nlohmann::json& doc);

}  // namespace clickpipe::cli
