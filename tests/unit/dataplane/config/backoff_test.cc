#include "dataplane/config/backoff.h"

#include <gtest/gtest.h>

namespace doorman::dataplane {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, GrowsExponentiallyWithJitterAndIsCapped) {
  // unit_random 0 → half the ceiling; just under 1 → (almost) the ceiling.
  EXPECT_EQ(Backoff::Delay(0, 0.0), milliseconds(125));
  EXPECT_EQ(Backoff::Delay(0, 1.0), milliseconds(250));
  EXPECT_EQ(Backoff::Delay(1, 0.0), milliseconds(250));
  EXPECT_EQ(Backoff::Delay(2, 1.0), milliseconds(1000));
  EXPECT_EQ(Backoff::Delay(5, 1.0), milliseconds(5000));  // 8 s ceiling capped to 5 s
  EXPECT_EQ(Backoff::Delay(1000, 0.0), milliseconds(2500));
  EXPECT_EQ(Backoff::Delay(-3, 0.5), Backoff::Delay(0, 0.5));
  for (int f = 0; f < 40; ++f) {
    EXPECT_LE(Backoff::Delay(f, 0.999), Backoff::kMax);
    EXPECT_GE(Backoff::Delay(f, 0.0), Backoff::kInitial / 2);
  }
}

}  // namespace
}  // namespace doorman::dataplane
