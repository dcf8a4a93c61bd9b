#include "dataplane/lb/source_hash.h"

#include <string_view>

#include "dataplane/lb/round_robin.h"

namespace doorman::lb {

SourceHash::SourceHash(std::vector<Candidate> candidates) : CandidateScheduler(std::move(candidates)) {
  std::vector<uint32_t> w;
  for (const auto& c : c_) w.push_back(c.weight);
  slots_ = SmoothWeightedSchedule(w);
}

std::optional<std::size_t> SourceHash::Pick(const PickContext& ctx) {
  if (slots_.empty()) return std::nullopt;
  const std::size_t first = slots_[ctx.hash % slots_.size()];
  if (Usable(first)) return first;
  uint64_t h = ctx.hash;
  for (int k = 1; k <= kRehashes; ++k) {
    h = HashKey(std::string_view(reinterpret_cast<const char*>(&h), sizeof h), static_cast<uint64_t>(k));
    const std::size_t i = slots_[h % slots_.size()];
    if (Usable(i)) return i;
  }
  for (std::size_t k = 1; k < c_.size(); ++k) {
    const std::size_t i = (first + k) % c_.size();
    if (Usable(i)) return i;
  }
  return first;  // panic mode
}

}  // namespace doorman::lb
