// Limits of the PostgreSQL source that need the test server (CLICKPIPE_PG_* must be set; these
// tests never skip): a replication stream whose socket is numbered past FD_SETSIZE still waits
// (select() wrote past its fd_set there, which AddressSanitizer reports; poll() has no such
// bound), and a partition bound that is not a block number never reaches SQL.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "../expect.hpp"
#include "../postgres/pg_fixtures.hpp"
#include "clickpipe/postgres/snapshot.hpp"

namespace clickpipe::postgres {
namespace {

using namespace pgtest;

// Holds descriptors (copies of stdin) until the next one opened is numbered past FD_SETSIZE.
struct Crowd {
  std::vector<int> fds;
  Crowd() {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, FD_SETSIZE + 512);
    setrlimit(RLIMIT_NOFILE, &rl);
    while (fds.empty() || (fds.back() >= 0 && fds.back() < FD_SETSIZE + 8)) fds.push_back(::dup(0));
  }
  ~Crowd() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
};

TEST(Limits, AStreamWaitsOnASocketPastFdSetsize) {
  Cdc x;
  Crowd crowd;
  ASSERT_GE(crowd.fds.size(), static_cast<std::size_t>(FD_SETSIZE - 64))
      << "the descriptor limit stops below FD_SETSIZE: the test cannot place "
         "the socket past it";
  LogicalStream s(settings(), x.slot, x.publication, x.start);
  // Idle first: the stream waits on its socket, in slices, until the deadline.
  EXPECT_TRUE(s.pull(100, std::chrono::milliseconds(200), {}).changes.empty());
  x.c.exec("INSERT INTO " + x.table + " VALUES (1, 'after the wait', NULL)");
  const std::vector<Change> got = drain(s, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].values[1].text, "after the wait");
}

// A partition's bounds are pasted into the snapshot's ctid predicate. The store validates them when
// it loads a plan; CopyOut refuses a bound that is not a block number all the same, before it
// runs any SQL.
TEST(Limits, APartitionBoundThatIsNotABlockNumberIsRefusedBeforeAnySql) {
  Connection c = sql();
  const std::string name = unique("bounds");
  const std::string table = c.identifier(name);
  c.exec("CREATE TABLE " + table + " (id int8 PRIMARY KEY)");
  c.exec("INSERT INTO " + table + " SELECT generate_series(1, 10)");
  const TableDefinition def{
      TableRef{"public", name}, {Column{"id", "int8", 20, -1, false, 0}}, {"id"}};
  const std::string injected = "0,0)'::tid OR true OR ctid > '(0";
  for (const std::string& bound : {injected, std::string("1 "), std::string("-1"),
                                   std::string("12345678901"), std::string("1e3")}) {
    Partition begin;
    begin.begin = bound;
    const auto e =
        test::expect_throws<InvalidField>([&] { CopyOut copy(c, def, begin, ""); }, bound);
    ASSERT_TRUE(e) << bound;
    EXPECT_EQ(e->field(), "partition.begin");
    Partition end;
    end.end = bound;
    const auto f = test::expect_throws<InvalidField>([&] { CopyOut copy(c, def, end, ""); }, bound);
    ASSERT_TRUE(f) << bound;
    EXPECT_EQ(f->field(), "partition.end");
  }
  // Nothing ran: no transaction was left open (in one, now() is its start, not this statement's).
  EXPECT_EQ(std::string(c.exec("SELECT now() = statement_timestamp()").value(0, 0)), "t");
  Partition whole;
  whole.begin = "0";
  whole.end = "4294967295";
  std::size_t rows = 0;
  copy_partition(c, def, whole, "", [&](std::vector<Values>&& batch) { rows += batch.size(); });
  EXPECT_EQ(rows, 10u) << "block numbers still work";
  c.exec("DROP TABLE " + table);
}

}  // namespace
}  // namespace clickpipe::postgres
