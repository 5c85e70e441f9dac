// A file descriptor, closed when it goes out of scope: the CLI reads the store's directories
// through descriptors (openat, O_NOFOLLOW) so that nothing swapped in meanwhile is followed.
#pragma once

#include <unistd.h>

namespace clickpipe::cli {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  const int fd_;
};

}  // namespace clickpipe::cli
