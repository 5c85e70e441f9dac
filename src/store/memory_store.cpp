#include "clickpipe/store/memory_store.hpp"

namespace clickpipe {

LoadResult MemoryStore::load_all() {
  std::lock_guard lk(mu_);
  LoadResult out;
  for (const auto& [id, r] : records_) out.records.push_back(r);
  return out;
}

void MemoryStore::save(const PipeRecord& record) {
  std::lock_guard lk(mu_);
  records_[record.id] = record;
  ++saves_;
}

void MemoryStore::remove(const std::string& id) {
  std::lock_guard lk(mu_);
  records_.erase(id);
}

bool MemoryStore::holds(const std::string& id) {
  std::lock_guard lk(mu_);
  return records_.count(id) > 0;
}

std::size_t MemoryStore::saves() const {
  std::lock_guard lk(mu_);
  return saves_;
}

}  // namespace clickpipe
