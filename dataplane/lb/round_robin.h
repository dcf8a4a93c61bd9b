// Round-robin and weighted round-robin (nginx's "smooth" variant, so a 5:1:1 split is served as
// a,a,b,a,c,a,a rather than a,a,a,a,a,b,c — no bursts at one backend).
//
// The smooth sequence is computed once, when the route is compiled, and then walked with one
// relaxed atomic counter: Pick() is lock-free and needs no per-pick mutable weights. The
// sequence length is the sum of the weights after dividing by their GCD, scaled down
// proportionally (each non-zero weight kept >= 1) when it would exceed kMaxScheduleLength.
// An unhealthy candidate's slots are skipped (the next usable slot is used and the cursor moves
// past it), so the others keep their order and relative shares. When none is healthy, panic mode
// walks every slot on a second cursor.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "dataplane/lb/scheduler.h"

namespace doorman::lb {

inline constexpr std::size_t kMaxScheduleLength = 4096;

// The smooth weighted round-robin order for `weights` (indices into `weights`; entries with
// weight 0 never appear). Empty when every weight is 0.
std::vector<uint32_t> SmoothWeightedSchedule(const std::vector<uint32_t>& weights);

class RoundRobin final : public CandidateScheduler {
 public:
  explicit RoundRobin(std::vector<Candidate> candidates);
  // `weights[i]` is candidate i's relative weight; all equal (e.g. all 1) = plain round-robin.
  explicit RoundRobin(const std::vector<uint32_t>& weights);
  // Plain round-robin over n candidates.
  static std::unique_ptr<RoundRobin> Uniform(std::size_t n);

  using Scheduler::Pick;
  std::optional<std::size_t> Pick(const PickContext& ctx) override;

 private:
  std::vector<uint32_t> schedule_;
  std::atomic<uint64_t> next_{0};
  std::atomic<uint64_t> panic_next_{0};
};

}  // namespace doorman::lb
