// Every lifecycle command as the control files and the HTTP API send it (tools/cli/commands.cpp):
// carried out on real pipes over the in-memory executors, refusals typed and changing nothing.
#include "commands.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../runtime/world.hpp"
#include "clickpipe/json.hpp"
#include "clickpipe/runtime/pipe_service.hpp"
#include "clickpipe/store/memory_store.hpp"

namespace clickpipe::test {
namespace {

using nlohmann::json;

struct Service {
  World w;
  std::unique_ptr<PipeService> service;

  Service() {
    ServiceOptions o;
    o.store = std::make_shared<MemoryStore>();
    o.logger = quiet_logger();
    o.executors = [this](const std::string& id, Mode) {
      return testing::with_faults(w.mem.executors(id), w.faults);
    };
    service = std::make_unique<PipeService>(o);
    service->create(w.config("a"));
  }
  ~Service() { w.faults->release(); }

  Pipe& a() { return *service->get("a"); }
  json run(const json& body, const std::string& id = "a") {
    return cli::execute_command(*service, id, body);
  }
};

TEST(Commands, PauseIsAcceptedThenRefusedWithTheTypedReasonAndItsHttpStatus) {
  Service s;
  ASSERT_TRUE(s.a().wait_for(State::Running, 10s));
  const json ok = s.run({{"command", "pause"}});
  EXPECT_EQ(ok["status"], "accepted") << ok.dump();
  EXPECT_EQ(cli::http_status_for(ok["status"].get<std::string>()), 200);
  ASSERT_TRUE(s.a().wait_for(State::Paused, 10s));

  const json again = s.run({{"command", "pause"}});
  EXPECT_EQ(again["status"], "rejected") << again.dump();
  EXPECT_EQ(again["rejection"]["trigger"], "pause");
  EXPECT_EQ(again["rejection"]["state"], "Paused");
  EXPECT_EQ(again["state"], "Paused");
  EXPECT_NE(again["message"].get<std::string>().find("Paused"), std::string::npos);
  EXPECT_EQ(cli::http_status_for("rejected"), 409);

  EXPECT_EQ(s.run({{"command", "resume"}})["status"], "accepted");
  ASSERT_TRUE(s.a().wait_for(State::Running, 10s));
}

TEST(Commands, StartAndStopAreTheClickPipesApiNamesOfResumeAndPause) {
  Service s;
  ASSERT_TRUE(s.a().wait_for(State::Running, 10s));
  EXPECT_EQ(s.run({{"command", "stop"}})["status"], "accepted");
  ASSERT_TRUE(s.a().wait_for(State::Paused, 10s));
  EXPECT_EQ(s.run({{"command", "start"}})["status"], "accepted");
  ASSERT_TRUE(s.a().wait_for(State::Running, 10s));
}

TEST(Commands, RetryOfAPipeThatHasNotFailedIsRejected) {
  Service s;
  ASSERT_TRUE(s.a().wait_for(State::Running, 10s));
  const json r = s.run({{"command", "retry"}});
  EXPECT_EQ(r["status"], "rejected");
  EXPECT_EQ(r["rejection"]["trigger"], "retry");
  EXPECT_EQ(s.a().state(), State::Running);
}

TEST(Commands, UpdateSettingsIsAPatchThatKeepsEveryOtherSetting) {
  Service s;
  ASSERT_TRUE(s.a().wait_for(State::Running, 10s));
  const Settings before = s.a().status().settings;
  const json r = s.run({{"command", "update-settings"},
                        {"settings", {{"pull_batch_size", 77}, {"sync_interval_ms", 1500}}}});
  EXPECT_EQ(r["status"], "accepted") << r.dump();
  const Settings after = s.a().status().settings;
  EXPECT_EQ(after.pull_batch_size, 77u);
  EXPECT_EQ(after.sync_interval, 1500ms);
  EXPECT_EQ(after.rows_per_partition, before.rows_per_partition);
  EXPECT_EQ(after.partitions_in_parallel, before.partitions_in_parallel);
}

TEST(Commands, AddTableThenCancelAddWhileItsCopyRuns) {
  Service s;
  ASSERT_TRUE(s.a().wait_for(State::Running, 10s));
  // The added table's first partition hangs until the cancel stops it.
  const std::uint32_t next = s.w.faults->calls(testing::op::copy_partition) + 1;
  s.w.faults->hang(testing::op::copy_partition, next);
  const json add = s.run({{"command", "add-table"}, {"tables", {"extra"}}});
  ASSERT_EQ(add["status"], "accepted") << add.dump();
  ASSERT_TRUE(eventually([&] { return s.w.faults->calls(testing::op::copy_partition) >= next; }));
  EXPECT_EQ(s.a().state(), State::Snapshot);
  const json cancel = s.run({{"command", "cancel-add"}});
  EXPECT_EQ(cancel["status"], "accepted") << cancel.dump();
  ASSERT_TRUE(s.a().wait_for(State::Running, 10s));
  EXPECT_EQ(s.a().status().tables, (std::vector<TableRef>{s.w.orders, s.w.users}));
}

TEST(Commands, RemoveTableTakesItOutOfThePipe) {
  Service s;
  ASSERT_TRUE(s.a().wait_for(State::Running, 10s));
  const json r = s.run({{"command", "remove-table"}, {"tables", {"public.users"}}});
  EXPECT_EQ(r["status"], "accepted") << r.dump();
  ASSERT_TRUE(testing::wait_until(s.a(), [](const PipeStatus& st) {
    return st.state == State::Running && st.tables.size() == 1;
  }));
  EXPECT_EQ(s.a().status().tables.front(), s.w.orders);
}

TEST(Commands, DeleteWithDropDestinationEndsThePipeAndItsTablesThenTheServiceForgetsIt) {
  Service s;
  ASSERT_TRUE(s.a().wait_for(State::Running, 10s));
  const json r = s.run({{"command", "delete"}, {"drop_destination", true}});
  EXPECT_EQ(r["status"], "accepted") << r.dump();
  ASSERT_TRUE(s.a().wait_for(State::Terminated, 10s));
  EXPECT_FALSE(s.w.mem.destination->has_table(destination_name(s.w.orders)));
  cli::reap_terminated(*s.service);
  EXPECT_EQ(s.service->get("a"), nullptr);
  EXPECT_EQ(s.run({{"command", "pause"}})["status"], "not_found");
}

TEST(Commands, BadCommandsAreInvalidNameTheFieldAndChangeNothing) {
  Service s;
  ASSERT_TRUE(s.a().wait_for(State::Running, 10s));
  const Settings before = s.a().status().settings;
  const struct {
    json body;
    const char* says;
  } cases[] = {
      {json::array(), "expected a JSON object"},
      {json::object(), "command: missing"},
      {{{"command", 7}}, "command: expected a string"},
      {{{"command", "explode"}}, "unknown command 'explode'"},
      {{{"command", "delete"}, {"drop_destinaton", true}}, "drop_destinaton: not a field"},
      {{{"command", "delete"}, {"drop_destination", "yes"}}, "drop_destination: expected true"},
      {{{"command", "pause"}, {"tables", {"x"}}}, "tables: not a field"},
      {{{"command", "add-table"}}, "tables: missing"},
      {{{"command", "add-table"}, {"tables", "extra"}}, "tables: expected an array"},
      {{{"command", "add-table"}, {"tables", {1}}}, "tables[0]: expected a string"},
      {{{"command", "add-table"}, {"tables", {"a."}}}, "tables[0]: expected schema.table"},
      {{{"command", "update-settings"}}, "settings: expected an object"},
      {{{"command", "update-settings"}, {"settings", {{"bogus", 1}}}}, "settings.bogus"},
      {{{"command", "update-settings"}, {"settings", {{"pull_batch_size", -5}}}},
       "settings.pull_batch_size"},
  };
  for (const auto& c : cases) {
    const json r = s.run(c.body);
    EXPECT_EQ(r["status"], "invalid") << c.body.dump() << " -> " << r.dump();
    EXPECT_NE(r["message"].get<std::string>().find(c.says), std::string::npos)
        << c.body.dump() << " -> " << r.dump();
    EXPECT_EQ(cli::http_status_for(r["status"].get<std::string>()), 400);
  }
  EXPECT_EQ(s.a().state(), State::Running);
  EXPECT_EQ(s.a().status().settings, before);
  EXPECT_EQ(s.a().status().tables.size(), 2u);
}

TEST(Commands, AnUnknownPipeIsNotFound) {
  Service s;
  const json r = s.run({{"command", "pause"}}, "nope");
  EXPECT_EQ(r["status"], "not_found");
  EXPECT_EQ(cli::http_status_for("not_found"), 404);
}

}  // namespace
}  // namespace clickpipe::test
