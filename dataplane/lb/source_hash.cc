#include "dataplane/lb/source_hash.h"

#include <string_view>

#include "dataplane/lb/round_robin.h"

namespace doorman::lb {

SourceHash::SourceHash(std::vector<Candidate> candidates) : CandidateScheduler(std::move(candidates)) {
  std::vector<uint32_t> w;
  for (const auto& c : c_) w.push_back(c.weight);
  slots_ = SmoothWeightedSchedule(w);
}

std::optional<std::size_t> SourceHash::Pick(const PickContext& ctx) { return PickFromTable(slots_, ctx.hash, kRehashes); }

}  // namespace doorman::lb
