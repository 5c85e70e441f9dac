// Slots on the test server (./scripts/test.sh; CLICKPIPE_PG_* must be set, these tests never
// skip): the checks that refuse to skip changes, and a drop that waits for a closing stream.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>

#include "../expect.hpp"
#include "../print.hpp"
#include "pg_fixtures.hpp"

namespace clickpipe::postgres {
namespace {

using namespace std::chrono_literals;
using namespace pgtest;

TEST(Postgres, SlotChecksRefuseToSkipChanges) {
  Cdc x;
  x.c.exec("INSERT INTO " + x.table + " VALUES (1, 'a')");
  Lsn end;
  {
    LogicalStream s(settings(), x.slot, x.publication, x.start);
    ASSERT_EQ(drain(s, 1, &end).size(), 1u);
    s.confirm(end);
    ASSERT_TRUE(slot_confirms(x.c, x.slot, end));
  }
  EXPECT_NO_THROW(check_slot(x.c, x.slot, end));
  // The saved position is behind the slot.
  EXPECT_NE(test::message(test::expect_throws<FatalError>([&] {
              check_slot(x.c, x.slot, x.start);
            })).find("ahead of the saved position"),
            std::string::npos);
  EXPECT_NE(test::message(test::expect_throws<FatalError>([&] {
              check_slot(x.c, unique("never_created"), end);
            })).find("is missing"),
            std::string::npos);
  const auto st = slot_status(x.c, x.slot);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->wal_status, "reserved");
}

// The bug this pins: a slot dropped right after its stream was closed could still be held by the
// exiting walsender ("replication slot ... is active for PID ..."); seen failing a test under a
// loaded CI machine, and a pipe's teardown would fail the same way. Here the stream closes 300 ms
// after the drop starts: the drop waits for it.
TEST(Postgres, Regression_ASlotStillHeldByAClosingStreamIsDroppedOnceReleased) {
  Cdc x;
  const std::string slot = unique("drop_race");
  Lsn start;
  {
    Connection repl = Connection::open(settings(), true);
    start = create_slot(repl, x.c, slot).info.consistent_point;
  }
  auto stream = std::make_unique<LogicalStream>(settings(), slot, x.publication, start);
  stream->pull(10, 10ms, {});
  std::thread closer([&] {
    std::this_thread::sleep_for(300ms);
    stream.reset();
  });
  EXPECT_NO_THROW(drop_slot(x.c, slot));
  closer.join();
  EXPECT_FALSE(slot_status(x.c, slot).has_value());
}

}  // namespace
}  // namespace clickpipe::postgres
