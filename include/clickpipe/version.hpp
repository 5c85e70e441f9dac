#pragma once

// CMake reads the project version from these lines.
#define CLICKPIPE_VERSION_MAJOR 0
#define CLICKPIPE_VERSION_MINOR 1
#define CLICKPIPE_VERSION_PATCH 0

namespace clickpipe {
inline constexpr int kVersionMajor = CLICKPIPE_VERSION_MAJOR;
inline constexpr int kVersionMinor = CLICKPIPE_VERSION_MINOR;
inline constexpr int kVersionPatch = CLICKPIPE_VERSION_PATCH;
}  // namespace clickpipe
