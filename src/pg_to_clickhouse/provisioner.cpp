// The Provisioner: both ends reachable before anything is created.
#include "clickpipe/executors/provisioner.hpp"

#include "internal.hpp"

namespace clickpipe::pg_to_clickhouse::detail {
namespace {

class Provisioner final : public clickpipe::Provisioner {
 public:
  explicit Provisioner(Config c) : c_(std::move(c)) {}
  void provision(const PipeInfo&, ExecContext& ctx) override {
    {
      postgres::Connection conn = source(c_);
      postgres::ping(conn);
    }
    clickhouse::Client ch(c_.destination);
    const auto v = ch.version();
    ctx.progress.note("source and destination reachable; ClickHouse " + v.to_string());
  }

 private:
  Config c_;
};

}  // namespace

std::shared_ptr<clickpipe::Provisioner> make_provisioner(const Config& c) {
  return std::make_shared<Provisioner>(c);
}

}  // namespace clickpipe::pg_to_clickhouse::detail
