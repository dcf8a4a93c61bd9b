// Source hashing (IPVS "sh"): the client key hash (PickContext::hash, e.g. of the source IP)
// indexes the smooth weighted round-robin sequence of the candidates, so a client always lands
// on the same backend while the set is unchanged and weights are honoured across clients.
// Adding or removing a backend remaps most clients (use maglev for minimal disruption).
// An unhealthy target is replaced by re-hashing (up to kRehashes times), then by the next usable
// candidate, so a client's fallback is also stable.
#pragma once

#include "dataplane/lb/scheduler.h"

namespace doorman::lb {

class SourceHash final : public CandidateScheduler {
 public:
  static constexpr int kRehashes = 8;
  explicit SourceHash(std::vector<Candidate> candidates);
  using Scheduler::Pick;
  std::optional<std::size_t> Pick(const PickContext& ctx) override;

 private:
  std::vector<uint32_t> slots_;
};

}  // namespace doorman::lb
