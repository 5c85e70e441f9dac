#include "spool.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "clickpipe/error.hpp"
#include "clickpipe/postgres/stream.hpp"

namespace clickpipe::postgres {
namespace {

std::atomic<std::uint64_t> g_spilled_transactions{0};
std::atomic<std::uint64_t> g_spilled_changes{0};

int open_unnamed(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)) return fd;
  // A file system without O_TMPFILE: a private name, removed at once.
  std::string path = dir + "/clickpipe-spool.XXXXXX";
  fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd >= 0) ::unlink(path.c_str());
  return fd;
}

}  // namespace

SpillCounters spill_counters() noexcept {
  return {g_spilled_transactions.load(), g_spilled_changes.load()};
}

namespace {
std::string spill_directory(const std::string& dir) {
  if (!dir.empty()) return dir;
  std::error_code ec;
  const auto tmp = std::filesystem::temp_directory_path(ec);
  if (ec)
    throw TransientError("no temporary directory to spill a large transaction to: " + ec.message());
  return tmp.string();
}
}  // namespace

ChangeSpool::ChangeSpool(const std::string& dir) : dir_(spill_directory(dir)) {
  const int fd = open_unnamed(dir_);
  if (fd < 0) fail("creating a spill file");
  f_ = ::fdopen(fd, "w+b");
  if (!f_) {
    ::close(fd);
    fail("opening a spill file");
  }
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
  g_spilled_transactions.fetch_add(1);
}

ChangeSpool::~ChangeSpool() {
  if (f_) std::fclose(f_);
}

void ChangeSpool::fail(const char* what) const {
  throw TransientError(std::string(what) + " in " + dir_ + ": " + std::strerror(errno) +
                       " (a transaction too large for memory is spilled there; free space or "
                       "point TMPDIR elsewhere)");
}

namespace {

void put(std::FILE* f, const void* p, std::size_t n, std::uint64_t& bytes) {
  if (n && std::fwrite(p, 1, n, f) != n) throw std::system_error(errno, std::generic_category());
  bytes += n;
}
void put_u64(std::FILE* f, std::uint64_t v, std::uint64_t& bytes) { put(f, &v, sizeof v, bytes); }
void put_str(std::FILE* f, const std::string& s, std::uint64_t& bytes) {
  put_u64(f, s.size(), bytes);
  put(f, s.data(), s.size(), bytes);
}
void put_values(std::FILE* f, const Values& v, std::uint64_t& bytes) {
  put_u64(f, v.size(), bytes);
  for (const Datum& d : v) {
    const auto kind = static_cast<std::uint8_t>(d.kind);
    put(f, &kind, 1, bytes);
    if (d.kind == Datum::Kind::Text) put_str(f, d.text, bytes);
  }
}

bool get(std::FILE* f, void* p, std::size_t n) { return n == 0 || std::fread(p, 1, n, f) == n; }
std::uint64_t get_u64(std::FILE* f) {
  std::uint64_t v = 0;
  if (!get(f, &v, sizeof v)) throw TransientError("spill file: cut short");
  return v;
}
std::string get_str(std::FILE* f) {
  const std::uint64_t n = get_u64(f);
  if (n > (std::uint64_t{1} << 30))
    throw TransientError("spill file: corrupt length");  // 1 GiB: PostgreSQL's largest value
  std::string s(n, '\0');
  if (!get(f, s.data(), n)) throw TransientError("spill file: cut short");
  return s;
}
Values get_values(std::FILE* f) {
  const std::uint64_t n = get_u64(f);
  if (n > 65536) throw TransientError("spill file: corrupt column count");
  Values v(n);
  for (Datum& d : v) {
    std::uint8_t kind = 0;
    if (!get(f, &kind, 1) || kind > 2) throw TransientError("spill file: corrupt value");
    d.kind = static_cast<Datum::Kind>(kind);
    if (d.kind == Datum::Kind::Text) d.text = get_str(f);
  }
  return v;
}

}  // namespace

void ChangeSpool::write(const Change& c) {
  try {
    const auto kind = static_cast<std::uint8_t>(c.kind);
    put(f_, &kind, 1, bytes_);
    put_str(f_, c.table.schema, bytes_);
    put_str(f_, c.table.name, bytes_);
    put_u64(f_, c.position, bytes_);
    put_values(f_, c.values, bytes_);
    put_values(f_, c.old_key, bytes_);
  } catch (const std::system_error&) {
    fail("writing a spill file");
  }
  ++written_;
  g_spilled_changes.fetch_add(1);
}

void ChangeSpool::rewind() {
  if (std::fflush(f_) != 0) fail("writing a spill file");
  if (std::fseek(f_, 0, SEEK_SET) != 0) fail("rewinding a spill file");
  read_ = 0;
}

bool ChangeSpool::read(Change& c) {
  if (read_ == written_) return false;
  std::uint8_t kind = 0;
  if (!get(f_, &kind, 1) || kind > 3) throw TransientError("spill file: corrupt change");
  c.kind = static_cast<ChangeKind>(kind);
  c.table.schema = get_str(f_);
  c.table.name = get_str(f_);
  c.position = get_u64(f_);
  c.values = get_values(f_);
  c.old_key = get_values(f_);
  ++read_;
  return true;
}

}  // namespace clickpipe::postgres
