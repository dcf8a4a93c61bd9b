#include "dataplane/lb/round_robin.h"

#include <algorithm>
#include <numeric>

namespace doorman::lb {

std::vector<uint32_t> SmoothWeightedSchedule(const std::vector<uint32_t>& weights) {
  std::vector<uint64_t> w(weights.begin(), weights.end());
  uint64_t g = 0;
  for (uint64_t x : w) g = std::gcd(g, x);
  if (g == 0) return {};
  uint64_t total = 0;
  for (auto& x : w) {
    x /= g;
    total += x;
  }
  if (total > kMaxScheduleLength) {
    // Scale down proportionally; a non-zero weight never becomes 0.
    const uint64_t old_total = total;
    total = 0;
    for (auto& x : w) {
      if (x == 0) continue;
      x = std::max<uint64_t>(1, x * kMaxScheduleLength / old_total);
      total += x;
    }
  }
  std::vector<uint32_t> out;
  out.reserve(total);
  std::vector<int64_t> current(w.size(), 0);
  const auto sum = static_cast<int64_t>(total);
  for (uint64_t step = 0; step < total; ++step) {
    std::size_t best = w.size();
    for (std::size_t i = 0; i < w.size(); ++i) {
      if (w[i] == 0) continue;
      current[i] += static_cast<int64_t>(w[i]);
      if (best == w.size() || current[i] > current[best]) best = i;
    }
    current[best] -= sum;
    out.push_back(static_cast<uint32_t>(best));
  }
  return out;
}

RoundRobin::RoundRobin(const std::vector<uint32_t>& weights) : schedule_(SmoothWeightedSchedule(weights)) {
  eligible_ = static_cast<std::size_t>(std::count_if(weights.begin(), weights.end(), [](uint32_t x) { return x > 0; }));
}

std::unique_ptr<RoundRobin> RoundRobin::Uniform(std::size_t n) {
  return std::make_unique<RoundRobin>(std::vector<uint32_t>(n, 1));
}

std::optional<std::size_t> RoundRobin::Pick() {
  if (schedule_.empty()) return std::nullopt;
  const uint64_t i = next_.fetch_add(1, std::memory_order_relaxed);
  return schedule_[i % schedule_.size()];
}

}  // namespace doorman::lb
