#include "dataplane/lb/p2c.h"

#include "dataplane/lb/least_connections.h"

namespace doorman::lb {
namespace {

uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t ThreadRandom() {
  thread_local uint64_t state = reinterpret_cast<uintptr_t>(&state) ^ 0x5851f42d4c957f2dULL;
  return SplitMix(state);
}

}  // namespace

P2c::P2c(std::vector<Candidate> candidates) : CandidateScheduler(std::move(candidates)) {
  for (std::size_t i = 0; i < c_.size(); ++i) {
    if (c_[i].weight > 0) weighted_.push_back(i);
  }
}

std::optional<std::size_t> P2c::Pick(const PickContext& ctx) {
  const std::size_t n = weighted_.size();
  if (n == 0) return std::nullopt;
  if (n == 1) return weighted_[0];
  uint64_t seed = ctx.random != 0 ? ctx.random : ThreadRandom();
  // Two random distinct candidates, the less loaded (per weight) wins. `healthy_only` = false is
  // panic mode (nobody healthy): the same choice over everyone, so load still spreads.
  auto choose = [&](bool healthy_only) -> std::optional<std::size_t> {
    const uint64_t r = SplitMix(seed);
    // Two distinct positions: pa in [0, n), pb in [0, n-1) shifted past pa.
    const std::size_t pa = r % n;
    std::size_t pb = (r >> 32) % (n - 1);
    if (pb >= pa) ++pb;
    const std::size_t a = weighted_[pa];
    const std::size_t b = weighted_[pb];
    const bool ua = !healthy_only || Usable(a), ub = !healthy_only || Usable(b);
    if (!ua && !ub) return std::nullopt;
    if (!ua) return b;
    if (!ub) return a;
    const int64_t la = c_[a].state->active.load(std::memory_order_relaxed) + 1;
    const int64_t lb = c_[b].state->active.load(std::memory_order_relaxed) + 1;
    // la/wa <= lb/wb ?  (ties alternate with the random order of a and b)
    return static_cast<uint64_t>(la) * c_[b].weight <= static_cast<uint64_t>(lb) * c_[a].weight ? a : b;
  };
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (auto i = choose(true)) return i;
  }
  // Both draws kept landing on unhealthy candidates: the least loaded healthy one from a random
  // start, or, when none is healthy, panic mode.
  const std::size_t start = static_cast<std::size_t>(SplitMix(seed) % c_.size());
  if (auto i = LeastConnections::Scan(c_, start, true)) return i;
  return choose(false);
}

}  // namespace doorman::lb
