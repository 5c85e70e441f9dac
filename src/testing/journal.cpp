#include "journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "clickpipe/error.hpp"
#include "clickpipe/json.hpp"

namespace clickpipe::testing::journal {

using nlohmann::json;

json values(const Values& v) {
  json out = json::array();
  for (const Datum& d : v) {
    switch (d.kind) {
      case Datum::Kind::Null: out.push_back(nullptr); break;
      case Datum::Kind::Text: out.push_back(d.text); break;
      case Datum::Kind::UnchangedToast: out.push_back(json{{"toast", true}}); break;
    }
  }
  return out;
}

Values values_from(const json& j) {
  Values out;
  for (const json& d : j) {
    if (d.is_null()) {
      out.push_back(Datum::null());
    } else if (d.is_string()) {
      out.push_back(Datum::of(d.get<std::string>()));
    } else {
      out.push_back(Datum::unchanged_toast());
    }
  }
  return out;
}

json change(const Change& c) {
  return json{{"k", static_cast<int>(c.kind)}, {"t", c.table},
              {"l", c.commit_lsn.value},       {"p", c.position},
              {"v", values(c.values)},         {"o", values(c.old_key)}};
}

Change change_from(const json& j) {
  Change c;
  c.kind = static_cast<ChangeKind>(j.at("k").get<int>());
  c.table = j.at("t").get<TableRef>();
  c.commit_lsn = Lsn{j.at("l").get<std::uint64_t>()};
  c.position = j.at("p").get<std::uint64_t>();
  c.values = values_from(j.at("v"));
  c.old_key = values_from(j.at("o"));
  return c;
}

int open_and_replay(const std::string& path,
                    const std::function<void(const std::string&)>& replay) {
  std::string text;
  {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    text = s.str();
  }
  std::size_t complete = 0;
  for (std::size_t at = 0; at < text.size();) {
    const auto nl = text.find('\n', at);
    if (nl == std::string::npos) break;  // torn last line
    replay(text.substr(at, nl - at));
    at = nl + 1;
    complete = at;
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw FatalError("cannot open journal " + path + ": " + std::strerror(errno));
  if (complete != text.size() && ::ftruncate(fd, static_cast<off_t>(complete)) != 0) {
    ::close(fd);
    throw FatalError("cannot trim journal " + path + ": " + std::strerror(errno));
  }
  return fd;
}

void append(int fd, const std::string& line) {
  const std::string data = line + "\n";
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw FatalError(std::string("journal write failed: ") + std::strerror(errno));
    }
    off += static_cast<std::size_t>(n);
  }
}

}  // namespace clickpipe::testing::journal
