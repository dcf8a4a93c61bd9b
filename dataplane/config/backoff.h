// Reconnect delays for the controller stream: exponential from kInitial, capped at kMax, with
// "equal jitter" (half fixed, half random) so a fleet of dataplanes does not reconnect in step
// after a controller restart. Pure: the caller supplies the random number.
#pragma once

#include <algorithm>
#include <chrono>

namespace doorman::dataplane {

struct Backoff {
  static constexpr std::chrono::milliseconds kInitial{250};
  static constexpr std::chrono::milliseconds kMax{5000};

  // `failures` = consecutive failed attempts so far (0 for the first retry); `unit_random` in [0, 1).
  static std::chrono::milliseconds Delay(int failures, double unit_random) {
    const int shift = std::clamp(failures, 0, 16);
    const auto ceiling = std::min<int64_t>(kMax.count(), kInitial.count() << shift);
    const double r = std::clamp(unit_random, 0.0, 1.0);
    return std::chrono::milliseconds(ceiling / 2 + static_cast<int64_t>(static_cast<double>(ceiling / 2) * r));
  }
};

}  // namespace doorman::dataplane
