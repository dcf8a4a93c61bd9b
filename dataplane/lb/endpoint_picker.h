// Picks an endpoint for a route whose traffic is split across several backend sets:
// first a backend set by (smooth) weighted round-robin over the sets' weights, then an endpoint
// of that set by round-robin. Two levels keep the split exact whatever the number of endpoints
// in each set (flattening would need the LCM of the set sizes).
//
// Built once per compiled route from the sets' weights and their numbers of *eligible*
// endpoints (ready ones); a set with no eligible endpoint gets no traffic, its weight is
// redistributed to the others. Thread-safe and lock-free.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "dataplane/lb/scheduler.h"

namespace doorman::lb {

class EndpointPicker {
 public:
  struct Choice {
    std::size_t group = 0;     // index into the weights/sizes given to the constructor
    std::size_t endpoint = 0;  // index into that group's eligible endpoints
  };

  EndpointPicker(const std::vector<uint32_t>& group_weights, const std::vector<uint32_t>& group_sizes);

  std::optional<Choice> Pick();
  // Total eligible endpoints across groups that receive traffic (an upper bound for retries).
  std::size_t eligible() const { return eligible_; }

 private:
  SchedulerPtr groups_;
  std::vector<SchedulerPtr> members_;
  std::size_t eligible_ = 0;
};

}  // namespace doorman::lb
