#include "dataplane/lb/least_connections.h"

#include <gtest/gtest.h>

#include <map>

#include "tests/unit/dataplane/lb/test_util.h"

namespace doorman::lb {
namespace {

using testing::Candidates;

TEST(LeastConnectionsTest, PicksTheLeastLoaded) {
  auto c = Candidates({1, 1, 1});
  c[0].state->active = 5;
  c[1].state->active = 2;
  c[2].state->active = 7;
  LeastConnections s(c);
  EXPECT_EQ(*s.Pick(), 1u);
}

TEST(LeastConnectionsTest, WeightedByConnectionsPerWeight) {
  // (active+1)/weight: a: 4/4 = 1.0, b: 2/1 = 2.0 → a despite more connections.
  auto c = Candidates({4, 1});
  c[0].state->active = 3;
  c[1].state->active = 1;
  LeastConnections s(c);
  EXPECT_EQ(*s.Pick(), 0u);
}

TEST(LeastConnectionsTest, ConnectionsSpreadEvenlyWhenHeld) {
  LeastConnections s(Candidates({1, 1, 1}));
  std::map<std::size_t, int> n;
  for (int i = 0; i < 30; ++i) {
    auto p = *s.Pick();
    s.OnConnect(p);
    n[p]++;
  }
  EXPECT_EQ(n[0], 10);
  EXPECT_EQ(n[1], 10);
  EXPECT_EQ(n[2], 10);
}

TEST(LeastConnectionsTest, WeightedSpreadWhenHeld) {
  LeastConnections s(Candidates({3, 1}));
  std::map<std::size_t, int> n;
  for (int i = 0; i < 40; ++i) {
    auto p = *s.Pick();
    s.OnConnect(p);
    n[p]++;
  }
  EXPECT_EQ(n[0], 30);
  EXPECT_EQ(n[1], 10);
}

TEST(LeastConnectionsTest, TiesRotate) {
  LeastConnections s(Candidates({1, 1, 1}));
  std::map<std::size_t, int> n;
  for (int i = 0; i < 30; ++i) n[*s.Pick()]++;  // nobody connects: all tied every time
  EXPECT_EQ(n.size(), 3u);
}

}  // namespace
}  // namespace doorman::lb
