// How requests reach ClickHouse: over HTTP (http://, https://) or to an engine embedded in this
// process (chdb://DIR, ClickHouse as the library libchdb.so). A Client owns one transport; a
// host may wrap it (ClientSettings::wrap) to observe or inject failures.
//
// Threading: a transport is used by one thread at a time. Errors: every call throws
// ClickHouseTransientError or ClickHouseFatalError (client.hpp), classified by ClickHouse's
// exception code; nothing else escapes except what a Producer throws.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "clickpipe/clickhouse/features.hpp"

namespace clickpipe::clickhouse {

// A table sent along with a query (ClickHouse's "external data"): the query reads it by `name`.
// Columns are named and typed in `structure` ("a String, b UInt64": names and types must not
// contain spaces or commas, as ClickHouse splits the structure on them).
struct ExternalTable {
  std::string name;
  std::string structure;
  std::string tsv;  // the rows, TabSeparated
};

// Produces an insert's TabSeparated body a piece at a time: appends the next piece (whole rows)
// to its argument and returns false once that piece was the last.
using Producer = std::function<bool(std::string& piece)>;

class Transport {
 public:
  virtual ~Transport() = default;
  // Runs one statement; returns what it printed (TabSeparated unless the SQL says otherwise).
  virtual std::string query(std::string_view sql) = 0;
  // Runs one SELECT that reads `table` by its name.
  virtual std::string query(std::string_view sql, const ExternalTable& table) = 0;
  // Runs `insert_sql` ("INSERT INTO t (a, b)", no FORMAT) with a TabSeparated body from
  // `produce`, with `settings` pinned for this statement. When `produce` throws, the body is
  // ended with a line no table parses, so ClickHouse refuses the insert (whole, when the body is
  // one block: under max_insert_block_size rows and min_insert_block_size_bytes), and the
  // exception is rethrown.
  virtual void insert(std::string_view insert_sql, std::span<const Setting> settings,
                      const Producer& produce) = 0;
  // For messages: where requests go (never a password).
  virtual std::string describe() const = 0;
};

}  // namespace clickpipe::clickhouse
