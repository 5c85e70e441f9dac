// Renders the transition table: Mermaid (for docs/), Graphviz DOT and a Markdown table.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clickpipe/lifecycle/transition_table.hpp"

namespace clickpipe {

inline std::string describe(Guard g) {
  switch (g.kind) {
    case GuardKind::Always: return {};
    case GuardKind::ModeIs: return std::string(to_string(static_cast<Mode>(g.arg)));
    case GuardKind::Resyncing: return "resyncing";
    case GuardKind::AddingTables: return "adding tables";
    case GuardKind::PausingFor:
      return "for " + std::string(to_string(static_cast<PauseFor>(g.arg)));
    case GuardKind::BackToPaused: return "from Paused";
    case GuardKind::FailedIn:
      return "failed in " + std::string(to_string(static_cast<State>(g.arg)));
  }
  return {};
}

inline std::string_view to_string(Effect e) noexcept {
  switch (e) {
    case Effect::None: return "";
    case Effect::RecordFailure: return "record failed-in state";
    case Effect::ClearFailure: return "clear failure";
    case Effect::BeginPause: return "remember why it pauses";
    case Effect::BeginTableAddition: return "begin table addition";
    case Effect::RememberPaused: return "return to Paused after";
    case Effect::ForgetPaused: return "return to Running after";
    case Effect::FinishLoad: return "end table addition";
    case Effect::BeginResync: return "begin resync";
    case Effect::FinishResync: return "end resync";
  }
  return "";
}

namespace diagram_detail {
inline std::string label(const TransitionRow& r) {
  std::string out(to_string(r.trigger));
  if (std::string g = describe(r.guard); !g.empty()) out += " [" + g + "]";
  return out;
}

// External rows grouped by (from, to) in table order, their labels joined.
inline std::vector<std::pair<const TransitionRow*, std::string>> edges() {
  std::vector<std::pair<const TransitionRow*, std::string>> out;
  for (const TransitionRow& r : kTransitions) {
    if (r.kind == TransitionKind::Internal) continue;
    bool merged = false;
    for (auto& [first, text] : out) {
      if (first->from == r.from && first->to == r.to) {
        text += ", " + label(r);
        merged = true;
        break;
      }
    }
    if (!merged) out.emplace_back(&r, label(r));
  }
  return out;
}
}  // namespace diagram_detail

// A Mermaid stateDiagram-v2 of every state-changing row (internal rows change no state).
inline std::string to_mermaid() {
  std::string out = "stateDiagram-v2\n    [*] --> Provisioning\n";
  for (const auto& [row, text] : diagram_detail::edges()) {
    out += "    ";
    out += to_string(row->from);
    out += " --> ";
    out += to_string(row->to);
    out += " : " + text + "\n";
  }
  out += "    Terminated --> [*]\n";
  return out;
}

inline std::string to_dot() {
  std::string out =
      "digraph lifecycle {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n"
      "  start [shape=point];\n  start -> Provisioning;\n";
  for (const auto& [row, text] : diagram_detail::edges()) {
    out += "  ";
    out += to_string(row->from);
    out += " -> ";
    out += to_string(row->to);
    out += " [label=\"" + text + "\"];\n";
  }
  out += "  Terminated [peripheries=2];\n}\n";
  return out;
}

// Every row, internal ones included, as a Markdown table in table order.
inline std::string to_markdown_table() {
  std::string out = "| from | trigger | guard | to | effect |\n|---|---|---|---|---|\n";
  for (const TransitionRow& r : kTransitions) {
    out += "| ";
    out += to_string(r.from);
    out += " | `";
    out += to_string(r.trigger);
    out += "` | " + describe(r.guard) + " | ";
    out +=
        r.kind == TransitionKind::Internal ? "(stays, no re-entry)" : std::string(to_string(r.to));
    out += " | ";
    out += to_string(r.effect);
    out += " |\n";
  }
  return out;
}

}  // namespace clickpipe
