// The notification outbox: transitions, refusals of queued commands and retries, delivered to
// listeners outside the lock, in order, one deliverer at a time.
#include <spdlog/logger.h>

#include "pipe_impl.hpp"

namespace clickpipe {

namespace {
// Set while a thread delivers a pipe's notifications, so commands from listeners are queued.
thread_local const void* tls_delivering = nullptr;
}  // namespace

bool Pipe::Impl::delivering_on_this_thread() const { return tls_delivering == this; }

void Pipe::Impl::deliver() {
  {
    std::lock_guard lk(mu);
    if (delivering) return;
    delivering = true;
  }
  for (;;) {
    Notification n;
    std::vector<std::shared_ptr<TransitionListener>> targets;
    {
      std::lock_guard lk(mu);
      if (outbox.empty()) {
        delivering = false;
        return;
      }
      n = std::move(outbox.front());
      outbox.pop_front();
      targets = listeners;
    }
    tls_delivering = this;
    for (const auto& l : targets) {
      try {
        switch (n.kind) {
          case Notification::Kind::Transition: l->on_transition(n.event); break;
          case Notification::Kind::Rejected: l->on_rejected(id, n.rejection); break;
          case Notification::Kind::Retry: l->on_retry(id, n.retry); break;
          case Notification::Kind::Batch: l->on_batch(id, n.batch); break;
        }
      } catch (const std::exception& e) {
        log->error("a listener threw: {}", e.what());
      } catch (...) {
        log->error("a listener threw a non-standard exception");
      }
    }
    tls_delivering = nullptr;
    std::vector<std::function<void()>> commands;
    {
      std::lock_guard lk(mu);
      commands.swap(queued_commands);
    }
    for (auto& cmd : commands) cmd();
  }
}

}  // namespace clickpipe
