#include "dataplane/lb/least_connections.h"

namespace doorman::lb {

std::optional<std::size_t> LeastConnections::Scan(const std::vector<Candidate>& c, std::size_t start,
                                                   bool healthy_only) {
  std::optional<std::size_t> best;
  int64_t best_load = 0;
  uint32_t best_weight = 1;
  const std::size_t n = c.size();
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = (start + k) % n;
    if (c[i].weight == 0) continue;
    if (healthy_only && !Available(c[i])) continue;
    const int64_t load = c[i].state->active.load(std::memory_order_relaxed) + 1;
    // load/weight < best_load/best_weight  <=>  load*best_weight < best_load*weight
    if (!best || static_cast<uint64_t>(load) * best_weight < static_cast<uint64_t>(best_load) * c[i].weight) {
      best = i;
      best_load = load;
      best_weight = c[i].weight;
    }
  }
  return best;
}

std::optional<std::size_t> LeastConnections::Pick(const PickContext&) {
  if (eligible_ == 0) return std::nullopt;
  const std::size_t n = c_.size();
  const std::size_t start = rotate_.fetch_add(1, std::memory_order_relaxed) % n;
  // Ties go to the first candidate in scan order, which starts one further each pick. Unusable
  // candidates at the start are stepped over and the rotation moves past them too, or the one
  // after an unhealthy candidate would win every tie twice as often as the others.
  std::size_t skip = 0;
  while (skip < n && !Usable((start + skip) % n)) ++skip;
  if (skip == n) return Scan(c_, start, false);  // panic mode: none healthy
  if (skip > 0) rotate_.fetch_add(skip, std::memory_order_relaxed);
  return Scan(c_, (start + skip) % n, true);
}

}  // namespace doorman::lb
