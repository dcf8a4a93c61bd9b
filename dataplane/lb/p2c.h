// Power of two choices (Mitzenmacher; Envoy's LEAST_REQUEST default): draw two distinct usable
// candidates at random and take the one with the smaller (active + 1) / weight. O(1) per pick,
// and unlike strict least-connections it does not herd every worker onto the same backend when
// loads are read slightly stale. Randomness comes from PickContext::random when non-zero (tests)
// or a per-thread generator.
#pragma once

#include "dataplane/lb/scheduler.h"

namespace doorman::lb {

class P2c final : public CandidateScheduler {
 public:
  explicit P2c(std::vector<Candidate> candidates);
  using Scheduler::Pick;
  std::optional<std::size_t> Pick(const PickContext& ctx) override;

 private:
  std::vector<std::size_t> weighted_;  // indices with weight > 0
};

}  // namespace doorman::lb
