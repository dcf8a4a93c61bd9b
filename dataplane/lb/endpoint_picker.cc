#include "dataplane/lb/endpoint_picker.h"

#include "dataplane/lb/round_robin.h"

namespace doorman::lb {

EndpointPicker::EndpointPicker(const std::vector<uint32_t>& group_weights, const std::vector<uint32_t>& group_sizes) {
  std::vector<uint32_t> effective(group_weights.size(), 0);
  members_.resize(group_weights.size());
  for (std::size_t i = 0; i < group_weights.size(); ++i) {
    const uint32_t size = i < group_sizes.size() ? group_sizes[i] : 0;
    if (size == 0 || group_weights[i] == 0) continue;
    effective[i] = group_weights[i];
    members_[i] = RoundRobin::Uniform(size);
    eligible_ += size;
  }
  groups_ = std::make_unique<RoundRobin>(effective);
}

std::optional<EndpointPicker::Choice> EndpointPicker::Pick() {
  const auto g = groups_->Pick();
  if (!g) return std::nullopt;
  const auto e = members_[*g]->Pick();
  if (!e) return std::nullopt;
  return Choice{*g, *e};
}

}  // namespace doorman::lb
