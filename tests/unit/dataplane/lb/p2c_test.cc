#include "dataplane/lb/p2c.h"

#include <gtest/gtest.h>

#include <map>

#include "tests/unit/dataplane/lb/test_util.h"

namespace doorman::lb {
namespace {

using testing::Candidates;

TEST(P2cTest, NeverPicksTheMostLoadedOfThree) {
  // With two distinct draws out of three, the maximum is always beaten by the other draw.
  auto c = Candidates({1, 1, 1});
  c[2].state->active = 100;
  P2c s(c);
  for (uint64_t r = 1; r <= 1000; ++r) EXPECT_NE(*s.Pick(PickContext{0, r}), 2u);
}

TEST(P2cTest, BalancesHeldConnections) {
  P2c s(Candidates({1, 1, 1, 1}));
  std::map<std::size_t, int> n;
  for (uint64_t r = 1; r <= 400; ++r) {
    auto p = *s.Pick(PickContext{0, r * 7919});
    s.OnConnect(p);
    n[p]++;
  }
  for (std::size_t i = 0; i < 4; ++i) EXPECT_NEAR(n[i], 100, 10) << i;
}

TEST(P2cTest, DeterministicWithInjectedRandomness) {
  P2c a(Candidates({1, 1, 1, 1, 1}));
  P2c b(Candidates({1, 1, 1, 1, 1}));
  for (uint64_t r = 1; r < 100; ++r) EXPECT_EQ(*a.Pick(PickContext{0, r}), *b.Pick(PickContext{0, r}));
}

TEST(P2cTest, SingleCandidate) {
  P2c s(Candidates({1}));
  EXPECT_EQ(*s.Pick(), 0u);
}

}  // namespace
}  // namespace doorman::lb
