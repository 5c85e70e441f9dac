#include <gtest/gtest.h>

#include <string>

#include "clickpipe/clickpipe.hpp"

namespace clickpipe {
namespace {

TEST(Format, EnumsPrintTheirNamesAndHonourWidth) {
  EXPECT_EQ(fmt::format("{}", State::Running), "Running");
  EXPECT_EQ(fmt::format("[{:>9}]", State::Setup), "[    Setup]");
  EXPECT_EQ(fmt::format("{}", Mode::SnapshotOnly), "snapshot_only");
  EXPECT_EQ(fmt::format("{}", Trigger::AddTables), "add_tables");
  EXPECT_EQ(fmt::format("{}", RejectReason::FinalState), "final_state");
}

TEST(Format, TransitionsAndRejections) {
  Lifecycle l;
  EXPECT_EQ(fmt::format("{}", l.apply(Trigger::Provisioned).transition()),
            "Provisioning -[provisioned]-> Setup");
  EXPECT_EQ(fmt::format("{}", l.apply(Trigger::Pause).rejection()),
            "pause is not allowed in state Setup");
  EXPECT_EQ(fmt::format("{}", l.apply(Trigger::SnapshotDone).rejection()),
            "event snapshot_done is not expected in state Setup");
}

TEST(Diagram, MermaidHasEveryStateChangingRow) {
  const std::string m = to_mermaid();
  EXPECT_EQ(m.rfind("stateDiagram-v2\n", 0), 0u);
  for (const TransitionRow& r : kTransitions) {
    if (r.kind == TransitionKind::Internal) continue;
    const std::string edge = fmt::format("    {} --> {} : ", r.from, r.to);
    const auto at = m.find(edge);
    ASSERT_NE(at, std::string::npos) << edge;
    const std::string line = m.substr(at, m.find('\n', at) - at);
    EXPECT_NE(line.find(std::string(to_string(r.trigger))), std::string::npos) << line;
  }
}

TEST(Diagram, DotAndMarkdownCoverTheTable) {
  const std::string dot = to_dot();
  EXPECT_NE(dot.find("Pausing -> Paused [label=\""), std::string::npos);
  const std::string md = to_markdown_table();
  std::size_t lines = 0;
  for (char c : md) lines += c == '\n' ? 1 : 0;
  EXPECT_EQ(lines, kTransitions.size() + 2);
}

}  // namespace
}  // namespace clickpipe
