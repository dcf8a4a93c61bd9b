#include "dataplane/lb/endpoint_picker.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "dataplane/lb/round_robin.h"

namespace doorman::lb {
namespace {

constexpr uint64_t kMaxFlatScale = 720720;  // lcm(1..16): exact splits for sets up to 16 endpoints

std::vector<EndpointPicker::Group> AnonymousGroups(const std::vector<uint32_t>& weights, const std::vector<uint32_t>& sizes) {
  std::vector<EndpointPicker::Group> out(weights.size());
  for (std::size_t i = 0; i < weights.size(); ++i) {
    out[i].weight = weights[i];
    const uint32_t n = i < sizes.size() ? sizes[i] : 0;
    for (uint32_t j = 0; j < n; ++j) {
      out[i].endpoints.push_back(Candidate{std::to_string(i) + "/" + std::to_string(j), 1, nullptr, nullptr});
    }
  }
  return out;
}

}  // namespace

EndpointPicker::EndpointPicker(const std::vector<uint32_t>& group_weights, const std::vector<uint32_t>& group_sizes)
    : EndpointPicker(SchedulerKind::kRoundRobin, AnonymousGroups(group_weights, group_sizes)) {}

EndpointPicker::EndpointPicker(SchedulerKind kind, std::vector<Group> groups) : kind_(kind), groups_in_(std::move(groups)) {
  for (auto& g : groups_in_) {
    for (auto& e : g.endpoints) {
      if (!e.state) e.state = std::make_shared<EndpointState>();
    }
  }
  if (two_level()) {
    std::vector<uint32_t> effective(groups_in_.size(), 0);
    members_.resize(groups_in_.size());
    for (std::size_t i = 0; i < groups_in_.size(); ++i) {
      const auto& g = groups_in_[i];
      if (g.endpoints.empty() || g.weight == 0) continue;
      effective[i] = g.weight;
      members_[i] = MakeScheduler(kind_, g.endpoints);
      eligible_ += members_[i]->eligible();
      ++traffic_groups_;
    }
    groups_ = std::make_unique<RoundRobin>(effective);
    panic_groups_ = std::make_unique<RoundRobin>(effective);
    return;
  }
  // Flat: endpoint weight = set weight * scale / set size, scale = lcm of the set sizes (capped).
  uint64_t scale = 1;
  for (const auto& g : groups_in_) {
    if (g.weight == 0 || g.endpoints.empty()) continue;
    const uint64_t l = std::lcm(scale, static_cast<uint64_t>(g.endpoints.size()));
    scale = l > kMaxFlatScale ? kMaxFlatScale : l;
  }
  // Keep weights within uint32 and small enough for the schedules: divide by a common factor.
  std::vector<Candidate> flat;
  for (std::size_t gi = 0; gi < groups_in_.size(); ++gi) {
    const auto& g = groups_in_[gi];
    if (g.weight == 0 || g.endpoints.empty()) continue;
    for (std::size_t ei = 0; ei < g.endpoints.size(); ++ei) {
      Candidate c = g.endpoints[ei];
      const uint64_t w = static_cast<uint64_t>(g.weight) * scale / g.endpoints.size() * c.weight;
      c.weight = static_cast<uint32_t>(std::max<uint64_t>(1, std::min<uint64_t>(w, UINT32_MAX)));
      flat.push_back(std::move(c));
      flat_index_.push_back(Choice{gi, ei});
    }
  }
  uint64_t g = 0;
  for (const auto& c : flat) g = std::gcd(g, static_cast<uint64_t>(c.weight));
  if (g > 1) {
    for (auto& c : flat) c.weight = static_cast<uint32_t>(c.weight / g);
  }
  eligible_ = flat.size();
  flat_ = MakeScheduler(kind_, std::move(flat));
}

std::optional<EndpointPicker::Choice> EndpointPicker::Pick(const PickContext& ctx) {
  if (!two_level()) {
    const auto i = flat_->Pick(ctx);
    if (!i) return std::nullopt;
    return flat_index_[*i];
  }
  std::optional<Choice> first;
  // One pick per set at most: a set is asked again only when there is another set to try, so a
  // single set's scheduler is advanced exactly once per pick (its own panic rotation stays fair).
  for (std::size_t attempt = 0; attempt < traffic_groups_; ++attempt) {
    const auto g = groups_->Pick(ctx);
    if (!g) return std::nullopt;
    const auto e = members_[*g]->Pick(ctx);
    if (!e) return std::nullopt;
    const Choice c{*g, *e};
    if (!first) first = c;
    // A set whose endpoints are all unhealthy answers in panic mode inside its own scheduler:
    // give its turn to another set; only when every set is down does the first choice stand.
    if (Available(groups_in_[*g].endpoints[*e])) return c;
  }
  if (!first || traffic_groups_ < 2) return first;
  // Panic mode across sets (every set answered from its own panic rotation): the sets' weights
  // still split the traffic, on a set cursor of its own (the loop above advanced the main one
  // once per set, which would turn 3:1 into 1:1).
  const auto g = panic_groups_->Pick(ctx);
  if (!g) return first;
  const auto e = members_[*g]->Pick(ctx);
  if (!e) return first;
  return Choice{*g, *e};
}

}  // namespace doorman::lb
