// Helpers for scheduler tests: candidates with their own states, and pick histograms.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "dataplane/lb/scheduler.h"

namespace doorman::lb::testing {

inline std::vector<Candidate> Candidates(const std::vector<uint32_t>& weights, const std::string& prefix = "10.0.0.") {
  std::vector<Candidate> out;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    out.push_back(Candidate{prefix + std::to_string(i + 1) + ":80", weights[i], std::make_shared<EndpointState>(),
                            std::make_shared<HealthSlot>()});
  }
  return out;
}

// Hash of the i-th synthetic client (what the dataplane computes from a source IP).
inline uint64_t ClientHash(uint64_t i) {
  const std::string key = "client-" + std::to_string(i);
  return HashKey(key);
}

}  // namespace doorman::lb::testing
