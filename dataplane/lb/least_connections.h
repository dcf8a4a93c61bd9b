// Weighted least-connections (IPVS "wlc"): the usable candidate with the fewest open
// connections per unit of weight, i.e. the smallest (active + 1) / weight, compared by cross
// multiplication (no division, no floating point). Ties go round-robin (a rotating start index)
// so equal backends share new connections evenly instead of piling onto the first.
// O(n) per pick: fine for the endpoint counts of one route; loads are read relaxed, so two
// workers picking at the same instant may both see the same minimum (harmless, IPVS does the same).
#pragma once

#include <atomic>

#include "dataplane/lb/scheduler.h"

namespace doorman::lb {

class LeastConnections final : public CandidateScheduler {
 public:
  explicit LeastConnections(std::vector<Candidate> candidates) : CandidateScheduler(std::move(candidates)) {}
  using Scheduler::Pick;
  std::optional<std::size_t> Pick(const PickContext& ctx) override;

  // The scan itself, shared with p2c's fallback. `healthy_only` = false is panic mode.
  static std::optional<std::size_t> Scan(const std::vector<Candidate>& c, std::size_t start, bool healthy_only);

 private:
  std::atomic<uint64_t> rotate_{0};
};

}  // namespace doorman::lb
