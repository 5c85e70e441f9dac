// Pipe's public API. The work behind it lives in the files pipe_impl.hpp lists, one job each.
#include "clickpipe/runtime/pipe.hpp"

#include <fmt/format.h>
#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <string_view>
#include <utility>

#include "pipe_impl.hpp"

namespace clickpipe {

using runtime_detail::Durable;

namespace {

// The id names the PostgreSQL slot and publication `clickpipe_<id>`, and slot names take only
// a-z, 0-9 and _, at most 63 bytes. Refused here, before anything exists: found out at the
// slot's creation, the destination tables and the publication would already be there.
constexpr std::size_t kMaxIdLength = 63 - std::string_view("clickpipe_").size();

bool id_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

void check_id(const std::string& id) {
  if (!id.empty() && id.size() <= kMaxIdLength && std::all_of(id.begin(), id.end(), id_char))
    return;
  std::string why = fmt::format(
      "must be 1 to {} characters of a-z, 0-9 and _ (it names the PostgreSQL replication slot and "
      "publication clickpipe_<id>)",
      kMaxIdLength);
  // Upper case and '-' have one obvious repair; anything else is left to the user. The id itself
  // is not echoed: it may hold anything, the suggestion only the allowed characters.
  std::string fixed;
  bool fixable = !id.empty() && id.size() <= kMaxIdLength;
  for (char c : id) {
    if (!fixable) break;
    if (id_char(c)) {
      fixed += c;
    } else if (c >= 'A' && c <= 'Z') {
      fixed += static_cast<char>(c - 'A' + 'a');
    } else if (c == '-') {
      fixed += '_';
    } else {
      fixable = false;
    }
  }
  if (fixable) why += fmt::format("; \"{}\" would do", fixed);
  throw InvalidField("id", why);
}

}  // namespace

void PipeConfig::validate() const {
  check_id(id);
  if (tables.empty()) throw InvalidField("tables", "a pipe needs at least one table");
  std::set<TableRef> seen;
  for (std::size_t i = 0; i < tables.size(); ++i) {
    const std::string field = fmt::format("tables[{}]", i);
    if (tables[i].name.empty()) throw InvalidField(field + ".name", "must not be empty");
    if (tables[i].schema.empty()) throw InvalidField(field + ".schema", "must not be empty");
    if (!seen.insert(tables[i]).second)
      throw InvalidField(field, "duplicate table " + tables[i].qualified());
  }
  settings.validate();
}

namespace {

std::shared_ptr<spdlog::logger> default_logger(const std::string& id) {
  return spdlog::default_logger()->clone("clickpipe:" + id);
}

void check_executors(const Executors& ex) {
  if (!ex.provisioner || !ex.table_setup || !ex.snapshot || !ex.cdc) {
    throw InvalidField("executors", "all four executors are required");
  }
}

}  // namespace

Pipe::Impl::Impl(const std::string& pipe_id, Durable durable, Executors executors,
                 PipeOptions options)
    : id(pipe_id),
      ex(std::move(executors)),
      log(options.logger ? options.logger : default_logger(pipe_id)),
      clock(options.clock ? options.clock : system_clock()),
      health(std::move(options.health)),
      store(std::move(options.store)),
      partition_limit(std::move(options.partition_limit)),
      rng(options.seed ? *options.seed : std::random_device{}()),
      d(std::move(durable)) {}

Pipe::Pipe(PipeConfig config, Executors executors, PipeOptions options) {
  config.validate();
  check_executors(executors);
  // Tables that cannot live side by side at the destination are refused before anything runs.
  executors.table_setup->check_tables(config.tables);
  if (options.store && options.store->holds(config.id)) {
    throw StoreError(StoreErrorCode::AlreadyExists,
                     "the store already holds a pipe '" + config.id + "'");
  }
  Durable d;
  d.life = Lifecycle(config.mode);
  d.since = (options.clock ? options.clock : system_clock())->now();
  d.settings = std::move(config.settings);
  d.tables = std::move(config.tables);
  impl_ = std::make_shared<Impl>(config.id, std::move(d), std::move(executors), std::move(options));
  std::lock_guard lk(impl_->mu);
  impl_->save_locked();  // the pipe exists once its record does
}

Pipe::Pipe(const PipeRecord& record, Executors executors, PipeOptions options) {
  PipeConfig{record.id, record.lifecycle.mode(), record.tables, record.settings}.validate();
  check_executors(executors);
  if (record.lifecycle.state() == State::Unknown) {
    throw InvalidField("lifecycle.state",
                       "pipe '" + record.id + "' is in a state this build does not know");
  }
  impl_ = std::make_shared<Impl>(record.id, runtime_detail::from_record(record),
                                 std::move(executors), std::move(options));
  Impl& i = *impl_;
  std::lock_guard lk(i.mu);
  // Carry out what the user last asked for if the pipe had not got there when it stopped.
  const State s = i.d.life.state();
  try {
    if (i.d.intent == Intent::Paused && (s == State::Running || s == State::Degraded)) {
      i.transition_locked(Trigger::Pause);
    } else if (i.d.intent == Intent::Deleted && s != State::Terminating && s != State::Terminated) {
      i.transition_locked(Trigger::Delete);
    }
  } catch (const StoreError& e) {
    i.log->error("could not carry out the saved intent: {}", e.what());
  }
}

Pipe::~Pipe() { shutdown(); }

void Pipe::start() {
  std::lock_guard lk(impl_->mu);
  impl_->started = true;
  impl_->shutting_down = false;
  if (impl_->store_failed) {
    // A restart tries the store again; should it still refuse, the error is recorded anew.
    impl_->store_failed = false;
    impl_->retrying.reset();
  }
  impl_->ensure_runner_locked();
}

void Pipe::shutdown() {
  std::jthread runner;
  {
    std::lock_guard lk(impl_->mu);
    impl_->shutting_down = true;
    impl_->started = false;
    impl_->work_stop.request_stop();
    runner = std::move(impl_->runner);
  }
  if (runner.joinable()) runner.join();
  std::lock_guard lk(impl_->mu);
  impl_->shutting_down = false;
  impl_->runner_active = false;
}

CommandResult Pipe::pause() { return impl_->simple(Trigger::Pause, Intent::Paused); }
CommandResult Pipe::resume() { return impl_->simple(Trigger::Resume, Intent::Running); }
CommandResult Pipe::retry() { return impl_->simple(Trigger::Retry); }
CommandResult Pipe::remove(DeleteOptions options) {
  Impl* i = impl_.get();
  if (options.drop_destination && !i->ex.table_setup->can_drop_destination()) {
    return {CommandResult::Status::Invalid, std::nullopt,
            "delete: this pipe's executors cannot drop destination tables; delete without "
            "drop_destination keeps them"};
  }
  return i->command(Trigger::Delete, [i, options] {
    std::lock_guard lk(i->mu);
    return i->apply_command_locked(Trigger::Delete, [&](Durable& dur) {
      dur.intent = Intent::Deleted;
      // A second delete may ask for more, never for less: tables once meant to go still go.
      dur.drop_destination = dur.drop_destination || options.drop_destination;
    });
  });
}

CommandResult Pipe::resync() {
  Impl* i = impl_.get();
  return i->command(Trigger::Resync, [i] {
    std::lock_guard lk(i->mu);
    // Validate before anything is dropped. A pipe saved before names were checked may hold
    // tables a resync would clobber (`t` and `t_old`): it is refused until they are removed.
    try {
      i->d.settings.validate();
      i->ex.table_setup->check_tables(i->d.tables);
    } catch (const InvalidField& e) {
      return Impl::invalid(e.what());
    }
    return i->apply_command_locked(Trigger::Resync,
                                   [](Durable& dur) { dur.intent = Intent::Running; });
  });
}

CommandResult Pipe::add_tables(std::vector<TableRef> add) {
  Impl* i = impl_.get();
  return i->command(Trigger::AddTables, [i, add = std::move(add)] {
    std::lock_guard lk(i->mu);
    const ApplyResult check = i->d.life.check(Trigger::AddTables);
    if (!check) return Impl::rejected(check.rejection());
    if (auto problem = i->check_new_tables_locked(add)) return Impl::invalid(*problem);
    return i->apply_command_locked(Trigger::AddTables, [&](Durable& dur) {
      dur.tables.insert(dur.tables.end(), add.begin(), add.end());
      dur.pending_added = add;
      dur.intent = Intent::Running;
    });
  });
}

CommandResult Pipe::cancel_table_addition() { return impl_->simple(Trigger::CancelTableAddition); }

CommandResult Pipe::remove_tables(std::vector<TableRef> remove) {
  Impl* i = impl_.get();
  return i->command(Trigger::RemoveTables, [i, remove = std::move(remove)] {
    std::lock_guard lk(i->mu);
    const ApplyResult check = i->d.life.check(Trigger::RemoveTables);
    if (!check) return Impl::rejected(check.rejection());
    if (remove.empty()) return Impl::invalid("no tables given");
    std::set<TableRef> unique;
    for (std::size_t k = 0; k < remove.size(); ++k) {
      if (std::find(i->d.tables.begin(), i->d.tables.end(), remove[k]) == i->d.tables.end())
        return Impl::invalid(
            fmt::format("tables[{}]: {} is not in the pipe", k, remove[k].qualified()));
      unique.insert(remove[k]);
    }
    if (unique.size() >= i->d.tables.size())
      return Impl::invalid("a pipe keeps at least one table: delete the pipe instead");
    return i->apply_command_locked(Trigger::RemoveTables, [&](Durable& dur) {
      for (const auto& t : unique) std::erase(dur.tables, t);
      dur.pending_removed.insert(dur.pending_removed.end(), unique.begin(), unique.end());
    });
  });
}

CommandResult Pipe::update_settings(Settings s) {
  Impl* i = impl_.get();
  return i->command(Trigger::UpdateSettings, [i, s = std::move(s)] {
    std::lock_guard lk(i->mu);
    const ApplyResult check = i->d.life.check(Trigger::UpdateSettings);
    if (!check) return Impl::rejected(check.rejection());
    try {
      s.validate();
    } catch (const InvalidField& e) {
      return Impl::invalid(e.what());
    }
    return i->apply_command_locked(Trigger::UpdateSettings,
                                   [&](Durable& dur) { dur.settings = s; });
  });
}

const std::string& Pipe::id() const noexcept { return impl_->id; }

State Pipe::state() const {
  std::lock_guard lk(impl_->mu);
  return impl_->d.life.state();
}

bool Pipe::wait_for(State state, std::chrono::milliseconds timeout) const {
  std::unique_lock lk(impl_->mu);
  return impl_->changed.wait_for(lk, timeout, [&] { return impl_->d.life.state() == state; });
}

PipeStatus Pipe::status() const {
  std::lock_guard lk(impl_->mu);
  return impl_->status_locked();
}

PipeRecord Pipe::record() const {
  std::lock_guard lk(impl_->mu);
  return runtime_detail::to_record(impl_->id, impl_->d);
}

void Pipe::add_listener(std::shared_ptr<TransitionListener> listener) {
  std::lock_guard lk(impl_->mu);
  impl_->listeners.push_back(std::move(listener));
}

}  // namespace clickpipe
