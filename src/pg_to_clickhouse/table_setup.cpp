// The TableSetup: definitions read from PostgreSQL, tables created in ClickHouse, the publication.
#include "clickpipe/executors/table_setup.hpp"

#include <vector>

#include "clickpipe/clickhouse/tables.hpp"
#include "clickpipe/postgres/catalog.hpp"
#include "clickpipe/postgres/replication.hpp"
#include "internal.hpp"

namespace clickpipe::pg_to_clickhouse::detail {
namespace {

using clickhouse::Client;
using clickhouse::TableLayout;

class TableSetup final : public clickpipe::TableSetup {
 public:
  explicit TableSetup(Config c) : c_(std::move(c)) {}

  void check_tables(std::span<const TableRef> tables) const override {
    check_destination_names(tables);
  }

  std::vector<TableDefinition> read_definitions(std::span<const TableRef> tables,
                                                ExecContext&) override {
    postgres::Connection conn = source(c_);
    postgres::preflight(conn, tables);
    return postgres::read_definitions(conn, tables);
  }

  void create_tables(std::span<const TableDefinition> tables, TableTarget target,
                     ExecContext& ctx) override {
    Client ch(c_.destination);
    for (const auto& def : tables) {
      ctx.throw_if_stopped();
      const TableLayout l = layout(ch, def);
      if (target == TableTarget::Resync) {
        clickhouse::create_resync_table(ch, l);
      } else {
        clickhouse::create_table(ch, l);
      }
    }
    std::vector<TableRef> refs;
    for (const auto& def : tables) refs.push_back(def.table);
    postgres::Connection conn = source(c_);
    postgres::ensure_publication(conn, publication_name(c_.pipe_id), refs);
  }

  void swap_resync_tables(std::span<const TableDefinition> tables, ExecContext& ctx) override {
    Client ch(c_.destination);
    for (const auto& def : tables) {
      ctx.throw_if_stopped();
      clickhouse::swap_resync(ch, destination_table(def.table));
    }
  }

  void remove_tables(std::span<const TableRef> tables, ExecContext&) override {
    postgres::Connection conn = source(c_);
    postgres::drop_from_publication(conn, publication_name(c_.pipe_id), tables);
  }

  void teardown(ExecContext&) override {
    postgres::Connection conn = source(c_);
    postgres::drop_slot(conn, slot_name(c_.pipe_id));
    postgres::drop_publication(conn, publication_name(c_.pipe_id));
  }

  bool can_drop_destination() const override { return true; }

  // Each table with the copies a resync makes; a table of that name that is not clickpipe's
  // (someone else's, made after) is kept and said so.
  void drop_destination_tables(std::span<const TableRef> tables, ExecContext& ctx) override {
    Client ch(c_.destination);
    for (const auto& t : tables) {
      const std::string name = destination_table(t);
      for (const std::string& n : {name, name + "_resync", name + "_old"}) {
        ctx.throw_if_stopped();
        if (auto why = clickhouse::drop_if_clickpipe(ch, n))
          ctx.progress.note("ClickHouse table " + n + " kept: " + *why);
      }
    }
  }

 private:
  Config c_;
};

}  // namespace

std::shared_ptr<clickpipe::TableSetup> make_table_setup(const Config& c) {
  return std::make_shared<TableSetup>(c);
}

}  // namespace clickpipe::pg_to_clickhouse::detail
