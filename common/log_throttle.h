// Collapses repeated log lines: the same message is let through once per window, the repeats in
// between are counted (and reported with the next line let through). Pure, clock injected; not
// thread-safe (callers lock). Used for gRPC's own log lines, which repeat on every reconnect.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace doorman::log {

class Throttle {
 public:
  using Clock = std::chrono::steady_clock;

  // `window`: how long a message is held back after it was let through; `max_keys`: how many
  // distinct messages are remembered (the table is cleared when full, letting everything through
  // once more).
  explicit Throttle(Clock::duration window, size_t max_keys = 256) : window_(window), max_keys_(max_keys) {}

  // True when `message` should be logged now. *suppressed = how many times it was held back since
  // it was last let through (0 on the first time).
  bool Allow(std::string_view message, Clock::time_point now, uint64_t* suppressed);

 private:
  struct Entry {
    Clock::time_point last_logged;
    uint64_t suppressed = 0;
  };
  Clock::duration window_;
  size_t max_keys_;
  std::map<std::string, Entry, std::less<>> seen_;
};

}  // namespace doorman::log
