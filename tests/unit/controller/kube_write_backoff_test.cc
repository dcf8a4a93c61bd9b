// WriteBackoff: per-key exponential backoff with jitter (reset on success or a new desired
// state) and log dedupe (first failure, error changes, recovery with the repeat count).
#include <gtest/gtest.h>

#include "controller/kube/write_backoff.h"

namespace doorman::controller::kube {
namespace {

using namespace std::chrono_literals;
using TP = WriteBackoff::TimePoint;

class WriteBackoffTest : public ::testing::Test {
 protected:
  double r_ = 0.0;  // lower edge of the jitter: delays are exactly half the ceiling
  WriteBackoff b_{WriteBackoffOptions{500ms, 5min}, [this] { return r_; }};
  TP t0_{};
};

TEST_F(WriteBackoffTest, DelayDoublesWithEqualJitterAndCaps) {
  EXPECT_EQ(b_.Delay(1, 0.0), 250ms);
  EXPECT_EQ(b_.Delay(1, 1.0), 500ms);
  EXPECT_EQ(b_.Delay(2, 1.0), 1000ms);
  EXPECT_EQ(b_.Delay(3, 1.0), 2000ms);
  EXPECT_EQ(b_.Delay(30, 1.0), std::chrono::milliseconds(5min));
  EXPECT_EQ(b_.Delay(1000, 0.0), std::chrono::milliseconds(150s));
  for (int i = 1; i < 12; ++i) EXPECT_GE(b_.Delay(i + 1, 0.0), b_.Delay(i, 0.0));
}

TEST_F(WriteBackoffTest, UnknownKeyIsReadyAndFailuresBackOff) {
  EXPECT_TRUE(b_.Ready("k", "d", t0_));
  auto line = b_.Failed("k", "d", "403 forbidden", t0_);
  ASSERT_TRUE(line);
  EXPECT_EQ(line->error, "403 forbidden");
  EXPECT_EQ(line->previous, "");
  EXPECT_EQ(line->failures, 1u);
  EXPECT_TRUE(b_.Failing("k"));
  EXPECT_FALSE(b_.Ready("k", "d", t0_ + 249ms));
  EXPECT_TRUE(b_.Ready("k", "d", t0_ + 250ms));
  // Each failure doubles the wait; the same error is not logged again.
  TP t = t0_ + 250ms;
  std::chrono::milliseconds expected = 500ms;
  for (int i = 0; i < 8; ++i) {
    EXPECT_FALSE(b_.Failed("k", "d", "403 forbidden", t));
    EXPECT_FALSE(b_.Ready("k", "d", t + expected - 1ms));
    EXPECT_TRUE(b_.Ready("k", "d", t + expected));
    t += expected;
    expected *= 2;
  }
  // Other keys are unaffected.
  EXPECT_TRUE(b_.Ready("other", "d", t0_));
}

TEST_F(WriteBackoffTest, ErrorChangeIsLoggedWithRepeatCountAndRecoveryResets) {
  ASSERT_TRUE(b_.Failed("k", "d", "403 a", t0_));
  EXPECT_FALSE(b_.Failed("k", "d", "403 a", t0_));
  EXPECT_FALSE(b_.Failed("k", "d", "403 a", t0_));
  auto line = b_.Failed("k", "d", "422 b", t0_);
  ASSERT_TRUE(line);
  EXPECT_EQ(line->previous, "403 a");
  EXPECT_EQ(line->repeats, 2u);
  EXPECT_EQ(line->failures, 4u);
  EXPECT_FALSE(b_.Failed("k", "d", "422 b", t0_));
  auto ok = b_.Succeeded("k");
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->recovered);
  EXPECT_EQ(ok->previous, "422 b");
  EXPECT_EQ(ok->repeats, 1u);
  EXPECT_EQ(ok->failures, 5u);
  EXPECT_FALSE(b_.Failing("k"));
  EXPECT_FALSE(b_.Succeeded("k")) << "nothing to report when it was not failing";
  // After recovery the backoff starts over and the next failure is logged again.
  EXPECT_TRUE(b_.Ready("k", "d", t0_));
  ASSERT_TRUE(b_.Failed("k", "d", "422 b", t0_));
  EXPECT_TRUE(b_.Ready("k", "d", t0_ + 250ms));
}

TEST_F(WriteBackoffTest, NewDesiredStateIsTriedAtOnceWithAFreshBackoff) {
  TP t = t0_;
  for (int i = 0; i < 10; ++i) {
    b_.Failed("k", "d1", "403", t);
    t = *b_.NextAttempt("k");
  }
  EXPECT_FALSE(b_.Ready("k", "d1", t - 1ms));
  EXPECT_TRUE(b_.Ready("k", "d2", t0_)) << "a changed desired status resets the backoff";
  EXPECT_FALSE(b_.Failed("k", "d2", "403", t0_)) << "the same error is still not logged again";
  EXPECT_EQ(*b_.NextAttempt("k"), t0_ + 250ms);
}

TEST_F(WriteBackoffTest, RetainDropsGoneKeys) {
  b_.Failed("a", "d", "e", t0_);
  b_.Failed("b", "d", "e", t0_);
  b_.Retain({"a"});
  EXPECT_TRUE(b_.Failing("a"));
  EXPECT_FALSE(b_.Failing("b"));
  b_.Clear();
  EXPECT_EQ(b_.size(), 0u);
}

}  // namespace
}  // namespace doorman::controller::kube
