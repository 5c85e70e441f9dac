#include "control.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "clickpipe/store/state_store.hpp"
#include "commands.hpp"
#include "config.hpp"
#include "fd.hpp"
#include "logging.hpp"

namespace clickpipe::cli {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A name someone else may have chosen, safe to print: no terminal control sequences, bounded.
std::string printable(const std::string& name) {
  constexpr std::size_t kMax = 200;
  std::string out;
  for (std::size_t i = 0; i < name.size() && i < kMax; ++i) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    out += c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?';
  }
  return name.size() > kMax ? out + "..." : out;
}

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symlink";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "a regular file";
}

// The directory itself, never a symlink in its place: -1 with errno otherwise.
int open_dir(const fs::path& dir) {
  return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

// Why the directory open as `fd` is not private to this user ("" when it is).
std::string not_private(int fd, const fs::path& dir, const char* what) {
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return fmt::format("cannot inspect {}: {}", dir.string(), std::strerror(errno));
  const uid_t me = ::geteuid();
  if (st.st_uid != me) {
    return fmt::format("{} {} belongs to uid {}, not to this process's user (uid {}): chown {} {}",
                       what, dir.string(), st.st_uid, me, me, dir.string());
  }
  if (st.st_mode & 022) {
    return fmt::format(
        "{} {} is writable by group or others (mode {:04o}), who could then steer "
        "the pipe: chmod 700 {}",
        what, dir.string(), st.st_mode & 07777, dir.string());
  }
  return "";
}

// Writes `text` as `name` in the directory `dir_fd` so that a reader never sees half of it: a
// temp file created exclusively, 0600, never through a symlink, then renamed. Returns 0 or an
// errno.
int write_private(int dir_fd, const std::string& name, const std::string& text) {
  const std::string tmp = name + ".tmp";
  // A temp file left by a crash, or a symlink planted there, is removed (the link, not its
  // target); anything else makes the exclusive create fail.
  struct stat st {};
  if (::fstatat(dir_fd, tmp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))) {
    ::unlinkat(dir_fd, tmp.c_str(), 0);
  }
  const int fd =
      ::openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  int err = ::fchmod(fd, 0600) == 0 ? 0 : errno;  // the umask may have taken bits away
  for (std::size_t off = 0; !err && off < text.size();) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n >= 0) {
      off += static_cast<std::size_t>(n);
    } else if (errno != EINTR) {
      err = errno;
    }
  }
  if (::close(fd) != 0 && !err) err = errno;
  if (!err && ::renameat(dir_fd, tmp.c_str(), dir_fd, name.c_str()) != 0) err = errno;
  if (err) ::unlinkat(dir_fd, tmp.c_str(), 0);
  return err;
}

// Reads `name` in `dir_fd`, which lstat showed as `seen`, a regular file: opened without
// following a symlink or waiting on a FIFO, and checked again through the descriptor, since the
// entry may have been swapped since. Returns "" with the contents in `text`, or why not.
std::string read_small(int dir_fd, const std::string& name, const struct stat& seen,
                       std::string& text) {
  Fd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return fmt::format("cannot be opened ({})", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return fmt::format("cannot be inspected ({})", std::strerror(errno));
  if (!S_ISREG(st.st_mode) || st.st_dev != seen.st_dev || st.st_ino != seen.st_ino)
    return "was replaced while being opened";
  const std::string too_large = fmt::format("is larger than {} bytes", kMaxCommandBytes);
  if (static_cast<std::uintmax_t>(st.st_size) > kMaxCommandBytes) return too_large;
  text.clear();
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return fmt::format("cannot be read ({})", std::strerror(errno));
    }
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxCommandBytes) return too_large;  // it grew meanwhile
  }
  return "";
}

// Carries out one command file's text; returns the result document. The text is anyone's who
// could write the directory: every field is checked for its type before use.
json carry_out(PipeService& service, const std::string& text) {
  json cmd;
  try {
    cmd = json::parse(text);
  } catch (const json::parse_error& e) {
    return command_outcome("invalid", "not valid JSON at byte " + std::to_string(e.byte));
  }
  if (!cmd.is_object()) return command_outcome("invalid", "expected a JSON object");
  auto id = cmd.find("id");
  if (id == cmd.end()) return command_outcome("invalid", "id: missing");
  if (!id->is_string()) return command_outcome("invalid", "id: expected a string");
  return execute_command(service, id->get<std::string>(), cmd);
}

// Printed outside of any error path: a failing stderr must not become one.
void say(const std::string& message) noexcept {
  try {
    fmt::print(stderr, "{}\n", message);
  } catch (...) {
  }
}

}  // namespace

fs::path control_dir(const std::string& store) { return fs::path(store) / "control"; }

void make_private_dir(const fs::path& dir, const char* what) {
  const bool created = ::mkdir(dir.c_str(), 0700) == 0;
  if (const int err = errno; !created && err != EEXIST) {
    throw StoreError(
        err == ENOENT ? StoreErrorCode::NotFound : StoreErrorCode::Refused,
        fmt::format("cannot create {} {}: {}", what, dir.string(), std::strerror(err)));
  }
  Fd fd(open_dir(dir));
  if (const int err = errno; !fd) {
    throw StoreError(StoreErrorCode::Refused,
                     fmt::format("cannot open {} {} ({}): it must be a directory "
                                 "of this user's, not a symlink",
                                 what, dir.string(), std::strerror(err)));
  }
  // The umask may have taken bits away from what was just made.
  if (created && ::fchmod(fd.get(), 0700) != 0) {
    const int err = errno;
    throw StoreError(StoreErrorCode::Refused,
                     fmt::format("cannot chmod 700 {}: {}", dir.string(), std::strerror(err)));
  }
  if (auto why = not_private(fd.get(), dir, what); !why.empty())
    throw StoreError(StoreErrorCode::Refused, why);
}

int write_private_file(const fs::path& dir, const std::string& name, const std::string& text) {
  Fd fd(open_dir(dir));
  if (!fd) return errno;
  return write_private(fd.get(), name, text);
}

void CommandInbox::report(const std::string& key, const std::string& message) {
  try {
    still_present_.insert(key);
    if (!reported_.insert(key).second) return;
    if (log_) {
      log_event(*log_, spdlog::level::warn, "", "control", message, json::object());
    } else {
      say(message);
    }
  } catch (...) {
  }
}

void CommandInbox::answer() noexcept {
  try {
    still_present_.clear();
    Fd dir(open_dir(dir_));
    if (const int err = errno; !dir) {
      report("dir", fmt::format("control: cannot open {}: {}", dir_.string(), std::strerror(err)));
    } else if (auto why = not_private(dir.get(), dir_, "control directory"); !why.empty()) {
      report("dir", "control: " + why + "; no command is read until it is fixed");
    } else {
      answer_in(dir.get());
    }
    // A problem that went away is reported again if it comes back.
    std::erase_if(reported_, [&](const std::string& k) { return !still_present_.contains(k); });
  } catch (const std::exception& e) {
    report("error", std::string("control: ") + e.what());
  } catch (...) {
    report("error", "control: unknown error");
  }
}

// Only what was understood is logged: the command's name once it was taken or refused as a
// command, never the rest of the file (it is anyone's who could write the directory).
void CommandInbox::log_command(const json& result, const std::string& text) noexcept {
  if (!log_) return;
  try {
    const std::string status = result.value("status", std::string("invalid"));
    json fields{{"source", "control"}, {"result", status}};
    std::string pipe;
    std::string shown = "command";
    if (status != "invalid") {
      const json cmd = json::parse(text);
      pipe = cmd.value("id", std::string());
      shown = cmd.value("command", std::string("command"));
      fields["command"] = shown;
      if (auto it = result.find("state"); it != result.end()) fields["state"] = *it;
    }
    log_event(*log_, taken(status) ? spdlog::level::info : spdlog::level::warn, pipe, "command",
              shown + " from control: " + status, fields);
  } catch (...) {
  }
}

void CommandInbox::answer_in(int dir_fd) {
  std::vector<std::string> names;
  {
    // Listed through a descriptor of its own (closedir closes it); dir_fd stays for the rest.
    const int list_fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* d = list_fd >= 0 ? ::fdopendir(list_fd) : nullptr;
    if (!d) {
      const int err = errno;
      if (list_fd >= 0) ::close(list_fd);
      report("list", fmt::format("control: cannot list {}: {}", dir_.string(), std::strerror(err)));
      return;
    }
    for (;;) {
      errno = 0;
      const dirent* e = ::readdir(d);
      if (!e) {
        if (const int err = errno) {
          report("list",
                 fmt::format("control: cannot list {}: {}", dir_.string(), std::strerror(err)));
        }
        break;
      }
      const std::string name = e->d_name;
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".cmd") == 0) names.push_back(name);
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());

  for (const std::string& name : names) {
    const std::string key = "entry:" + name;
    const std::string shown = dir_.string() + "/" + printable(name);
    try {
      struct stat st {};
      if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone
      const bool too_large =
          S_ISREG(st.st_mode) && static_cast<std::uintmax_t>(st.st_size) > kMaxCommandBytes;
      if (S_ISLNK(st.st_mode) || too_large) {
        // Not read and not answered: an answer would go where whoever planted it chose.
        const bool removed = ::unlinkat(dir_fd, name.c_str(), 0) == 0;
        report(key, fmt::format("control: {} is {}: not read, {}", shown,
                                too_large ? fmt::format("larger than {} bytes", kMaxCommandBytes)
                                          : std::string("a symlink"),
                                removed ? "removed" : "and it cannot be removed"));
        continue;
      }
      if (!S_ISREG(st.st_mode)) {
        report(key, fmt::format("control: {} is {}, not a command file: not read and left alone",
                                shown, kind_of(st.st_mode)));
        continue;
      }
      std::string text;
      if (auto why = read_small(dir_fd, name, st, text); !why.empty()) {
        report(key, fmt::format("control: {} {}: not read", shown, why));
        continue;
      }
      // Removed before it is carried out, so that nothing can make it run twice.
      if (::unlinkat(dir_fd, name.c_str(), 0) != 0) {
        report(key, fmt::format("control: {} cannot be removed ({}): not carried out", shown,
                                std::strerror(errno)));
        continue;
      }
      json result;
      try {
        result = carry_out(service_, text);
      } catch (const std::exception& e) {
        result = command_outcome("invalid", e.what());
      }
      log_command(result, text);
      const std::string result_name = name.substr(0, name.size() - 4) + ".result";
      // Replaced, not thrown: a message may quote bytes that are not UTF-8.
      const std::string out = result.dump(-1, ' ', false, json::error_handler_t::replace);
      if (int err = write_private(dir_fd, result_name, out)) {
        report(key, fmt::format("control: cannot answer {}: {}", shown, std::strerror(err)));
      }
    } catch (const std::exception& e) {
      report(key, fmt::format("control: {}: {}", shown, e.what()));
    }
  }
}

int send(const std::string& store, const std::string& id, json command) {
  const fs::path dir = control_dir(store);
  Fd dir_fd(open_dir(dir));
  if (const int err = errno; !dir_fd) {
    if (err == ENOENT)
      fmt::print(stderr, "no pipe runs on {} (start it with clickpipe run)\n", store);
    else
      fmt::print(stderr, "cannot open {}: {}\n", dir.string(), std::strerror(err));
    return 1;
  }
  const std::string name = std::to_string(::getpid()) + "-" + std::to_string(std::time(nullptr));
  const std::string cmd = name + ".cmd";
  const std::string result = name + ".result";
  command["id"] = id;
  if (int err = write_private(dir_fd.get(), cmd, command.dump())) {
    fmt::print(stderr, "cannot write {}/{}: {}\n", dir.string(), cmd, std::strerror(err));
    return 1;
  }
  std::string text;
  std::string why = "no answer";
  for (int i = 0; i < 150; ++i) {
    struct stat st {};
    if (::fstatat(dir_fd.get(), result.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      why = S_ISREG(st.st_mode) ? read_small(dir_fd.get(), result, st, text)
                                : std::string("is ") + kind_of(st.st_mode);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (why == "no answer") {
    ::unlinkat(dir_fd.get(), cmd.c_str(), 0);
    fmt::print(stderr, "no answer within 30 s: is `clickpipe run` running on {}?\n", store);
    return 1;
  }
  ::unlinkat(dir_fd.get(), result.c_str(), 0);
  if (!why.empty()) {
    fmt::print(stderr, "the answer {}/{} cannot be used: it {}\n", dir.string(), result, why);
    return 1;
  }
  return print_answer(json::parse(text, nullptr, false), dir.string() + "/" + result);
}

int print_answer(const json& r, const std::string& where) {
  const auto it_status = r.is_object() ? r.find("status") : r.end();
  if (!r.is_object() || it_status == r.end() || !it_status->is_string()) {
    fmt::print(stderr, "the answer {} cannot be used\n", where);
    return 1;
  }
  const std::string st = it_status->get<std::string>();
  const auto it_message = r.find("message");
  const std::string message =
      it_message != r.end() && it_message->is_string() ? it_message->get<std::string>() : "";
  // Refusals on stderr, so a script sees the typed reason where errors go.
  fmt::print(taken(st) ? stdout : stderr, "{}{}\n", st, message.empty() ? "" : ": " + message);
  return taken(st) ? 0 : 1;
}

}  // namespace clickpipe::cli
