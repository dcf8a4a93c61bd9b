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
