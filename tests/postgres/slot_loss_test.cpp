// A slot made to lose its WAL (a small max_slot_wal_keep_size) is reported as invalidated. Runs
// alone: the setting would endanger other tests' slots.
#include <gtest/gtest.h>

#include <cstdlib>

#include "../expect.hpp"
#include "../servers.hpp"
#include "clickpipe/postgres/connection.hpp"
#include "clickpipe/postgres/replication.hpp"

namespace clickpipe::postgres {
namespace {

ConnectionSettings settings() { return test::postgres_settings(); }

TEST(SlotLoss, AnInvalidatedSlotIsReportedAndNamesResync) {
  Connection c = Connection::open(settings());
  c.exec("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'");
  c.exec("SELECT pg_reload_conf()");
  struct Reset {
    Connection& c;
    ~Reset() {
      c.exec("ALTER SYSTEM RESET max_slot_wal_keep_size");
      c.exec("SELECT pg_reload_conf()");
    }
  } reset{c};
  const std::string slot = "clickpipe_lost_" + std::to_string(::getpid());
  Connection repl = Connection::open(settings(), true);
  const CreatedSlot created = create_slot(repl, c, slot);
  c.exec("CREATE TABLE IF NOT EXISTS wal_filler (id int8, v text)");
  std::string status;
  for (int round = 0; round < 20 && status != "lost"; ++round) {
    c.exec("INSERT INTO wal_filler SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g");
    c.exec("SELECT pg_switch_wal()");
    c.exec("CHECKPOINT");
    status = slot_status(c, slot)->wal_status;
  }
  ASSERT_EQ(status, "lost");
  const std::string what = test::message(test::expect_throws<SlotInvalidated>(
      [&] { check_slot(c, slot, created.info.consistent_point); }));
  EXPECT_NE(what.find("resync"), std::string::npos) << what;
  drop_slot(c, slot);
}

}  // namespace
}  // namespace clickpipe::postgres
