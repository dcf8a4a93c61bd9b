#include "dataplane/server/deadline.h"

#include <gtest/gtest.h>

namespace doorman::dataplane {
namespace {

using Clock = CoarseClock;
using std::chrono::milliseconds;

// No socket is bound: the list logic alone (which deadlines fire, unlinking on destruction).
TEST(DeadlineTest, OnlyArmedAndExpiredDeadlinesFire) {
  DeadlineList list;
  Deadline a(list), b(list), c(list);
  EXPECT_EQ(list.size(), 0u);  // only armed deadlines are listed (a sweep visits nothing else)
  a.Arm(milliseconds(0));
  b.Arm(milliseconds(60'000));
  c.Arm(milliseconds(0));
  c.Disarm();
  EXPECT_EQ(list.size(), 2u);
  list.Sweep(Clock::now() + milliseconds(1));
  EXPECT_TRUE(a.fired());
  EXPECT_FALSE(b.fired());
  EXPECT_FALSE(c.fired());
  EXPECT_EQ(list.size(), 1u);  // a fired and left the list
  // A fired deadline does not fire again until re-armed; re-arming clears fired().
  a.Arm(milliseconds(60'000));
  EXPECT_FALSE(a.fired());
  list.Sweep(Clock::now() + milliseconds(1));
  EXPECT_FALSE(a.fired());
  list.Sweep(Clock::now() + milliseconds(120'000));
  EXPECT_TRUE(a.fired());
  EXPECT_TRUE(b.fired());
}

// Draining: the waits between requests (ArmIdle) fire at once, the other armed deadlines
// (a request or a tunnel in progress) keep theirs; re-arming with Arm clears the idle mark.
TEST(DeadlineTest, FireIdleFiresOnlyIdleWaits) {
  DeadlineList list;
  Deadline idle(list), busy(list), was_idle(list);
  idle.ArmIdle(milliseconds(60'000));
  busy.Arm(milliseconds(60'000));
  was_idle.ArmIdle(milliseconds(60'000));
  was_idle.Arm(milliseconds(60'000));
  list.FireIdle();
  EXPECT_TRUE(idle.fired());
  EXPECT_FALSE(busy.fired());
  EXPECT_FALSE(was_idle.fired());
  EXPECT_EQ(list.size(), 2u);
}

TEST(DeadlineTest, DestroyedDeadlinesLeaveTheList) {
  DeadlineList list;
  Deadline keep(list);
  {
    Deadline gone1(list), gone2(list);
    gone1.Arm(milliseconds(0));
    gone2.Arm(milliseconds(0));
    EXPECT_EQ(list.size(), 2u);
  }
  EXPECT_EQ(list.size(), 0u);
  keep.Arm(milliseconds(0));
  list.Sweep(Clock::now() + milliseconds(1));  // must not touch the destroyed ones
  EXPECT_TRUE(keep.fired());
}

// With a real socket: a sweep past an armed deadline cancels the pending read, which completes
// with operation_aborted and fired() tells the owner it was a timeout.
TEST(DeadlineTest, FiringCancelsThePendingOperation) {
  net::io_context ioc;
  Acceptor acc(ioc.get_executor(), tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  Socket client(ioc.get_executor());
  client.connect(acc.local_endpoint());
  Socket server = acc.accept();
  DeadlineList list;
  Deadline d(list, &client);
  char byte = 0;
  boost::system::error_code got;
  bool done = false;
  client.async_read_some(net::buffer(&byte, 1), [&](const boost::system::error_code& ec, std::size_t) {
    got = ec;
    done = true;
  });
  d.Arm(milliseconds(10));
  ioc.poll();
  EXPECT_FALSE(done);  // nothing to read, deadline not swept yet
  list.Sweep(Clock::now() + milliseconds(11));
  for (int i = 0; i < 100 && !done; ++i) ioc.run_one_for(milliseconds(10));
  ASSERT_TRUE(done);
  EXPECT_EQ(got, net::error::operation_aborted);
  EXPECT_TRUE(d.fired());
  EXPECT_EQ(list.size(), 0u);
}

}  // namespace
}  // namespace doorman::dataplane
