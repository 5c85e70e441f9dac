#include "status_view.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "clickpipe/json.hpp"
#include "clickpipe/store/file_store.hpp"
#include "clickpipe/store/file_system.hpp"
#include "clickpipe/utf8.hpp"
#include "fd.hpp"
#include "telemetry.hpp"

namespace clickpipe::cli {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// ---- reading ----

// The status directory when its files can be believed: a directory, not a symlink, of the
// store's owner, that nobody else may write (else anyone could show the operator made-up
// figures). -1 otherwise, and live files are then ignored.
int open_status_dir(const std::string& store) {
  struct stat owner {};
  if (::lstat(store.c_str(), &owner) != 0) return -1;
  const std::string dir = status_dir(store);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_uid != owner.st_uid || (st.st_mode & 022) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// `name` in `dir_fd` if it is a regular file of at most kMaxLiveStatusBytes: opened without
// following a symlink or waiting on a FIFO.
bool read_live_file(int dir_fd, const std::string& name, std::string& text) {
  Fd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return false;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<std::uintmax_t>(st.st_size) > kMaxLiveStatusBytes)
    return false;
  text.clear();
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxLiveStatusBytes) return false;  // it grew after fstat
  }
}

// The pipe's live document if one was published for it recently.
std::optional<json> live_document(int dir_fd, const std::string& id, TimePoint now) {
  std::string text;
  if (dir_fd < 0 || !is_pipe_id(id) || !read_live_file(dir_fd, id + ".json", text))
    return std::nullopt;
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return std::nullopt;  // also what a parse error gives
  const auto doc_id = doc.find("id");
  const auto published = doc.find("published_at");
  if (doc_id == doc.end() || !doc_id->is_string() || doc_id->get<std::string>() != id ||
      published == doc.end() || !published->is_string())
    return std::nullopt;
  const auto at = parse_published_at(published->get<std::string>());
  // Both ways: a clock stepped back must not make an old file fresh for ever.
  if (!at || now - *at >= kLiveStatusMaxAge || *at - now >= kLiveStatusMaxAge) return std::nullopt;
  return doc;
}

}  // namespace

// What the saved record tells, when no running process publishes the pipe.
json record_document(const PipeRecord& r) {
  json tables = json::array();
  for (const auto& t : r.tables) tables.push_back(t.qualified());
  json stopped = json::array();
  for (const auto& st : r.stopped_tables)
    stopped.push_back({{"table", st.table.qualified()}, {"reason", st.reason}});
  return {{"id", r.id},
          {"state", r.lifecycle.state()},
          {"intent", std::string(to_string(r.intent))},
          {"tables", std::move(tables)},
          {"confirmed", r.confirmed ? json(*r.confirmed) : json(nullptr)},
          {"stopped_tables", std::move(stopped)},
          {"last_error", r.last_error ? json(r.last_error->message) : json(nullptr)},
          {"live", false}};
}

namespace {

// ---- rendering ----

constexpr std::size_t kLineWidth = 120;     // what the pipe line aims to fit in
constexpr std::size_t kMinErrorWidth = 30;  // the last error gets at least this much
constexpr std::size_t kMaxRetryWidth = 40;
constexpr std::size_t kMaxReasonWidth = 100;
constexpr std::string_view kEllipsis = "\xE2\x80\xA6";  // "…"

// Text for one cell: line breaks and tabs become spaces; other control characters (C0, DEL
// and the C1 range, which some terminals take as escape sequences) become '?'; bytes that are
// not UTF-8 become U+FFFD.
std::string clean(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const std::size_t n = utf8_sequence_length(text);
    const auto c = static_cast<unsigned char>(text[0]);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      text.remove_prefix(1);
      continue;
    }
    if (c == '\n' || c == '\r' || c == '\t') {
      out += ' ';
    } else if (c < 0x20 || c == 0x7f ||
               (n == 2 && c == 0xC2 && static_cast<unsigned char>(text[1]) < 0xA0)) {
      out += '?';
    } else {
      out.append(text.substr(0, n));
    }
    text.remove_prefix(n);
  }
  return out;
}

// Columns a clean text takes: one per character (wide characters are rare in these names).
std::size_t width(std::string_view text) {
  std::size_t n = 0;
  for (const char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// A clean text cut to `max` columns, ending in "…" when cut.
std::string cut(const std::string& text, std::size_t max) {
  if (width(text) <= max) return text;
  if (max == 0) return {};
  std::size_t chars = 0, i = 0;
  for (; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
    if (chars == max - 1) break;
    ++chars;
  }
  return text.substr(0, i) + std::string(kEllipsis);
}

const json* field(const json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> number_of(const json* v) {
  if (!v || !v->is_number()) return std::nullopt;
  return v->get<double>();
}

std::string text_of(const json* v) {
  if (!v) return "-";
  if (v->is_string()) return clean(v->get_ref<const std::string&>());
  if (v->is_number_unsigned()) return std::to_string(v->get<std::uint64_t>());
  if (v->is_number_integer()) return std::to_string(v->get<std::int64_t>());
  if (v->is_number_float()) return fmt::format("{:.1f}", v->get<double>());
  if (v->is_boolean()) return v->get<bool>() ? "yes" : "no";
  return "-";
}

std::string bytes_text(double b) {
  if (b < 1024) return fmt::format("{:.0f} B", b);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  std::size_t u = 0;
  b /= 1024;
  while (b >= 1024 && u + 1 < std::size(units)) {
    b /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", b, units[u]);
}

std::string duration_text(double s) {
  if (!std::isfinite(s) || s < 0) return "-";
  if (s < 10) return fmt::format("{:.1f}s", s);
  const auto whole = static_cast<std::uint64_t>(std::llround(s));
  if (whole < 60) return fmt::format("{}s", whole);
  if (whole < 3600) return fmt::format("{}m{:02}s", whole / 60, whole % 60);
  if (whole < 86400) return fmt::format("{}h{:02}m", whole / 3600, whole % 3600 / 60);
  return fmt::format("{}d{:02}h", whole / 86400, whole % 86400 / 3600);
}

std::string rate_text(const json* v) {
  const auto r = number_of(v);
  return r ? fmt::format("{:.1f}", *r) : "-";
}

// Rows of cells, left-aligned in columns; the last column is not padded.
std::string layout(const std::vector<std::vector<std::string>>& rows, const std::string& indent) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], width(row[i]));
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line = indent;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - width(row[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + '\n';
  }
  return out;
}

std::string lag_text(const json& doc) {
  const json* cdc = field(doc, "cdc");
  const auto bytes = number_of(cdc ? field(*cdc, "lag_bytes") : nullptr);
  if (!bytes) return "-";
  const auto secs = number_of(field(*cdc, "lag_seconds"));
  return bytes_text(*bytes) + " / " + (secs ? duration_text(*secs) : "-");
}

std::string retry_text(const json& doc) {
  const json* r = field(doc, "retry");
  if (!r || !r->is_object()) return "-";
  const auto attempt = number_of(field(*r, "attempt"));
  const auto max = number_of(field(*r, "max_attempts"));
  std::string text = text_of(field(*r, "operation"));
  if (attempt) text += fmt::format(" #{:.0f}", *attempt);
  if (attempt && max && *max > 0) text += fmt::format("/{:.0f}", *max);
  return cut(text, kMaxRetryWidth);
}

std::string error_text(const json& doc) {
  const json* e = field(doc, "last_error");
  if (e && e->is_object()) return text_of(field(*e, "message"));  // live: an object
  return text_of(e);                                              // saved record: the message
}

std::string confirmed_text(const json& doc) {
  if (const json* cdc = field(doc, "cdc"); cdc && field(*cdc, "confirmed"))
    return text_of(field(*cdc, "confirmed"));
  return text_of(field(doc, "confirmed"));
}

// The entry of `list` (an array of objects) whose "table" is `table`.
const json* by_table(const json* list, const std::string& table) {
  if (!list || !list->is_array()) return nullptr;
  for (const json& e : *list) {
    const json* t = field(e, "table");
    if (t && t->is_string() && t->get_ref<const std::string&>() == table) return &e;
  }
  return nullptr;
}

// The per-table lines of one pipe, and its stopped tables ("" when it has neither).
std::string table_section(const json& doc) {
  const json* snapshot = field(doc, "snapshot");
  const json* cdc = field(doc, "cdc");
  const json* cdc_tables = cdc ? field(*cdc, "tables") : nullptr;
  // The pipe's tables first, in its order, then any only the load or CDC still mention.
  std::vector<std::string> names;
  const auto add = [&](const json* list, bool objects) {
    if (!list || !list->is_array()) return;
    for (const json& e : *list) {
      const json* t = objects ? field(e, "table") : &e;
      if (!t || !t->is_string()) continue;
      const std::string& name = t->get_ref<const std::string&>();
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
  };
  add(field(doc, "tables"), false);
  add(snapshot, true);
  add(cdc_tables, true);

  std::vector<std::vector<std::string>> rows;
  rows.push_back({"TABLE", "ROWS", "PARTITIONS", "ROWS/S", "ETA", "CDC CHANGES"});
  for (const std::string& name : names) {
    const json* load = by_table(snapshot, name);
    const json* changes = by_table(cdc_tables, name);
    std::string partitions = "-";
    if (load) {
      const json* planned = field(*load, "planned");
      const auto done = number_of(field(*load, "partitions_done"));
      const auto total = number_of(field(*load, "partitions_total"));
      if (!(planned && planned->is_boolean() && !planned->get<bool>()) && done && total)
        partitions = fmt::format("{:.0f}/{:.0f}", *done, *total);
    }
    const auto eta = number_of(load ? field(*load, "eta_s") : nullptr);
    rows.push_back({cut(clean(name), 64), text_of(load ? field(*load, "rows_copied") : nullptr),
                    partitions, rate_text(load ? field(*load, "rows_per_s") : nullptr),
                    eta ? duration_text(*eta) : "-",
                    text_of(changes ? field(*changes, "changes") : nullptr)});
  }
  std::string out = rows.size() > 1 ? layout(rows, "  ") : "";
  if (const json* stopped = field(doc, "stopped_tables"); stopped && stopped->is_array()) {
    for (const json& st : *stopped) {
      out += fmt::format("  stopped {}: {}\n", cut(text_of(field(st, "table")), 64),
                         cut(text_of(field(st, "reason")), kMaxReasonWidth));
    }
  }
  return out;
}

}  // namespace

std::string status_dir(const std::string& store) { return (fs::path(store) / "status").string(); }

json read_status(const std::string& store, const std::optional<std::string>& id) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(store)) {
    if (entry.path().extension() != ".json") continue;
    const std::string name = entry.path().filename().string();
    if (!id || name == *id + ".json") files.push_back(name);
  }
  if (id && files.empty()) throw std::runtime_error("no pipe '" + *id + "' in " + store);
  std::sort(files.begin(), files.end());

  const Fd live_dir(open_status_dir(store));
  const TimePoint now = std::chrono::system_clock::now();
  json out = json::array();
  for (const std::string& name : files) {
    try {
      // Not a plain read: a FIFO or a symlink planted as a record must not hang or redirect us.
      std::string text;
      if (const int err = posix_file_system()->read_file((fs::path(store) / name).string(), text))
        throw std::runtime_error(std::strerror(err));
      const PipeRecord r = decode_record(text);
      // As the store loads it: the file of one pipe cannot speak for another.
      if (name != r.id + ".json")
        throw std::runtime_error("holds pipe '" + r.id + "', which belongs in another file");
      auto live = live_document(live_dir.get(), r.id, now);
      out.push_back(live ? std::move(*live) : record_document(r));
    } catch (const std::exception& e) {
      out.push_back({{"file", name}, {"broken", e.what()}});
    }
  }
  return out;
}

std::string render_status_table(const json& doc) {
  std::vector<const json*> pipes;
  std::vector<std::pair<std::string, std::string>> broken;  // file or name, reason
  const auto take = [&](const json& e) {
    if (const json* b = field(e, "broken"))
      broken.emplace_back(text_of(field(e, "file")), text_of(b));
    else if (e.is_object())
      pipes.push_back(&e);
  };
  if (doc.is_array()) {
    for (const json& e : doc) take(e);
  } else if (const json* list = field(doc, "pipes"); list && list->is_array()) {
    for (const json& e : *list) take(e);
    if (const json* b = field(doc, "broken"); b && b->is_array()) {
      for (const json& e : *b)
        broken.emplace_back(text_of(field(e, "name")), text_of(field(e, "reason")));
    }
  } else {
    take(doc);
  }

  std::string out;
  if (pipes.empty() && broken.empty()) return "no pipes\n";
  if (!pipes.empty()) {
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"ID", "STATE", "LAG", "CHANGES/S", "CONFIRMED", "RETRY", "LAST ERROR"});
    std::vector<std::string> errors;
    for (const json* p : pipes) {
      const json* cdc = field(*p, "cdc");
      rows.push_back({cut(text_of(field(*p, "id")), 53), text_of(field(*p, "state")), lag_text(*p),
                      rate_text(cdc ? field(*cdc, "changes_per_s") : nullptr), confirmed_text(*p),
                      retry_text(*p), ""});
      errors.push_back(error_text(*p));
    }
    // The last error takes what the other columns leave of the line.
    std::vector<std::size_t> widths(rows[0].size() - 1, 0);
    for (const auto& row : rows) {
      for (std::size_t i = 0; i + 1 < row.size(); ++i)
        widths[i] = std::max(widths[i], width(row[i]));
    }
    std::size_t used = 0;
    for (const std::size_t w : widths) used += w + 2;
    const std::size_t room =
        used + kMinErrorWidth < kLineWidth ? kLineWidth - used : kMinErrorWidth;
    for (std::size_t i = 0; i < errors.size(); ++i) rows[i + 1].back() = cut(errors[i], room);
    out += layout(rows, "");

    for (const json* p : pipes) {
      const std::string section = table_section(*p);
      if (section.empty()) continue;
      const json* live = field(*p, "live");
      const bool from_record = live && live->is_boolean() && !live->get<bool>();
      out += fmt::format("\n{}{}:\n{}", cut(text_of(field(*p, "id")), 53),
                         from_record ? " (saved record: no running process publishes it)" : "",
                         section);
    }
  }
  if (!broken.empty()) out += pipes.empty() ? "" : "\n";
  for (const auto& [name, reason] : broken)
    out += fmt::format("broken record {}: {}\n", cut(name, 100), cut(reason, kMaxReasonWidth));
  return out;
}

}  // namespace clickpipe::cli
