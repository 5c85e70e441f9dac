// fmt formatters for the lifecycle's public types: fmt::format("{}", State::Running) == "Running".
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

#include "clickpipe/lifecycle/lifecycle.hpp"

namespace clickpipe::format_detail {
// Formats any type that has a to_string() returning text, honouring width/fill/alignment.
template <class T>
struct ViaToString : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const T& v, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(std::string_view(to_string(v)), ctx);
  }
};
}  // namespace clickpipe::format_detail

template <>
struct fmt::formatter<clickpipe::State> : clickpipe::format_detail::ViaToString<clickpipe::State> {
};
template <>
struct fmt::formatter<clickpipe::Mode> : clickpipe::format_detail::ViaToString<clickpipe::Mode> {};
template <>
struct fmt::formatter<clickpipe::Trigger>
    : clickpipe::format_detail::ViaToString<clickpipe::Trigger> {};
template <>
struct fmt::formatter<clickpipe::PauseFor>
    : clickpipe::format_detail::ViaToString<clickpipe::PauseFor> {};
template <>
struct fmt::formatter<clickpipe::RejectReason>
    : clickpipe::format_detail::ViaToString<clickpipe::RejectReason> {};

// "Running -[pause]-> Pausing"; internal transitions: "Running -[update_settings]- (stays)".
template <>
struct fmt::formatter<clickpipe::Transition> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const clickpipe::Transition& t, FormatContext& ctx) const {
    std::string text = t.kind == clickpipe::TransitionKind::Internal
                           ? fmt::format("{} -[{}]- (stays)", t.from, t.trigger)
                           : fmt::format("{} -[{}]-> {}", t.from, t.trigger, t.to);
    return fmt::formatter<std::string_view>::format(std::string_view(text), ctx);
  }
};

template <>
struct fmt::formatter<clickpipe::Rejection> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const clickpipe::Rejection& r, FormatContext& ctx) const {
    std::string text = clickpipe::message(r);
    return fmt::formatter<std::string_view>::format(std::string_view(text), ctx);
  }
};
