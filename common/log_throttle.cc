#include "common/log_throttle.h"

namespace doorman::log {

bool Throttle::Allow(std::string_view message, Clock::time_point now, uint64_t* suppressed) {
  *suppressed = 0;
  auto it = seen_.find(message);
  if (it == seen_.end()) {
    if (seen_.size() >= max_keys_) seen_.clear();
    seen_.emplace(std::string(message), Entry{now, 0});
    return true;
  }
  if (now - it->second.last_logged < window_) {
    ++it->second.suppressed;
    return false;
  }
  *suppressed = it->second.suppressed;
  it->second = Entry{now, 0};
  return true;
}

}  // namespace doorman::log
