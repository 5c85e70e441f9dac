#include "values.hpp"

#include <chrono>
#include <cstdint>
#include <tuple>

#include "clickpipe/error.hpp"

namespace clickpipe::clickhouse::detail {

void escape_tsv(std::string& out, std::string_view v) {
  // Runs without anything to escape (nearly everything) are appended whole.
  std::size_t from = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c != '\\' && c != '\t' && c != '\n' && c != '\r' && c != '\0' && c != '\b' && c != '\f') {
      continue;
    }
    out.append(v.data() + from, i - from);
    from = i + 1;
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\0': out += "\\0"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default: break;
    }
  }
  out.append(v.data() + from, v.size() - from);
}

namespace {

// Names the column and the value's length, not the value (it may be personal data).
[[noreturn]] void unreadable(const MappedColumn& m, const char* what, std::string_view v) {
  throw InvalidField(m.name, "cannot read a " + std::string(what) + " value of " +
                                 std::to_string(v.size()) +
                                 " bytes (sessions pin DateStyle=ISO, TimeZone=UTC, hex bytea)");
}

// A date or timestamp as PostgreSQL prints it under DateStyle=ISO: "[-]infinity", or
// "Y-MM-DD[ HH:MM:SS[.f]][+-HH[:MM[:SS]]][ BC]" with a year of four or more digits.
struct Moment {
  int infinite = 0;       // -1, +1 for -infinity, infinity
  std::int64_t year = 0;  // astronomical: 1 BC is 0
  unsigned month = 1, day = 1, hour = 0, minute = 0, second = 0;
  std::uint32_t micros = 0;
  int offset = 0;  // seconds east of UTC
};

bool digits(std::string_view v, std::size_t& at, std::size_t n, unsigned& out) {
  if (at + n > v.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = v[at + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<unsigned>(c - '0');
  }
  at += n;
  return true;
}

bool parse_moment(std::string_view v, bool with_time, Moment& m) {
  if (v == "infinity") return m.infinite = 1, true;
  if (v == "-infinity") return m.infinite = -1, true;
  bool bc = false;
  if (v.size() > 3 && v.substr(v.size() - 3) == " BC") {
    bc = true;
    v.remove_suffix(3);
  }
  std::size_t at = 0;
  std::int64_t year = 0;
  while (at < v.size() && v[at] >= '0' && v[at] <= '9' && at < 9)
    year = year * 10 + (v[at++] - '0');
  if (at < 4 || at >= v.size() || v[at++] != '-') return false;
  if (!digits(v, at, 2, m.month) || at >= v.size() || v[at++] != '-' || !digits(v, at, 2, m.day)) {
    return false;
  }
  m.year = bc ? 1 - year : year;
  if (!with_time) return at == v.size() && m.month >= 1 && m.month <= 12 && m.day >= 1;
  if (at >= v.size() || v[at++] != ' ' || !digits(v, at, 2, m.hour) || at >= v.size() ||
      v[at++] != ':' || !digits(v, at, 2, m.minute) || at >= v.size() || v[at++] != ':' ||
      !digits(v, at, 2, m.second)) {
    return false;
  }
  if (at < v.size() && v[at] == '.') {
    ++at;
    std::size_t n = 0;
    while (at < v.size() && v[at] >= '0' && v[at] <= '9') {
      if (n < 6) m.micros = m.micros * 10 + static_cast<std::uint32_t>(v[at] - '0');
      ++n;
      ++at;
    }
    if (n == 0 || n > 6) return false;
    for (; n < 6; ++n) m.micros *= 10;
  }
  if (at < v.size() && (v[at] == '+' || v[at] == '-')) {
    const int sign = v[at++] == '-' ? -1 : 1;
    unsigned h = 0, mi = 0, s = 0;
    if (!digits(v, at, 2, h)) return false;
    if (at < v.size() && v[at] == ':' && (++at, !digits(v, at, 2, mi))) return false;
    if (at < v.size() && v[at] == ':' && (++at, !digits(v, at, 2, s))) return false;
    m.offset = sign * static_cast<int>(h * 3600 + mi * 60 + s);
  }
  return at == v.size() && m.month >= 1 && m.month <= 12 && m.day >= 1 && m.hour < 24 &&
         m.minute < 60 && m.second < 60;
}

// To UTC: the offset taken off through the calendar (days, months and years may roll over).
// False for years the calendar arithmetic cannot take (beyond +-32000: only PostgreSQL's
// largest timestamps, which no offset brings into any typed range).
bool to_utc(Moment& m) {
  if (m.offset == 0 || m.infinite) return true;
  using namespace std::chrono;
  if (m.year < -32000 || m.year > 32000) return false;
  const sys_days date{year{static_cast<int>(m.year)} / month{m.month} / day{m.day}};
  const sys_seconds t =
      date + hours{m.hour} + minutes{m.minute} + seconds{m.second} - seconds{m.offset};
  const sys_days d = floor<days>(t);
  const year_month_day ymd{d};
  const hh_mm_ss<seconds> hms{t - d};
  m.year = static_cast<int>(ymd.year());
  m.month = static_cast<unsigned>(ymd.month());
  m.day = static_cast<unsigned>(ymd.day());
  m.hour = static_cast<unsigned>(hms.hours().count());
  m.minute = static_cast<unsigned>(hms.minutes().count());
  m.second = static_cast<unsigned>(hms.seconds().count());
  m.offset = 0;
  return true;
}

void put(std::string& out, unsigned v, int width) {
  char buf[8];
  for (int i = width - 1; i >= 0; --i, v /= 10) buf[i] = static_cast<char>('0' + v % 10);
  out.append(buf, static_cast<std::size_t>(width));
}

// The typed column's range (Date32, DateTime64: January 1 of the first year to December 31 of
// the last). Values beyond it, BC dates and infinities are clamped to its ends
// (docs/type-mapping.md).
void clamp(Moment& m, const MappedColumn& c) {
  const auto key = [](const Moment& x) {
    return std::tuple(x.year, x.month, x.day, x.hour, x.minute, x.second, x.micros);
  };
  const Moment lowest{0, c.years[0], 1, 1, 0, 0, 0, 0, 0};
  const Moment highest{0, c.years[1], 12, 31, 23, 59, 59, 999999, 0};
  if (m.infinite < 0 || (!m.infinite && key(m) < key(lowest))) m = lowest;
  if (m.infinite > 0 || key(m) > key(highest)) m = highest;
}

void append_moment(std::string& out, const Moment& m, bool with_time) {
  const bool bc = m.year <= 0;
  const std::int64_t y = bc ? 1 - m.year : m.year;
  if (y <= 9999) {
    put(out, static_cast<unsigned>(y), 4);
  } else {
    out += std::to_string(y);
  }
  out += '-';
  put(out, m.month, 2);
  out += '-';
  put(out, m.day, 2);
  if (with_time) {
    out += ' ';
    put(out, m.hour, 2);
    out += ':';
    put(out, m.minute, 2);
    out += ':';
    put(out, m.second, 2);
    out += '.';
    put(out, m.micros, 6);
  }
  if (bc) out += " BC";
}

// Timestamps (with or without time zone) as "YYYY-MM-DD HH:MM:SS.ffffff" in UTC; dates as
// "YYYY-MM-DD". In String columns (servers without the typed ones) values the typed range cannot
// hold stay as PostgreSQL wrote them, infinities and BC included.
void append_calendar(std::string& out, const MappedColumn& c, Conversion conv, std::string_view v) {
  const bool with_time = conv == Conversion::Timestamp;
  const char* what = with_time ? "timestamp" : "date";
  Moment m;
  if (!parse_moment(v, with_time, m)) unreadable(c, what, v);
  if (c.bounded) {
    if (!to_utc(m)) m.offset = 0;  // far beyond any range: clamped all the same
    clamp(m, c);
  } else if (m.infinite) {
    out.append(v);
    return;
  } else if (!to_utc(m)) {
    unreadable(c, what, v);
  }
  append_moment(out, m, with_time);
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// bytea as its bytes, from hex ("\x00ff") or escape ("\000\377", "\\") output.
std::string bytea(const MappedColumn& c, std::string_view v) {
  std::string out;
  if (v.size() >= 2 && v[0] == '\\' && v[1] == 'x') {
    if (v.size() % 2) unreadable(c, "bytea", v);
    out.reserve((v.size() - 2) / 2);
    for (std::size_t i = 2; i < v.size(); i += 2) {
      const int hi = hex(v[i]), lo = hex(v[i + 1]);
      if (hi < 0 || lo < 0) unreadable(c, "bytea", v);
      out += static_cast<char>(hi * 16 + lo);
    }
    return out;
  }
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '\\') {
      out += v[i];
    } else if (i + 1 < v.size() && v[i + 1] == '\\') {
      out += '\\';
      ++i;
    } else if (i + 3 < v.size() && v[i + 1] >= '0' && v[i + 1] <= '3' && v[i + 2] >= '0' &&
               v[i + 2] <= '7' && v[i + 3] >= '0' && v[i + 3] <= '7') {
      out +=
          static_cast<char>(((v[i + 1] - '0') << 6) | ((v[i + 2] - '0') << 3) | (v[i + 3] - '0'));
      i += 3;
    } else {
      unreadable(c, "bytea", v);
    }
  }
  return out;
}

bool special_number(std::string_view v) {
  return v == "NaN" || v == "Infinity" || v == "-Infinity";
}

// Parses a PostgreSQL array literal ({1,"a b",NULL,{2,3}}) into a ClickHouse one.
void append_array(std::string& out, std::string_view v, std::size_t& i, const MappedColumn& m) {
  if (i >= v.size() || v[i] != '{') throw InvalidField("array", "not an array literal");
  ++i;
  out += '[';
  bool first = true;
  std::string item, converted;
  while (i < v.size() && v[i] != '}') {
    if (!first) {
      if (v[i] != ',') throw InvalidField("array", "malformed array literal");
      ++i;
      out += ',';
    }
    first = false;
    if (i < v.size() && v[i] == '{') {
      append_array(out, v, i, m);
      continue;
    }
    item.clear();
    bool quoted = false;
    if (i < v.size() && v[i] == '"') {
      quoted = true;
      for (++i; i < v.size() && v[i] != '"'; ++i) {
        if (v[i] == '\\' && i + 1 < v.size()) ++i;
        item += v[i];
      }
      ++i;
    } else {
      while (i < v.size() && v[i] != ',' && v[i] != '}') item += v[i++];
    }
    if ((!quoted && item == "NULL") || (m.element == Conversion::Decimal && special_number(item))) {
      out += "NULL";
      continue;
    }
    converted.clear();
    append_raw(converted, m, m.element, item);
    if (!m.quoted_elements) {
      out += converted;
      continue;
    }
    // Quoted the way ClickHouse reads strings inside arrays (the array is not TSV-escaped).
    out += '\'';
    for (char c : converted) {
      switch (c) {
        case '\'': out += "\\'"; break;
        case '\\': out += "\\\\"; break;
        case '\t': out += "\\t"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\0': out += "\\0"; break;
        default: out += c;
      }
    }
    out += '\'';
  }
  if (i >= v.size()) throw InvalidField("array", "unterminated array literal");
  ++i;
  out += ']';
}

}  // namespace

void append_raw(std::string& out, const MappedColumn& m, Conversion conv, std::string_view v) {
  switch (conv) {
    case Conversion::Float:
      if (v == "NaN") {
        out += "nan";
      } else if (v == "Infinity") {
        out += "inf";
      } else if (v == "-Infinity") {
        out += "-inf";
      } else {
        out.append(v);
      }
      return;
    case Conversion::Boolean: out += (v == "t" || v == "true") ? '1' : '0'; return;
    case Conversion::Bytea: out += bytea(m, v); return;
    case Conversion::Timestamp:
    case Conversion::Date: append_calendar(out, m, conv, v); return;
    case Conversion::Array: {
      // The literal quotes its elements itself: ClickHouse reads it as it stands in the row.
      std::size_t at = 0;
      append_array(out, v, at, m);
      if (at != v.size()) throw InvalidField("array", "trailing text after an array literal");
      return;
    }
    case Conversion::Decimal:
    case Conversion::Verbatim: out.append(v); return;
  }
}

void append_converted(std::string& out, const MappedColumn& m, std::string_view v) {
  switch (m.conversion) {
    case Conversion::Decimal:
      // Decimal holds no NaN or infinity: NULL where the column allows it, else 0; in a key
      // that would merge keys, so it is refused.
      if (special_number(v)) {
        if (m.key) {
          throw InvalidField(m.name, "a key column of type Decimal cannot hold " + std::string(v) +
                                         " (NaN and infinities)");
        }
        out += m.nullable ? "\\N" : "0";
        return;
      }
      out.append(v);
      return;
    case Conversion::Verbatim: escape_tsv(out, v); return;
    case Conversion::Bytea: escape_tsv(out, bytea(m, v)); return;
    default: append_raw(out, m, m.conversion, v);  // no character TabSeparated escapes
  }
}

bool append_plain(std::string& out, const MappedColumn& m, std::string_view v) {
  switch (m.conversion) {
    case Conversion::Verbatim: out.append(v); return true;  // COPY escaping is TSV's
    case Conversion::Float:
    case Conversion::Decimal:
    case Conversion::Boolean:
    case Conversion::Timestamp:
    case Conversion::Date: append_converted(out, m, v); return true;  // never escaped
    default: return false;
  }
}

}  // namespace clickpipe::clickhouse::detail
