#include "dataplane/lb/source_hash.h"

#include <gtest/gtest.h>

#include <map>

#include "tests/unit/dataplane/lb/test_util.h"

namespace doorman::lb {
namespace {

using testing::Candidates;
using testing::ClientHash;

TEST(SourceHashTest, SameClientSameBackend) {
  SourceHash s(Candidates({1, 1, 1, 1}));
  for (uint64_t i = 0; i < 100; ++i) {
    const auto first = *s.Pick(PickContext{ClientHash(i), 0});
    for (int k = 0; k < 5; ++k) EXPECT_EQ(*s.Pick(PickContext{ClientHash(i), 0}), first);
  }
}

TEST(SourceHashTest, SpreadsClientsByWeight) {
  SourceHash s(Candidates({2, 1, 1}));
  std::map<std::size_t, int> n;
  for (uint64_t i = 0; i < 8000; ++i) n[*s.Pick(PickContext{ClientHash(i), 0})]++;
  EXPECT_NEAR(n[0], 4000, 300);
  EXPECT_NEAR(n[1], 2000, 300);
  EXPECT_NEAR(n[2], 2000, 300);
}

TEST(SourceHashTest, UnhealthyTargetFallsBackStablyAndOthersStay) {
  auto c = Candidates({1, 1, 1});
  SourceHash s(c);
  std::map<uint64_t, std::size_t> before;
  for (uint64_t i = 0; i < 300; ++i) before[i] = *s.Pick(PickContext{ClientHash(i), 0});
  c[0].health->healthy = false;
  for (uint64_t i = 0; i < 300; ++i) {
    const auto now = *s.Pick(PickContext{ClientHash(i), 0});
    EXPECT_NE(now, 0u);
    if (before[i] != 0) {
      EXPECT_EQ(now, before[i]);  // clients of healthy backends do not move
    }
    EXPECT_EQ(*s.Pick(PickContext{ClientHash(i), 0}), now);
  }
}

}  // namespace
}  // namespace doorman::lb
