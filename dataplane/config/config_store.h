// The one place the current RuntimeConfig lives. Workers Load() it per TCP connection / per HTTP
// request (an atomic shared_ptr copy, no mutex on the data path); the subscriber Store()s a new
// one after it compiled and its listeners are bound. Holders of the old pointer finish against it.
#pragma once

#include <atomic>
#include <memory>

#include "dataplane/config/runtime_config.h"

namespace doorman::dataplane {

class ConfigStore {
 public:
  std::shared_ptr<const RuntimeConfig> Load() const { return current_.load(std::memory_order_acquire); }
  void Store(std::shared_ptr<const RuntimeConfig> c) { current_.store(std::move(c), std::memory_order_release); }

 private:
  std::atomic<std::shared_ptr<const RuntimeConfig>> current_;
};

}  // namespace doorman::dataplane
