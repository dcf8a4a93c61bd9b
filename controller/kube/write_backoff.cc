#include "controller/kube/write_backoff.h"

#include <algorithm>
#include <cmath>

namespace doorman::controller::kube {

WriteBackoff::WriteBackoff(WriteBackoffOptions options, std::function<double()> rand01)
    : options_(options), rand01_(std::move(rand01)) {}

std::chrono::milliseconds WriteBackoff::Delay(uint64_t failures, double unit_random) const {
  const uint64_t n = std::max<uint64_t>(1, failures);
  double base = static_cast<double>(options_.initial.count()) * std::pow(2.0, static_cast<double>(std::min<uint64_t>(n - 1, 40)));
  base = std::min(base, static_cast<double>(options_.max.count()));
  const double r = std::clamp(unit_random, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<int64_t>(base * (0.5 + 0.5 * r)));
}

bool WriteBackoff::Ready(const std::string& key, const std::string& desired, TimePoint now) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return true;
  if (it->second.desired != desired) {
    // Something else is to be written now: try it at once, with a fresh backoff (the log state
    // stays, so the same error is not logged again).
    it->second.desired = desired;
    it->second.failures = 0;
    it->second.next = now;
    return true;
  }
  return now >= it->second.next;
}

std::optional<WriteBackoff::LogLine> WriteBackoff::Failed(const std::string& key, const std::string& desired,
                                                          const std::string& error, TimePoint now) {
  Entry& e = entries_[key];
  e.desired = desired;
  ++e.failures;
  const auto delay = Delay(e.failures, rand01_ ? rand01_() : 0.5);
  e.next = now + delay;
  if (e.error == error) {
    ++e.repeats;
    return std::nullopt;
  }
  LogLine line;
  line.error = error;
  line.previous = e.error;
  line.repeats = e.repeats;
  line.failures = e.failures;
  line.retry_in = delay;
  e.error = error;
  e.repeats = 0;
  return line;
}

std::optional<WriteBackoff::LogLine> WriteBackoff::Succeeded(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  LogLine line;
  line.recovered = true;
  line.previous = it->second.error;
  line.repeats = it->second.repeats;
  line.failures = it->second.failures;
  entries_.erase(it);
  return line;
}

std::optional<WriteBackoff::TimePoint> WriteBackoff::NextAttempt(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second.next;
}

void WriteBackoff::Retain(const std::set<std::string>& keep) {
  for (auto it = entries_.begin(); it != entries_.end();) it = keep.count(it->first) ? std::next(it) : entries_.erase(it);
}

}  // namespace doorman::controller::kube
