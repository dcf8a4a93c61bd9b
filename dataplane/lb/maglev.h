// Maglev consistent hashing (Eisenbud et al., NSDI'16; as in Katran and Envoy). Each candidate
// gets a permutation of the table's slots from two hashes of its key (offset, skip); candidates
// take turns claiming their next free slot until the table is full. A weighted candidate takes
// turns in proportion to its weight (Envoy's scheme). Lookup is table[hash % size]: O(1).
//
// Properties (tested in maglev_test.cc): with M = 65537 and N backends each gets M/N ± <1% of the
// slots; when one of N backends leaves, at most ~1.5/N of the keys move — the removed backend's
// 1/N plus a small share of others' slots reshuffled by the refill.
// The table size must be a prime larger than the number of candidates (so every skip is
// coprime with it and every permutation visits every slot).
// Unhealthy target: re-hash up to kRehashes times (a stable fallback per client), then scan.
#pragma once

#include "dataplane/lb/scheduler.h"

namespace doorman::lb {

inline constexpr uint32_t kDefaultMaglevTableSize = 65537;

// The lookup table (entries index `candidates`); empty when no candidate has weight > 0.
std::vector<uint32_t> BuildMaglevTable(const std::vector<Candidate>& candidates, uint32_t table_size);

class Maglev final : public CandidateScheduler {
 public:
  static constexpr int kRehashes = 8;
  explicit Maglev(std::vector<Candidate> candidates, uint32_t table_size = kDefaultMaglevTableSize);
  using Scheduler::Pick;
  std::optional<std::size_t> Pick(const PickContext& ctx) override;
  const std::vector<uint32_t>& table() const { return table_; }

 private:
  std::vector<uint32_t> table_;
};

}  // namespace doorman::lb
