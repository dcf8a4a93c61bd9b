#include "dataplane/lb/round_robin.h"

#include <gtest/gtest.h>

#include <map>

namespace doorman::lb {
namespace {

std::vector<std::size_t> Take(Scheduler& s, int n) {
  std::vector<std::size_t> out;
  for (int i = 0; i < n; ++i) out.push_back(*s.Pick());
  return out;
}

TEST(RoundRobinTest, UniformCyclesInOrder) {
  auto rr = RoundRobin::Uniform(3);
  EXPECT_EQ(Take(*rr, 7), (std::vector<std::size_t>{0, 1, 2, 0, 1, 2, 0}));
  EXPECT_EQ(rr->eligible(), 3u);
}

TEST(RoundRobinTest, EmptyAndAllZeroPickNothing) {
  RoundRobin empty(std::vector<uint32_t>{});
  EXPECT_FALSE(empty.Pick().has_value());
  RoundRobin zeros({0, 0});
  EXPECT_FALSE(zeros.Pick().has_value());
  EXPECT_EQ(zeros.eligible(), 0u);
}

TEST(RoundRobinTest, SmoothScheduleIsInterleaved) {
  // nginx's classic example: weights 5,1,1 → a a b a c a a.
  EXPECT_EQ(SmoothWeightedSchedule({5, 1, 1}), (std::vector<uint32_t>{0, 0, 1, 0, 2, 0, 0}));
}

TEST(RoundRobinTest, WeightsAreHonouredOverAFullCycle) {
  struct Case {
    std::vector<uint32_t> weights;
    std::vector<int> expected_per_cycle;  // after GCD reduction
  };
  const std::vector<Case> cases = {
      {{1, 1}, {1, 1}},
      {{90, 10}, {9, 1}},
      {{3, 0, 1}, {3, 0, 1}},
      {{0, 7}, {0, 1}},
      {{2, 4, 6}, {1, 2, 3}},
  };
  for (const auto& c : cases) {
    const auto sched = SmoothWeightedSchedule(c.weights);
    std::vector<int> counts(c.weights.size(), 0);
    for (auto i : sched) counts[i]++;
    EXPECT_EQ(counts, c.expected_per_cycle);
  }
}

TEST(RoundRobinTest, HugeWeightsAreScaledButKeepEveryNonZeroEntry) {
  const auto sched = SmoothWeightedSchedule({1'000'000, 1, 0});
  EXPECT_LE(sched.size(), kMaxScheduleLength + 2);
  std::map<uint32_t, int> counts;
  for (auto i : sched) counts[i]++;
  EXPECT_GE(counts[1], 1);
  EXPECT_EQ(counts.count(2), 0u);
  EXPECT_GT(counts[0], 4000);
}

TEST(RoundRobinTest, WeightedPickFollowsTheSchedule) {
  RoundRobin rr({2, 1});
  EXPECT_EQ(Take(rr, 6), (std::vector<std::size_t>{0, 1, 0, 0, 1, 0}));
}

}  // namespace
}  // namespace doorman::lb
