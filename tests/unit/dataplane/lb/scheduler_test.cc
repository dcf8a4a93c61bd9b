#include "dataplane/lb/scheduler.h"

#include <gtest/gtest.h>

#include <map>

#include "tests/unit/dataplane/lb/test_util.h"

namespace doorman::lb {
namespace {

using testing::Candidates;
using testing::ClientHash;

TEST(SchedulerNameTest, ParsesEveryApiName) {
  EXPECT_EQ(ParseSchedulerName(""), SchedulerKind::kRoundRobin);
  for (auto k : {SchedulerKind::kRoundRobin, SchedulerKind::kWeightedRoundRobin, SchedulerKind::kLeastConnections,
                 SchedulerKind::kSourceHash, SchedulerKind::kMaglev, SchedulerKind::kP2c}) {
    EXPECT_EQ(ParseSchedulerName(SchedulerName(k)), k) << SchedulerName(k);
  }
  EXPECT_FALSE(ParseSchedulerName("random").has_value());
  EXPECT_FALSE(ParseSchedulerName("Maglev").has_value());
}

TEST(SchedulerTest, HashKeySpreadsNeighbouringKeys) {
  std::map<uint64_t, int> buckets;
  for (uint64_t i = 0; i < 1000; ++i) buckets[ClientHash(i) % 10]++;
  for (const auto& [b, n] : buckets) EXPECT_NEAR(n, 100, 40) << b;
}

// Every scheduler: empty set and all-zero weights pick nothing; a single candidate is always
// picked; with every candidate unhealthy it fails open (panic mode) instead of refusing.
class EveryScheduler : public ::testing::TestWithParam<SchedulerKind> {};

std::string ParamName(const ::testing::TestParamInfo<SchedulerKind>& p) {
  std::string n(SchedulerName(p.param));
  for (auto& ch : n) ch = ch == '-' ? '_' : ch;
  return n;
}

TEST_P(EveryScheduler, EmptyAndZeroWeightsPickNothing) {
  EXPECT_FALSE(MakeScheduler(GetParam(), {})->Pick().has_value());
  auto zeros = MakeScheduler(GetParam(), Candidates({0, 0}));
  EXPECT_FALSE(zeros->Pick(PickContext{ClientHash(1), 0}).has_value());
  EXPECT_EQ(zeros->eligible(), 0u);
}

TEST_P(EveryScheduler, SkipsUnhealthyAndFailsOpenWhenAllAreDown) {
  auto c = Candidates({1, 1, 1});
  c[1].health->healthy = false;
  auto s = MakeScheduler(GetParam(), c);
  for (uint64_t i = 0; i < 300; ++i) {
    auto p = s->Pick(PickContext{ClientHash(i), i + 1});
    ASSERT_TRUE(p.has_value());
    EXPECT_NE(*p, 1u);
  }
  for (auto& x : c) x.health->healthy = false;
  std::map<std::size_t, int> seen;
  for (uint64_t i = 0; i < 300; ++i) {
    auto p = s->Pick(PickContext{ClientHash(i), i + 1});
    ASSERT_TRUE(p.has_value());  // panic mode: fail open
    seen[*p]++;
  }
  // ... and still spreads the load: every candidate gets a fair part, not one of them all of it.
  for (std::size_t i = 0; i < 3; ++i) EXPECT_GE(seen[i], 50) << "candidate " << i << " in panic mode";
}

// With one of three down, the two others share its traffic evenly: no candidate inherits the
// down one's turns (round-robin used to serve B,B,C with A of [A,B,C] down).
TEST_P(EveryScheduler, UnhealthyShareSpreadsEvenly) {
  auto c = Candidates({1, 1, 1});
  c[0].health->healthy = false;
  auto s = MakeScheduler(GetParam(), c);
  std::map<std::size_t, int> seen;
  for (uint64_t i = 0; i < 600; ++i) seen[*s->Pick(PickContext{ClientHash(i), i + 1})]++;
  EXPECT_EQ(seen[0], 0);
  const bool exact = GetParam() == SchedulerKind::kRoundRobin || GetParam() == SchedulerKind::kWeightedRoundRobin ||
                     GetParam() == SchedulerKind::kLeastConnections;
  if (exact) {
    EXPECT_EQ(seen[1], 300);
    EXPECT_EQ(seen[2], 300);
  } else {
    EXPECT_NEAR(seen[1], 300, 75);
    EXPECT_NEAR(seen[2], 300, 75);
  }
}

// An endpoint ejected by outlier detection is skipped like an unhealthy one (least-connections
// would otherwise prefer it: a dead endpoint is always the least loaded); once the ejection
// expires it is back.
TEST_P(EveryScheduler, EjectedEndpointIsSkippedUntilTheEjectionEnds) {
  auto c = Candidates({1, 1, 1});
  c[1].state->active = 5;
  c[2].state->active = 5;
  c[0].state->ejected_until_ms = SteadyNowMs() + 60'000;
  auto s = MakeScheduler(GetParam(), c);
  for (uint64_t i = 0; i < 100; ++i) EXPECT_NE(*s->Pick(PickContext{ClientHash(i), i + 1}), 0u);
  c[0].state->ejected_until_ms = SteadyNowMs() - 1;
  std::map<std::size_t, int> seen;
  for (uint64_t i = 0; i < 300; ++i) seen[*s->Pick(PickContext{ClientHash(i), i + 1})]++;
  EXPECT_GT(seen[0], 0);
}

// Panic mode over two candidates alternates (it used to send every pick to the first).
TEST_P(EveryScheduler, PanicModeOverTwoSpreads) {
  auto c = Candidates({1, 1});
  for (auto& x : c) x.health->healthy = false;
  auto s = MakeScheduler(GetParam(), c);
  std::map<std::size_t, int> seen;
  for (uint64_t i = 0; i < 400; ++i) seen[*s->Pick(PickContext{ClientHash(i), i + 1})]++;
  EXPECT_NEAR(seen[0], 200, 60);
  EXPECT_NEAR(seen[1], 200, 60);
}

TEST_P(EveryScheduler, ZeroWeightCandidateNeverPicked) {
  auto s = MakeScheduler(GetParam(), Candidates({1, 0, 1}));
  for (uint64_t i = 0; i < 500; ++i) {
    auto p = s->Pick(PickContext{ClientHash(i), i + 1});
    ASSERT_TRUE(p.has_value());
    EXPECT_NE(*p, 1u);
  }
  EXPECT_EQ(s->eligible(), 2u);
}

TEST_P(EveryScheduler, ConnectHooksMaintainSharedLoad) {
  auto c = Candidates({1, 1});
  auto s = MakeScheduler(GetParam(), c);
  s->OnConnect(0);
  s->OnConnect(0);
  s->OnDisconnect(0);
  EXPECT_EQ(c[0].state->active.load(), 1);
  EXPECT_EQ(c[1].state->active.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(All, EveryScheduler,
                         ::testing::Values(SchedulerKind::kRoundRobin, SchedulerKind::kWeightedRoundRobin,
                                           SchedulerKind::kLeastConnections, SchedulerKind::kSourceHash,
                                           SchedulerKind::kMaglev, SchedulerKind::kP2c),
                         ParamName);

TEST(SchedulerTest, RoundRobinIgnoresWeightsWeightedHonoursThem) {
  auto rr = MakeScheduler(SchedulerKind::kRoundRobin, Candidates({3, 1}));
  auto wrr = MakeScheduler(SchedulerKind::kWeightedRoundRobin, Candidates({3, 1}));
  std::map<std::size_t, int> a, b;
  for (int i = 0; i < 400; ++i) {
    a[*rr->Pick()]++;
    b[*wrr->Pick()]++;
  }
  EXPECT_EQ(a[0], 200);
  EXPECT_EQ(b[0], 300);
  EXPECT_EQ(b[1], 100);
}

}  // namespace
}  // namespace doorman::lb
