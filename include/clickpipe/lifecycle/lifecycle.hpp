// Lifecycle: one pipe's state and context, changed only through the transition table.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

#include "clickpipe/lifecycle/lifecycle_context.hpp"
#include "clickpipe/lifecycle/transition_table.hpp"

namespace clickpipe {

// A transition that was taken: `row` indexes transition_table().
struct Transition {
  State from = State::Unknown;
  Trigger trigger = Trigger::Pause;
  State to = State::Unknown;
  TransitionKind kind = TransitionKind::External;
  std::size_t row = 0;

  friend constexpr bool operator==(const Transition&, const Transition&) = default;
};

enum class RejectReason : std::uint8_t {
  NotAllowed,       // a command that is never legal in this state
  GuardFailed,      // legal in this state, but not now (e.g. retry with nothing to go back to)
  UnexpectedEvent,  // an executor event that this state does not expect (a runtime bug)
  FinalState,       // the pipe is Terminated
  UnknownState,     // the state is not one this build knows
};

constexpr std::string_view to_string(RejectReason r) noexcept {
  switch (r) {
    case RejectReason::NotAllowed: return "not_allowed";
    case RejectReason::GuardFailed: return "guard_failed";
    case RejectReason::UnexpectedEvent: return "unexpected_event";
    case RejectReason::FinalState: return "final_state";
    case RejectReason::UnknownState: return "unknown_state";
  }
  return "not_allowed";
}

// A trigger that was refused. The lifecycle is unchanged.
struct Rejection {
  State state = State::Unknown;
  Trigger trigger = Trigger::Pause;
  RejectReason reason = RejectReason::NotAllowed;

  friend constexpr bool operator==(const Rejection&, const Rejection&) = default;
};

// A sentence for logs and API errors, e.g. "pause is not allowed in state Paused".
inline std::string message(const Rejection& r) {
  std::string what(to_string(r.trigger));
  std::string state(to_string(r.state));
  switch (r.reason) {
    case RejectReason::NotAllowed: return what + " is not allowed in state " + state;
    case RejectReason::GuardFailed: return what + " is not possible in state " + state + " now";
    case RejectReason::UnexpectedEvent:
      return "event " + what + " is not expected in state " + state;
    case RejectReason::FinalState: return what + " is refused: the pipe is " + state;
    case RejectReason::UnknownState: return what + " is refused: the pipe's state is unknown";
  }
  return what + " is refused in state " + state;
}

// Either the transition taken or the rejection; never both, never neither.
class ApplyResult {
 public:
  constexpr ApplyResult(Transition t) noexcept : v_(t) {}  // NOLINT(google-explicit-constructor)
  constexpr ApplyResult(Rejection r) noexcept : v_(r) {}   // NOLINT(google-explicit-constructor)

  constexpr bool ok() const noexcept { return std::holds_alternative<Transition>(v_); }
  constexpr explicit operator bool() const noexcept { return ok(); }
  // Precondition: ok().
  constexpr const Transition& transition() const { return std::get<Transition>(v_); }
  // Precondition: !ok().
  constexpr const Rejection& rejection() const { return std::get<Rejection>(v_); }

  friend constexpr bool operator==(const ApplyResult&, const ApplyResult&) = default;

 private:
  std::variant<Transition, Rejection> v_;
};

constexpr LifecycleContext apply_effect(Effect e, const TransitionRow& row,
                                        LifecycleContext c) noexcept {
  switch (e) {
    case Effect::None: break;
    case Effect::RecordFailure: c.failed_in = row.from; break;
    case Effect::ClearFailure:
      c.failed_in = State::Unknown;
      c.pause_for = PauseFor::Pause;
      break;
    case Effect::BeginPause:
      c.pause_for = row.trigger == Trigger::AddTables      ? PauseFor::AddTables
                    : row.trigger == Trigger::RemoveTables ? PauseFor::RemoveTables
                                                           : PauseFor::Pause;
      break;
    case Effect::BeginTableAddition: c.adding_tables = true; break;
    case Effect::RememberPaused: c.back_to_paused = true; break;
    case Effect::ForgetPaused: c.back_to_paused = false; break;
    case Effect::FinishLoad: c.adding_tables = false; break;
    case Effect::BeginResync:
      c = LifecycleContext{.mode = c.mode};
      c.resyncing = true;
      break;
    case Effect::FinishResync: c.resyncing = false; break;
  }
  return c;
}

class Lifecycle {
 public:
  // A new pipe: it starts in Provisioning.
  constexpr explicit Lifecycle(Mode mode = Mode::InitialLoadAndCdc) noexcept
      : state_(State::Provisioning), context_{.mode = mode} {}

  // A saved pipe, put back as it was: no transition is taken, so no entry work is implied.
  static constexpr Lifecycle restore(State state, const LifecycleContext& context) noexcept {
    Lifecycle l(context.mode);
    l.state_ = state;
    l.context_ = context;
    return l;
  }

  constexpr State state() const noexcept { return state_; }
  constexpr Mode mode() const noexcept { return context_.mode; }
  constexpr const LifecycleContext& context() const noexcept { return context_; }

  // What `trigger` would do now, without doing it.
  constexpr ApplyResult check(Trigger trigger) const noexcept {
    if (state_ == State::Unknown) return Rejection{state_, trigger, RejectReason::UnknownState};
    if (is_final(state_)) return Rejection{state_, trigger, RejectReason::FinalState};
    if (auto i = find_row(state_, trigger, context_)) {
      const TransitionRow& r = kTransitions[*i];
      return Transition{r.from, r.trigger, r.to, r.kind, *i};
    }
    if (has_rows(state_, trigger)) return Rejection{state_, trigger, RejectReason::GuardFailed};
    return Rejection{
        state_, trigger,
        is_command(trigger) ? RejectReason::NotAllowed : RejectReason::UnexpectedEvent};
  }

  // Takes the transition, or returns the rejection and leaves everything as it was.
  constexpr ApplyResult apply(Trigger trigger) noexcept {
    ApplyResult result = check(trigger);
    if (result.ok()) {
      const TransitionRow& r = kTransitions[result.transition().row];
      context_ = apply_effect(r.effect, r, context_);
      state_ = r.to;
    }
    return result;
  }

  // Exactly the commands apply() would accept now.
  constexpr TriggerSet allowed_commands() const noexcept {
    TriggerSet out;
    for (Trigger t : kAllTriggers) {
      if (is_command(t) && check(t).ok()) out.insert(t);
    }
    return out;
  }

  friend constexpr bool operator==(const Lifecycle&, const Lifecycle&) = default;

 private:
  State state_;
  LifecycleContext context_;
};

}  // namespace clickpipe
