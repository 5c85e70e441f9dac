// How GoogleTest prints our types in failure messages.
#pragma once

#include <ostream>

#include "clickpipe/clickpipe.hpp"

namespace clickpipe {
inline void PrintTo(State s, std::ostream* os) { *os << to_string(s); }
inline void PrintTo(Mode m, std::ostream* os) { *os << to_string(m); }
inline void PrintTo(Trigger t, std::ostream* os) { *os << to_string(t); }
inline void PrintTo(const Lsn& l, std::ostream* os) { *os << to_string(l); }
inline void PrintTo(const Transition& t, std::ostream* os) { *os << fmt::format("{}", t); }
inline void PrintTo(const Rejection& r, std::ostream* os) { *os << fmt::format("{}", r); }
inline void PrintTo(const TableRef& t, std::ostream* os) { *os << t.qualified(); }
}  // namespace clickpipe
