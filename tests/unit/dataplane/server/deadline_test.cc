#include "dataplane/server/deadline.h"

#include <gtest/gtest.h>

namespace doorman::dataplane {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// No socket is bound: the list logic alone (which deadlines fire, unlinking on destruction).
TEST(DeadlineTest, OnlyArmedAndExpiredDeadlinesFire) {
  DeadlineList list;
  Deadline a(list), b(list), c(list);
  EXPECT_EQ(list.size(), 3u);
  a.Arm(milliseconds(0));
  b.Arm(milliseconds(60'000));
  c.Arm(milliseconds(0));
  c.Disarm();
  list.Sweep(Clock::now() + milliseconds(1));
  EXPECT_TRUE(a.fired());
  EXPECT_FALSE(b.fired());
  EXPECT_FALSE(c.fired());
  // A fired deadline does not fire again until re-armed; re-arming clears fired().
  a.Arm(milliseconds(60'000));
  EXPECT_FALSE(a.fired());
  list.Sweep(Clock::now() + milliseconds(1));
  EXPECT_FALSE(a.fired());
  list.Sweep(Clock::now() + milliseconds(120'000));
  EXPECT_TRUE(a.fired());
  EXPECT_TRUE(b.fired());
}

TEST(DeadlineTest, DestroyedDeadlinesLeaveTheList) {
  DeadlineList list;
  Deadline keep(list);
  {
    Deadline gone1(list), gone2(list);
    gone1.Arm(milliseconds(0));
    EXPECT_EQ(list.size(), 3u);
  }
  EXPECT_EQ(list.size(), 1u);
  keep.Arm(milliseconds(0));
  list.Sweep(Clock::now() + milliseconds(1));  // must not touch the destroyed ones
  EXPECT_TRUE(keep.fired());
}

}  // namespace
}  // namespace doorman::dataplane
