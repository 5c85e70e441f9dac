// expect_throws<E>(f): runs f, fails the test unless it throws E, and returns the exception for
// checks on its message or fields. Replaces try { f(); FAIL(); } catch (const E&) { ... }, whose
// FAIL() is easy to forget (the test then passes when nothing is thrown).
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <optional>
#include <string>
#include <typeinfo>

namespace clickpipe::test {

template <class E, class F>
std::optional<E> expect_throws(F&& f, const std::string& what = "") {
  try {
    f();
  } catch (const E& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": threw " << typeid(e).name() << " (" << e.what() << "), not "
                  << typeid(E).name();
    return std::nullopt;
  }
  ADD_FAILURE() << what << ": nothing thrown, expected " << typeid(E).name();
  return std::nullopt;
}

// The message of what expect_throws caught, or "" when it caught nothing.
template <class E>
std::string message(const std::optional<E>& e) {
  return e ? std::string(e->what()) : std::string();
}

}  // namespace clickpipe::test
