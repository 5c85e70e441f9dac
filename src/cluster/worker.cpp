#include "clickpipe/cluster/worker.hpp"

#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace clickpipe::cluster {

std::string_view to_string(WorkerEvent::Kind kind) noexcept {
  switch (kind) {
    case WorkerEvent::Kind::Joined: return "joined";
    case WorkerEvent::Kind::Created: return "created";
    case WorkerEvent::Kind::Claimed: return "claimed";
    case WorkerEvent::Kind::Released: return "released";
    case WorkerEvent::Kind::Fenced: return "fenced";
    case WorkerEvent::Kind::LeaseLost: return "lease_lost";
    case WorkerEvent::Kind::Broken: return "broken_record";
    case WorkerEvent::Kind::Error: return "store_error";
  }
  return "error";
}

ClusterWorker::ClusterWorker(WorkerOptions options) : options_(std::move(options)) {
  if (!options_.store) throw InvalidField("store", "a cluster worker needs a PgStore");
  if (!options_.service.logger)
    options_.service.logger = spdlog::default_logger()->clone("clickpipe");
  if (!options_.exclusive) options_.exclusive = [](const std::function<void()>& f) { f(); };
  if (!options_.on_command) {
    options_.on_command = [](PipeService&, const std::string&, const std::string&) {
      return std::string(R"({"status":"invalid","message":"this worker takes no commands"})");
    };
  }
  for (const PipeConfig& p : options_.pipes) p.validate();
  options_.service.store = options_.store;
  options_.service.restore = false;  // pipes run here only once claimed
  service_ = std::make_unique<PipeService>(options_.service);
  to_create_ = options_.pipes;
}

void ClusterWorker::start() {
  std::lock_guard lk(drain_mu_);
  if (drained_ || loop_.joinable()) return;
  options_.store->join();
  emit(WorkerEvent::Kind::Joined, "", std::to_string(options_.store->worker_id()));
  loop_ = std::jthread([this](std::stop_token stop) { loop(stop); });
}

ClusterWorker::~ClusterWorker() { drain(); }

void ClusterWorker::emit(WorkerEvent::Kind kind, const std::string& pipe,
                         const std::string& message) {
  if (options_.on_event) {
    options_.on_event(WorkerEvent{kind, pipe, message});
    return;
  }
  const auto level = kind == WorkerEvent::Kind::Error || kind == WorkerEvent::Kind::Broken
                         ? spdlog::level::err
                     : kind == WorkerEvent::Kind::Fenced || kind == WorkerEvent::Kind::LeaseLost
                         ? spdlog::level::warn
                         : spdlog::level::info;
  options_.service.logger->log(level, "worker {}: {} {}{}", options_.store->worker_id(),
                               to_string(kind), pipe, message.empty() ? "" : ": " + message);
}

void ClusterWorker::loop(std::stop_token stop) {
  // Promptly after a notice (a command, a released pipe), else every quarter lease.
  const auto tick = std::min(options_.store->lease() / 4, std::chrono::milliseconds(1000));
  while (!stop.stop_requested()) {
    try {
      step();
    } catch (const std::exception& e) {
      emit(WorkerEvent::Kind::Error, "", e.what());
    }
    if (stop.stop_requested()) break;
    options_.store->wait_for_notice(tick);
  }
}

void ClusterWorker::drop_local(const std::string& id) {
  options_.exclusive([&] { service_->release(id); });
}

void ClusterWorker::step() {
  PgStore& store = *options_.store;
  if (store.worker_id() == 0) {  // joining again failed before (the store was unreachable)
    store.join();
    emit(WorkerEvent::Kind::Joined, "", std::to_string(store.worker_id()));
    return;
  }
  if (store.lease_lost()) {
    // Another worker may be running these pipes already: stop them all, write nothing more.
    emit(WorkerEvent::Kind::LeaseLost, "", "stopping every pipe of this worker and joining again");
    for (const std::string& id : service_->list()) drop_local(id);
    broken_.clear();
    store.rejoin();
    emit(WorkerEvent::Kind::Joined, "", std::to_string(store.worker_id()));
    return;
  }
  for (const std::string& id : store.take_fenced()) {
    drop_local(id);
    store.release(id);  // a no-op unless the store still names this worker
    emit(WorkerEvent::Kind::Fenced, id, "another worker owns it now; stopped here");
  }
  create_configured();
  reconcile();
  balance();
  answer_commands();
}

// What runs here follows what the store says this worker owns: a claim or a new pipe whose
// answer was lost runs all the same, and a pipe the store gives to another is stopped.
void ClusterWorker::reconcile() {
  PgStore& store = *options_.store;
  const std::map<std::string, std::uint64_t> held = store.held();
  std::vector<std::string> local;
  options_.exclusive([&] { local = service_->list(); });  // also forgets deleted pipes
  for (const std::string& id : local) {
    if (!held.count(id)) {
      drop_local(id);
      emit(WorkerEvent::Kind::Fenced, id, "the store names another owner; stopped here");
    }
  }
  for (const auto& [id, token] : held) {
    if (broken_.count(id) || std::find(local.begin(), local.end(), id) != local.end()) continue;
    run_claim(store.read_claim(id));
  }
}

void ClusterWorker::run_claim(const Claim& c) {
  if (!c.record) {
    // Held, so no worker keeps taking it; `clickpipe status` shows it.
    broken_.insert(c.id);
    emit(WorkerEvent::Kind::Broken, c.id, c.broken);
    return;
  }
  try {
    Pipe* p = nullptr;
    options_.exclusive([&] { p = service_->adopt(*c.record); });
    emit(WorkerEvent::Kind::Claimed, c.id,
         p ? "token " + std::to_string(c.token) : "terminated: its record was removed");
  } catch (const std::exception& e) {
    // This worker cannot run it (not in its config, say): another may. Not taken again here
    // for a while.
    skip_until_[c.id] = std::chrono::steady_clock::now() + kSkipAfterRefusal;
    emit(WorkerEvent::Kind::Released, c.id, std::string("cannot run it here: ") + e.what());
    options_.store->release(c.id);
  }
}

void ClusterWorker::create_configured() {
  for (auto it = to_create_.begin(); it != to_create_.end();) {
    try {
      if (!options_.store->holds(it->id)) {
        options_.exclusive([&] { service_->create(*it); });
        emit(WorkerEvent::Kind::Created, it->id, "");
      }
      it = to_create_.erase(it);
    } catch (const StoreError& e) {
      if (e.code() == StoreErrorCode::AlreadyExists) {
        it = to_create_.erase(it);  // another worker made it first
      } else {
        emit(WorkerEvent::Kind::Error, it->id, e.what());
        ++it;  // tried again at the next step
      }
    }
  }
}

void ClusterWorker::balance() {
  PgStore& store = *options_.store;
  const ClusterView v = store.view();
  const std::size_t live = std::max<std::size_t>(v.live_workers, 1);
  const std::size_t share = (v.pipes + live - 1) / live;
  if (v.mine < share) {
    std::set<std::string> skip;
    const auto now = std::chrono::steady_clock::now();
    for (auto it = skip_until_.begin(); it != skip_until_.end();) {
      if (it->second <= now) {
        it = skip_until_.erase(it);
      } else {
        skip.insert(it->first);
        ++it;
      }
    }
    for (const Claim& c : store.claim(share - v.mine, skip)) run_claim(c);
  } else if (v.mine > share) {
    // Over the share (a worker joined): the last ones by id go, each stopped before release.
    std::vector<std::string> mine = store.owned();
    std::erase_if(mine, [this](const std::string& id) { return broken_.count(id) > 0; });
    std::sort(mine.rbegin(), mine.rend());
    for (std::size_t i = 0; i < v.mine - share && i < mine.size(); ++i) {
      drop_local(mine[i]);
      store.release(mine[i]);
      emit(WorkerEvent::Kind::Released, mine[i],
           "over this worker's share of " + std::to_string(share));
    }
  }
}

void ClusterWorker::answer_commands() {
  for (const StoreCommand& c : options_.store->take_commands()) {
    options_.store->answer_command(c.seq, options_.on_command(*service_, c.pipe_id, c.body));
  }
}

void ClusterWorker::drain() {
  std::lock_guard lk(drain_mu_);
  if (drained_) return;
  drained_ = true;
  loop_ = {};  // stops and joins the loop
  PgStore& store = *options_.store;
  try {
    if (!store.lease_lost()) store.set_draining();
  } catch (const std::exception& e) {
    emit(WorkerEvent::Kind::Error, "", e.what());
  }
  for (const std::string& id : service_->list()) {
    drop_local(id);  // at a safe point: the record holds where it stopped
    try {
      store.release(id);
      emit(WorkerEvent::Kind::Released, id, "draining");
    } catch (const std::exception& e) {
      emit(WorkerEvent::Kind::Error, id, e.what());  // its lease runs out instead
    }
  }
  try {
    store.leave();
  } catch (const std::exception& e) {
    emit(WorkerEvent::Kind::Error, "", e.what());
  }
}

}  // namespace clickpipe::cluster
