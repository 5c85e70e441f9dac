// Journal lines for the in-memory source and destination: one JSON object per line.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

#include "clickpipe/change.hpp"

namespace clickpipe::testing::journal {

nlohmann::json values(const Values& v);
Values values_from(const nlohmann::json& j);
nlohmann::json change(const Change& c);
Change change_from(const nlohmann::json& j);

// Opens `path` for appending (creating it), after calling `replay` for each complete line in it.
// A last line without its newline (a write cut short by a kill) is dropped from the file.
int open_and_replay(const std::string& path, const std::function<void(const std::string&)>& replay);
// Appends one line; throws FatalError when the write fails.
void append(int fd, const std::string& line);

}  // namespace clickpipe::testing::journal
