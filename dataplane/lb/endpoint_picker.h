// Picks an endpoint for a route whose traffic is split across several weighted backend sets,
// with the route's scheduler (scheduler.h).
//
// round-robin / weighted-round-robin: two levels — a backend set by smooth weighted round-robin
// over the sets' weights, then an endpoint of that set with the route's scheduler. Two levels
// keep the split exact whatever the number of endpoints in each set.
// least-connections, source-hash, maglev, p2c: one flat candidate list over every set's
// endpoints, each weighted set_weight / set_size (scaled to integers), so the load or the hash
// sees every endpoint at once (a hash must not first pick a set round-robin).
//
// Built once per compiled route from the sets' *eligible* endpoints (ready ones); a set with no
// eligible endpoint gets no traffic, its weight is redistributed to the others. Unhealthy
// endpoints (EndpointState::healthy) are skipped; when none is healthy, panic mode picks among
// all (fail open). Thread-safe and lock-free.
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
    std::size_t group = 0;     // index into the groups given to the constructor
    std::size_t endpoint = 0;  // index into that group's endpoints
  };
  struct Group {
    uint32_t weight = 0;
    std::vector<Candidate> endpoints;
  };

  EndpointPicker(SchedulerKind kind, std::vector<Group> groups);
  // Round-robin over groups of `group_sizes[i]` anonymous endpoints (fresh states).
  EndpointPicker(const std::vector<uint32_t>& group_weights, const std::vector<uint32_t>& group_sizes);

  std::optional<Choice> Pick(const PickContext& ctx);
  std::optional<Choice> Pick() { return Pick(PickContext{}); }
  // Total eligible endpoints across groups that receive traffic (an upper bound for retries).
  std::size_t eligible() const { return eligible_; }
  SchedulerKind kind() const { return kind_; }

 private:
  bool two_level() const { return kind_ == SchedulerKind::kRoundRobin || kind_ == SchedulerKind::kWeightedRoundRobin; }

  SchedulerKind kind_;
  std::vector<Group> groups_in_;
  // two-level
  SchedulerPtr groups_;
  SchedulerPtr panic_groups_;  // the same weights, walked only in panic mode
  std::vector<SchedulerPtr> members_;
  std::size_t traffic_groups_ = 0;  // sets with weight > 0 and endpoints
  // flat
  SchedulerPtr flat_;
  std::vector<Choice> flat_index_;
  std::size_t eligible_ = 0;
};

}  // namespace doorman::lb
