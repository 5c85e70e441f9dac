// A StateStore in memory: for tests and for hosts that keep state elsewhere.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "clickpipe/store/state_store.hpp"

namespace clickpipe {

class MemoryStore final : public StateStore {
 public:
  LoadResult load_all() override;
  void save(const PipeRecord& record) override;
  void remove(const std::string& id) override;
  bool holds(const std::string& id) override;

  std::size_t saves() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, PipeRecord> records_;
  std::size_t saves_ = 0;
};

}  // namespace clickpipe
