// Errors, classified by type: callers catch TransientError to retry, FatalError to give up.
// Messages never carry secrets (passwords, tokens): whoever throws must leave them out.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace clickpipe {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Worth retrying: the same call may succeed later (a dropped connection, a busy server).
class TransientError : public Error {
 public:
  using Error::Error;
};

// Retrying cannot help (bad config, missing table, corrupt data): the pipe goes to Failed.
class FatalError : public Error {
 public:
  using Error::Error;
};

// Malformed input (config, stored state, JSON): names the offending field, e.g. "lifecycle.mode".
class InvalidField : public FatalError {
 public:
  InvalidField(std::string field, const std::string& problem)
      : FatalError(field + ": " + problem), field_(std::move(field)) {}
  const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

// Thrown by work that stops because its stop token was requested (ExecContext::throw_if_stopped,
// the PostgreSQL source, the runtime's waits). Not a failure: the work simply ended.
class Cancelled : public Error {
 public:
  Cancelled() : Error("cancelled") {}
};

}  // namespace clickpipe
