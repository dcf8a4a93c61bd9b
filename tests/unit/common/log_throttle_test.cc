#include "common/log_throttle.h"

#include <gtest/gtest.h>

namespace doorman::log {
namespace {

using std::chrono::seconds;

TEST(LogThrottle, SameMessageOncePerWindowThenCountsRepeats) {
  Throttle t(seconds(60));
  const Throttle::Clock::time_point t0{};
  uint64_t n = 99;
  EXPECT_TRUE(t.Allow("handshake failed", t0, &n));
  EXPECT_EQ(n, 0u);
  EXPECT_FALSE(t.Allow("handshake failed", t0 + seconds(1), &n));
  EXPECT_FALSE(t.Allow("handshake failed", t0 + seconds(59), &n));
  // Another message is independent.
  EXPECT_TRUE(t.Allow("socket closed", t0 + seconds(2), &n));
  EXPECT_EQ(n, 0u);
  // After the window: let through, reporting the two held back.
  EXPECT_TRUE(t.Allow("handshake failed", t0 + seconds(60), &n));
  EXPECT_EQ(n, 2u);
  EXPECT_FALSE(t.Allow("handshake failed", t0 + seconds(61), &n));
  EXPECT_TRUE(t.Allow("handshake failed", t0 + seconds(125), &n));
  EXPECT_EQ(n, 1u);
}

TEST(LogThrottle, BoundedTable) {
  Throttle t(seconds(60), /*max_keys=*/2);
  const Throttle::Clock::time_point t0{};
  uint64_t n = 0;
  EXPECT_TRUE(t.Allow("a", t0, &n));
  EXPECT_TRUE(t.Allow("b", t0, &n));
  EXPECT_FALSE(t.Allow("a", t0, &n));
  EXPECT_TRUE(t.Allow("c", t0, &n));  // table full: forgotten, so "a" is let through again once
  EXPECT_TRUE(t.Allow("a", t0, &n));
  EXPECT_FALSE(t.Allow("a", t0, &n));
}

}  // namespace
}  // namespace doorman::log
