#include "cluster_store.hpp"

#include <map>
#include <thread>

#include "clickpipe/status.hpp"
#include "commands.hpp"
#include "control.hpp"
#include "status_view.hpp"

namespace clickpipe::cli {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::optional<json> answer_of(cluster::PgStore& store, std::int64_t seq) {
  const auto text = store.command_answer(seq);
  if (!text) return std::nullopt;
  json r = json::parse(*text, nullptr, false);
  if (!r.is_object()) return command_outcome("unavailable", "the worker's answer cannot be read");
  return r;
}

std::optional<json> wait_answer(cluster::PgStore& store, std::int64_t seq,
                                std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto r = answer_of(store, seq)) return r;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(50ms);
  }
}

}  // namespace

json send_through_store(cluster::PgStore& store, const std::string& id, const json& command,
                        std::chrono::milliseconds timeout) {
  try {
    if (!store.holds(id))
      return command_outcome("not_found", "no pipe '" + capped_error(id, 64) + "' in the store");
    const std::int64_t seq = store.submit_command(id, command.dump());
    if (auto r = wait_answer(store, seq, timeout)) return *r;
    const json gave_up = command_outcome(
        "unavailable", "no worker answered within " + std::to_string(timeout.count() / 1000) +
                           " s (is one running on this store?); the command was withdrawn");
    if (store.withdraw_command(seq, gave_up.dump())) return gave_up;
    // A worker took it just now: its answer is coming.
    if (auto r = wait_answer(store, seq, 5s)) return *r;
    return command_outcome("unavailable",
                           "a worker took the command but gave no answer in time; see "
                           "`clickpipe status` for its effect");
  } catch (const std::exception& e) {
    return command_outcome("unavailable", e.what());
  }
}

int send_to_store(const cluster::PgStoreOptions& options, const std::string& id,
                  const json& command) {
  auto store = cluster::PgStore::attach(options);
  return print_answer(send_through_store(*store, id, command), "from the store");
}

json read_store_status(const cluster::PgStoreOptions& options,
                       const std::optional<std::string>& id) {
  auto store = cluster::PgStore::attach(options);
  std::map<std::uint64_t, cluster::WorkerRow> workers;
  for (auto& w : store->workers()) workers[w.id] = w;
  std::map<std::string, std::optional<std::uint64_t>> owner;
  for (const auto& o : store->owners()) owner[o.id] = o.owner;
  const LoadResult loaded = store->load_all();
  json out = json::array();
  for (const PipeRecord& r : loaded.records) {
    if (id && r.id != *id) continue;
    json doc = record_document(r);
    const auto o = owner.find(r.id);
    doc["owner"] = nullptr;
    if (o != owner.end() && o->second && workers.count(*o->second)) {
      const auto& w = workers.at(*o->second);
      doc["owner"] = {{"id", w.id}, {"name", w.name}, {"address", w.address}};
    }
    out.push_back(std::move(doc));
  }
  for (const auto& b : loaded.broken) {
    if (!id || b.name == *id) out.push_back({{"file", b.name}, {"broken", b.reason}});
  }
  if (id && out.empty()) throw std::runtime_error("no pipe '" + *id + "' in the store");
  return out;
}

}  // namespace clickpipe::cli
