#include "dataplane/lb/endpoint_picker.h"

#include <gtest/gtest.h>

#include <map>

namespace doorman::lb {
namespace {

using Key = std::pair<std::size_t, std::size_t>;

std::map<Key, int> Count(EndpointPicker& p, int n) {
  std::map<Key, int> out;
  for (int i = 0; i < n; ++i) {
    auto c = p.Pick();
    EXPECT_TRUE(c.has_value());
    if (c) out[{c->group, c->endpoint}]++;
  }
  return out;
}

TEST(EndpointPickerTest, SingleGroupRoundRobins) {
  EndpointPicker p({1}, {2});
  auto a = p.Pick();
  auto b = p.Pick();
  auto c = p.Pick();
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->endpoint, 0u);
  EXPECT_EQ(b->endpoint, 1u);
  EXPECT_EQ(c->endpoint, 0u);
  EXPECT_EQ(p.eligible(), 2u);
}

std::vector<EndpointPicker::Group> OneGroup(std::size_t n) {
  EndpointPicker::Group g;
  g.weight = 1;
  for (std::size_t i = 0; i < n; ++i) {
    g.endpoints.push_back(Candidate{"10.0.0." + std::to_string(i + 1) + ":80", 1, std::make_shared<EndpointState>(), std::make_shared<HealthSlot>()});
  }
  return {g};
}

// One set: an unhealthy endpoint's turns go to the others in order, strictly alternating.
TEST(EndpointPickerTest, RoundRobinStaysStrictWithAnEndpointDown) {
  for (auto kind : {SchedulerKind::kRoundRobin, SchedulerKind::kLeastConnections}) {
    auto groups = OneGroup(3);
    groups[0].endpoints[0].health->healthy = false;
    EndpointPicker p(kind, groups);
    std::vector<std::size_t> order;
    for (int i = 0; i < 6; ++i) order.push_back(p.Pick()->endpoint);
    EXPECT_EQ(order, (std::vector<std::size_t>{1, 2, 1, 2, 1, 2})) << SchedulerName(kind);
  }
}

// One set, every endpoint down (panic mode): the picks still alternate. The picker used to ask
// the set twice per pick, which over two endpoints always landed on the first.
TEST(EndpointPickerTest, PanicModeOverOneSetAlternates) {
  for (auto kind : {SchedulerKind::kRoundRobin, SchedulerKind::kWeightedRoundRobin, SchedulerKind::kLeastConnections,
                    SchedulerKind::kP2c}) {
    auto groups = OneGroup(2);
    for (auto& e : groups[0].endpoints) e.health->healthy = false;
    EndpointPicker p(kind, groups);
    auto counts = Count(p, 200);
    EXPECT_NEAR((counts[{0, 0}]), 100, 40) << SchedulerName(kind);
    EXPECT_NEAR((counts[{0, 1}]), 100, 40) << SchedulerName(kind);
  }
}

// Two sets, one entirely down: the healthy set takes all the traffic.
TEST(EndpointPickerTest, DownSetGivesItsTurnToTheOther) {
  auto groups = OneGroup(1);
  auto second = OneGroup(2);
  groups.push_back(second[0]);
  groups[0].endpoints[0].health->healthy = false;
  EndpointPicker p(SchedulerKind::kRoundRobin, groups);
  auto counts = Count(p, 100);
  EXPECT_EQ((counts[{0, 0}]), 0);
  EXPECT_EQ((counts[{1, 0}]), 50);
  EXPECT_EQ((counts[{1, 1}]), 50);
}

// Every set down (panic mode): the sets' weights still split the traffic (3:1 stays 3:1).
TEST(EndpointPickerTest, PanicModeKeepsTheSetWeights) {
  auto groups = OneGroup(1);
  auto second = OneGroup(1);
  groups.push_back(second[0]);
  groups[0].weight = 3;
  groups[1].weight = 1;
  for (auto& g : groups) g.endpoints[0].health->healthy = false;
  EndpointPicker p(SchedulerKind::kRoundRobin, groups);
  auto counts = Count(p, 400);
  EXPECT_EQ((counts[{0, 0}]), 300);
  EXPECT_EQ((counts[{1, 0}]), 100);
}

TEST(EndpointPickerTest, WeightsSplitAcrossGroupsWhateverTheirSizes) {
  // 90/10 between a 3-endpoint and a 1-endpoint set.
  EndpointPicker p({90, 10}, {3, 1});
  const auto counts = Count(p, 300);
  EXPECT_EQ(counts.at({0, 0}), 90);
  EXPECT_EQ(counts.at({0, 1}), 90);
  EXPECT_EQ(counts.at({0, 2}), 90);
  EXPECT_EQ(counts.at({1, 0}), 30);
}

TEST(EndpointPickerTest, GroupWithoutEndpointsGivesItsShareAway) {
  EndpointPicker p({50, 50}, {0, 2});
  const auto counts = Count(p, 10);
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts.at({1, 0}), 5);
  EXPECT_EQ(counts.at({1, 1}), 5);
}

TEST(EndpointPickerTest, ZeroWeightGroupGetsNothing) {
  EndpointPicker p({0, 1}, {4, 1});
  const auto counts = Count(p, 5);
  EXPECT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts.at({1, 0}), 5);
  EXPECT_EQ(p.eligible(), 1u);
}

TEST(EndpointPickerTest, NothingEligible) {
  EndpointPicker none({1, 1}, {0, 0});
  EXPECT_FALSE(none.Pick().has_value());
  EndpointPicker empty({}, {});
  EXPECT_FALSE(empty.Pick().has_value());
  EndpointPicker zero({0}, {3});
  EXPECT_FALSE(zero.Pick().has_value());
}

}  // namespace
}  // namespace doorman::lb
