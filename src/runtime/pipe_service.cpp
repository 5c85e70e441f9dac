#include "clickpipe/runtime/pipe_service.hpp"

#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

namespace clickpipe {
namespace {

// Removes a pipe's record once it is Terminated; the Pipe object is forgotten later, from outside
// its listener (a pipe may not be destroyed from its own listener).
class Reaper final : public TransitionListener {
 public:
  Reaper(std::shared_ptr<StateStore> store, std::shared_ptr<spdlog::logger> log)
      : store_(std::move(store)), log_(std::move(log)) {}
  void on_transition(const TransitionEvent& e) override {
    if (e.transition.to != State::Terminated) return;
    try {
      store_->remove(e.pipe_id);
    } catch (const std::exception& ex) {
      log_->error("pipe {} is terminated but its record stays: {}", e.pipe_id, ex.what());
    }
  }

 private:
  std::shared_ptr<StateStore> store_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace

PipeService::PipeService(ServiceOptions options) : options_(std::move(options)) {
  if (!options_.store) throw InvalidField("store", "a service needs a store");
  if (!options_.executors) throw InvalidField("executors", "a service needs an executor factory");
  if (!options_.logger) options_.logger = spdlog::default_logger()->clone("clickpipe");
  if (options_.max_concurrent_partitions > 0) {
    limit_ = std::make_shared<ConcurrencyLimit>(options_.max_concurrent_partitions);
  }
  reaper_ = std::make_shared<Reaper>(options_.store, options_.logger);

  if (!options_.restore) return;
  LoadResult loaded = options_.store->load_all();
  broken_ = std::move(loaded.broken);
  for (const auto& b : broken_) {
    options_.logger->error("pipe record {} cannot be read and is not run: {}", b.name, b.reason);
  }
  for (const PipeRecord& record : loaded.records) {
    if (record.lifecycle.state() == State::Terminated) {
      options_.store->remove(record.id);  // a delete that ended just before a stop
      continue;
    }
    try {
      // Checked before the id reaches the executor factory (it names slots and tables there).
      PipeConfig{record.id, record.lifecycle.mode(), record.tables, record.settings}.validate();
      auto pipe = std::make_unique<Pipe>(
          record, options_.executors(record.id, record.lifecycle.mode()), pipe_options(record.id));
      for (const auto& l : options_.listeners) pipe->add_listener(l);
      pipe->add_listener(reaper_);
      pipes_.emplace(record.id, std::move(pipe));
    } catch (const std::exception& e) {
      broken_.push_back({record.id, e.what()});
      options_.logger->error("pipe {} cannot be restored: {}", record.id, e.what());
    }
  }
  for (auto& [id, pipe] : pipes_) pipe->start();
}

PipeService::~PipeService() { shutdown(); }

PipeOptions PipeService::pipe_options(const std::string& id) {
  PipeOptions o;
  // Its own logger, named after the service's plus the id, so each line says which pipe it is.
  o.logger = options_.logger->clone(options_.logger->name() + ":" + id);
  o.clock = options_.clock;
  o.health = options_.health;
  o.store = options_.store;
  o.partition_limit = limit_;
  return o;
}

Pipe& PipeService::create(PipeConfig config) {
  config.validate();  // before the id reaches the executor factory or a message
  reap();
  std::lock_guard lk(mu_);
  if (pipes_.count(config.id)) {
    throw StoreError(StoreErrorCode::AlreadyExists, "a pipe '" + config.id + "' already exists");
  }
  const std::string id = config.id;
  const Mode mode = config.mode;
  return start_locked(
      std::make_unique<Pipe>(std::move(config), options_.executors(id, mode), pipe_options(id)));
}

Pipe* PipeService::adopt(const PipeRecord& record) {
  if (record.lifecycle.state() == State::Terminated) {
    options_.store->remove(record.id);
    return nullptr;
  }
  PipeConfig{record.id, record.lifecycle.mode(), record.tables, record.settings}.validate();
  reap();
  std::lock_guard lk(mu_);
  if (pipes_.count(record.id)) {
    throw StoreError(StoreErrorCode::AlreadyExists, "pipe '" + record.id + "' runs here already");
  }
  return &start_locked(std::make_unique<Pipe>(
      record, options_.executors(record.id, record.lifecycle.mode()), pipe_options(record.id)));
}

Pipe& PipeService::start_locked(std::unique_ptr<Pipe> pipe) {
  for (const auto& l : options_.listeners) pipe->add_listener(l);
  pipe->add_listener(reaper_);
  Pipe& p = *pipe;
  pipes_.emplace(p.id(), std::move(pipe));
  p.start();
  return p;
}

bool PipeService::release(const std::string& id) {
  std::unique_ptr<Pipe> gone;
  {
    std::lock_guard lk(mu_);
    auto it = pipes_.find(id);
    if (it == pipes_.end()) return false;
    gone = std::move(it->second);
    pipes_.erase(it);
  }
  gone->shutdown();  // outside the lock: joining its workers may take a moment
  return true;
}

Pipe* PipeService::get(const std::string& id) {
  reap();
  std::lock_guard lk(mu_);
  auto it = pipes_.find(id);
  return it == pipes_.end() ? nullptr : it->second.get();
}

std::vector<std::string> PipeService::list() {
  reap();
  std::lock_guard lk(mu_);
  std::vector<std::string> out;
  for (const auto& [id, p] : pipes_) out.push_back(id);
  return out;
}

CommandResult PipeService::remove(const std::string& id, DeleteOptions options) {
  Pipe* p = get(id);
  if (!p) return {CommandResult::Status::Invalid, std::nullopt, "no pipe '" + id + "'"};
  return p->remove(options);
}

std::vector<PipeStatus> PipeService::statuses() {
  std::lock_guard lk(mu_);
  std::vector<PipeStatus> out;
  for (const auto& [id, p] : pipes_) out.push_back(p->status());
  return out;
}

void PipeService::reap() {
  std::vector<std::unique_ptr<Pipe>> gone;
  {
    std::lock_guard lk(mu_);
    for (auto it = pipes_.begin(); it != pipes_.end();) {
      if (it->second->state() == State::Terminated) {
        gone.push_back(std::move(it->second));
        it = pipes_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Destroyed outside the lock: joining a pipe's worker may take a moment.
}

void PipeService::shutdown() {
  std::lock_guard lk(mu_);
  // Each pipe stops its work and joins; its last saved record is where a later open resumes.
  for (auto& [id, p] : pipes_) p->shutdown();
}

}  // namespace clickpipe
