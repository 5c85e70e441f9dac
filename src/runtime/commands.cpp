// Commands: checked against the transition table and carried out under the pipe's lock, or queued
// when a listener of this pipe issues them.
#include <fmt/format.h>
#include <spdlog/logger.h>

#include <set>
#include <vector>

#include "clickpipe/format.hpp"
#include "pipe_impl.hpp"

namespace clickpipe {

CommandResult Pipe::Impl::rejected(const Rejection& r) {
  return {CommandResult::Status::Rejected, r, message(r)};
}
CommandResult Pipe::Impl::invalid(std::string message) {
  return {CommandResult::Status::Invalid, std::nullopt, std::move(message)};
}

// Runs `body` (which checks and applies under the lock) now, or queues it when called from one
// of this pipe's listeners.
CommandResult Pipe::Impl::command(Trigger trigger, std::function<CommandResult()> body) {
  if (delivering_on_this_thread()) {
    std::lock_guard lk(mu);
    queued_commands.push_back([this, trigger, body = std::move(body)] {
      CommandResult r = body();
      if (r.status == CommandResult::Status::Rejected && r.rejection) {
        std::lock_guard lk2(mu);
        Notification n;
        n.kind = Notification::Kind::Rejected;
        n.rejection = *r.rejection;
        outbox.push_back(std::move(n));
      } else if (r.status == CommandResult::Status::Invalid) {
        log->warn("queued {} refused: {}", trigger, r.message);
      }
    });
    return {CommandResult::Status::Queued, std::nullopt, {}};
  }
  CommandResult r = body();
  deliver();
  return r;
}

CommandResult Pipe::Impl::simple(Trigger trigger, std::optional<Intent> intent) {
  return command(trigger, [this, trigger, intent] {
    std::lock_guard lk(mu);
    return apply_command_locked(trigger, [intent](Durable& dur) {
      if (intent) dur.intent = *intent;
    });
  });
}

// Checks and takes a command's transition; `edit` records what the command changes besides
// the state, saved together with it.
CommandResult Pipe::Impl::apply_command_locked(Trigger trigger,
                                               const std::function<void(Durable&)>& edit) {
  try {
    const ApplyResult r = transition_locked(trigger, {}, edit);
    if (!r) {
      log->info("{}", r.rejection());
      return rejected(r.rejection());
    }
    log->debug("{}", r.transition());  // listeners report transitions; this is for tracing
    return {};
  } catch (const StoreError& e) {
    log->error("{} not carried out: {}", trigger, e.what());
    return {CommandResult::Status::Unavailable, std::nullopt,
            fmt::format("{} not carried out: the pipe's state could not be saved: {}", trigger,
                        e.what())};
  }
}

std::optional<std::string> Pipe::Impl::check_new_tables_locked(
    const std::vector<TableRef>& add) const {
  if (add.empty()) return "no tables given";
  std::set<TableRef> seen(d.tables.begin(), d.tables.end());
  for (std::size_t i = 0; i < add.size(); ++i) {
    if (add[i].name.empty() || add[i].schema.empty())
      return fmt::format("tables[{}]: schema and name must not be empty", i);
    if (!seen.insert(add[i]).second)
      return fmt::format("tables[{}]: {} is already in the pipe", i, add[i].qualified());
  }
  // The executor judges the whole set the pipe would have: the tables it holds, then `add`.
  std::vector<TableRef> all = d.tables;
  all.insert(all.end(), add.begin(), add.end());
  try {
    ex.table_setup->check_tables(d.tables);
  } catch (const InvalidField&) {
    // A pipe saved before names were checked already holds a clash: judge each added table alone
    // and beside every table that is sound alone, so that only a clash of the addition refuses it.
    std::vector<TableRef> sound;
    for (const auto& t : d.tables) {
      try {
        ex.table_setup->check_tables(std::vector<TableRef>{t});
        sound.push_back(t);
      } catch (const InvalidField&) {
      }
    }
    for (std::size_t i = 0; i < add.size(); ++i) {
      try {
        ex.table_setup->check_tables(std::vector<TableRef>{add[i]});
        for (const auto& other : sound) {
          ex.table_setup->check_tables(std::vector<TableRef>{other, add[i]});
        }
      } catch (const InvalidField& e) {
        return fmt::format("tables[{}]: {}", i, e.what());
      }
      sound.push_back(add[i]);
    }
    return std::nullopt;
  }
  try {
    ex.table_setup->check_tables(all);
  } catch (const InvalidField& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

}  // namespace clickpipe
