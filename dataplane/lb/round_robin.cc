#include "dataplane/lb/round_robin.h"

#include <algorithm>
#include <numeric>
#include <string>

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

namespace {
std::vector<Candidate> FromWeights(const std::vector<uint32_t>& weights) {
  std::vector<Candidate> out;
  out.reserve(weights.size());
  for (std::size_t i = 0; i < weights.size(); ++i) out.push_back(Candidate{std::to_string(i), weights[i], nullptr, nullptr});
  return out;
}
std::vector<uint32_t> WeightsOf(const std::vector<Candidate>& c) {
  std::vector<uint32_t> w;
  w.reserve(c.size());
  for (const auto& x : c) w.push_back(x.weight);
  return w;
}
}  // namespace

RoundRobin::RoundRobin(std::vector<Candidate> candidates)
    : CandidateScheduler(std::move(candidates)), schedule_(SmoothWeightedSchedule(WeightsOf(c_))) {}

RoundRobin::RoundRobin(const std::vector<uint32_t>& weights) : RoundRobin(FromWeights(weights)) {}

std::unique_ptr<RoundRobin> RoundRobin::Uniform(std::size_t n) {
  return std::make_unique<RoundRobin>(std::vector<uint32_t>(n, 1));
}

std::optional<std::size_t> RoundRobin::Pick(const PickContext&) {
  if (schedule_.empty()) return std::nullopt;
  const uint64_t i = next_.fetch_add(1, std::memory_order_relaxed);
  const std::size_t n = schedule_.size();
  const std::size_t first = schedule_[i % n];
  if (Usable(first)) return first;
  // Skip unhealthy slots and move the shared cursor past them, so the slot after the skipped
  // ones is not served twice: with A of [A,B,C] down the order is B,C,B,C (not B,B,C).
  for (std::size_t k = 1; k < n; ++k) {
    const std::size_t c = schedule_[(i + k) % n];
    if (Usable(c)) {
      next_.fetch_add(k, std::memory_order_relaxed);
      return c;
    }
  }
  // Panic mode: nobody is healthy, fail open — round-robin over every slot on a cursor of its own.
  return schedule_[panic_next_.fetch_add(1, std::memory_order_relaxed) % n];
}

}  // namespace doorman::lb
