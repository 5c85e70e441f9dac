// A transaction's changes on disk: written in order while it streams in, read back in order once
// it committed. The file is unnamed (O_TMPFILE, or unlinked at once), so it vanishes with the
// process: after a crash the transaction is replayed from the slot anyway.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "clickpipe/change.hpp"

namespace clickpipe::postgres {

class ChangeSpool {
 public:
  // In `dir`, or the system's temporary directory when empty. Throws TransientError when it
  // cannot be created (a full or missing disk may be fixed; the slot keeps the changes).
  explicit ChangeSpool(const std::string& dir);
  ~ChangeSpool();
  ChangeSpool(const ChangeSpool&) = delete;
  ChangeSpool& operator=(const ChangeSpool&) = delete;

  void write(const Change& c);
  // Ends writing; reading starts from the first change.
  void rewind();
  // The next change, or false after the last one.
  bool read(Change& c);

  std::uint64_t changes() const noexcept { return written_; }
  std::uint64_t bytes() const noexcept { return bytes_; }

 private:
  [[noreturn]] void fail(const char* what) const;
  std::FILE* f_ = nullptr;
  std::string dir_;
  std::uint64_t written_ = 0;
  std::uint64_t read_ = 0;
  std::uint64_t bytes_ = 0;
};

}  // namespace clickpipe::postgres
