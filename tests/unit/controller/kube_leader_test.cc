// Leader election state machine: acquire, renew, lose, conflicts, release — on an injected clock.
#include <gtest/gtest.h>

#include "controller/kube/leader.h"

namespace doorman::controller::kube {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using TP = LeaderElection::TimePoint;

LeaderOptions Opts(const std::string& id) {
  LeaderOptions o;
  o.identity = id;
  o.ns = "doorman-system";
  o.name = "doorman-controller";
  o.lease_duration = seconds(15);
  o.renew_deadline = seconds(10);
  o.retry_period = seconds(2);
  return o;
}

json Lease(const std::string& holder, const std::string& renew, const std::string& rv, int64_t transitions = 0,
           int64_t duration = 15) {
  return {{"metadata", {{"name", "doorman-controller"}, {"namespace", "doorman-system"}, {"resourceVersion", rv}}},
          {"spec",
           {{"holderIdentity", holder},
            {"leaseDurationSeconds", duration},
            {"acquireTime", "2026-01-01T00:00:00.000000Z"},
            {"renewTime", renew},
            {"leaseTransitions", transitions}}}};
}

class LeaderTest : public ::testing::Test {
 protected:
  double rand_ = 0.0;
  TP t0_ = TP() + seconds(1000);
  LeaderElection a_{Opts("a"), [this] { return rand_; }};
};

TEST_F(LeaderTest, CreatesAMissingLeaseAndBecomesLeader) {
  auto w = a_.OnRead(std::nullopt, t0_, "T0");
  ASSERT_TRUE(w);
  EXPECT_TRUE(w->create);
  EXPECT_EQ(w->lease["spec"]["holderIdentity"], "a");
  EXPECT_EQ(w->lease["spec"]["leaseDurationSeconds"], 15);
  EXPECT_EQ(w->lease["spec"]["leaseTransitions"], 0);
  EXPECT_EQ(w->lease["spec"]["acquireTime"], "T0");
  EXPECT_FALSE(w->lease["metadata"].contains("resourceVersion"));
  EXPECT_FALSE(a_.IsLeader(t0_));
  a_.OnWriteResult(201, Lease("a", "T0", "1"), t0_);
  EXPECT_TRUE(a_.IsLeader(t0_));
  EXPECT_EQ(a_.NextAttempt(), t0_ + seconds(2));
}

TEST_F(LeaderTest, RenewsWithOptimisticConcurrencyKeepingAcquireTime) {
  a_.OnRead(std::nullopt, t0_, "T0");
  a_.OnWriteResult(201, Lease("a", "T0", "1"), t0_);
  auto w = a_.OnRead(Lease("a", "T0", "1"), t0_ + seconds(2), "T2");
  ASSERT_TRUE(w);
  EXPECT_FALSE(w->create);
  EXPECT_EQ(w->lease["metadata"]["resourceVersion"], "1");
  EXPECT_EQ(w->lease["spec"]["renewTime"], "T2");
  EXPECT_EQ(w->lease["spec"]["acquireTime"], "2026-01-01T00:00:00.000000Z");
  EXPECT_EQ(w->lease["spec"]["leaseTransitions"], 0);
}

TEST_F(LeaderTest, FollowsWhileAnotherHolderRenewsThenTakesOverAfterTheLeaseOnItsOwnClock) {
  // b holds it; its renewTime says nothing we trust — only that the record changes.
  EXPECT_FALSE(a_.OnRead(Lease("b", "R1", "7"), t0_, "X"));
  EXPECT_EQ(a_.observed_holder(), "b");
  EXPECT_FALSE(a_.OnRead(Lease("b", "R2", "8", 3), t0_ + seconds(10), "X"));  // renewed: clock restarts
  EXPECT_FALSE(a_.OnRead(Lease("b", "R2", "8", 3), t0_ + seconds(24), "X"));  // 14 s unchanged: still valid
  auto w = a_.OnRead(Lease("b", "R2", "8", 3), t0_ + seconds(25), "T25");    // 15 s: expired
  ASSERT_TRUE(w);
  EXPECT_EQ(w->lease["spec"]["holderIdentity"], "a");
  EXPECT_EQ(w->lease["spec"]["acquireTime"], "T25");
  EXPECT_EQ(w->lease["spec"]["leaseTransitions"], 4);
  EXPECT_EQ(w->lease["metadata"]["resourceVersion"], "8");
  // Someone else won the race for the same resourceVersion.
  a_.OnWriteResult(409, json(), t0_ + seconds(25));
  EXPECT_FALSE(a_.IsLeader(t0_ + seconds(25)));
}

TEST_F(LeaderTest, ReleasedLeaseIsTakenAtOnce) {
  auto w = a_.OnRead(Lease("", "R", "9", 2, 1), t0_, "T");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->lease["spec"]["holderIdentity"], "a");
}

TEST_F(LeaderTest, CandidateRetriesAreJittered) {
  rand_ = 0.5;
  a_.OnRead(Lease("b", "R", "1"), t0_, "X");
  EXPECT_EQ(a_.NextAttempt(), t0_ + milliseconds(2200));  // ×1.1 (up to ×1.2)
}

TEST_F(LeaderTest, LosesLeadershipWhenRenewalsFailPastTheDeadline) {
  a_.OnRead(std::nullopt, t0_, "T0");
  a_.OnWriteResult(201, Lease("a", "T0", "1"), t0_);
  for (int s = 2; s < 10; s += 2) {
    a_.OnReadFailed(500, t0_ + seconds(s));
    EXPECT_TRUE(a_.IsLeader(t0_ + seconds(s))) << s;
  }
  EXPECT_TRUE(a_.IsLeader(t0_ + milliseconds(9999)));
  EXPECT_FALSE(a_.IsLeader(t0_ + seconds(10)));  // renew deadline, before the 15 s lease ends
  auto logs = a_.TakeDiagnostics();
  ASSERT_FALSE(logs.empty());
  EXPECT_EQ(logs.back().message, "lost leadership");
}

TEST_F(LeaderTest, AFailingLeaseIsWarnedOnceWithAHintUntilItRecovers) {
  // The Lease's namespace does not exist: every create answers 404.
  std::vector<Diagnostic> logs;
  for (int s = 0; s < 10; s += 2) {
    a_.OnRead(std::nullopt, t0_ + seconds(s), "T");
    a_.OnWriteResult(404, json(), t0_ + seconds(s));
    for (auto& d : a_.TakeDiagnostics()) logs.push_back(std::move(d));
  }
  std::vector<const Diagnostic*> warns;
  for (const auto& d : logs) {
    if (d.level == log::Level::kWarn) warns.push_back(&d);
  }
  ASSERT_EQ(warns.size(), 1u);
  EXPECT_NE(warns[0]->Field("hint").find("does namespace doorman-system exist?"), std::string::npos);
  EXPECT_EQ(warns[0]->Field("lease"), "doorman-system/doorman-controller");
  // Another code is a new warning; then success ends the run.
  a_.OnWriteResult(403, json(), t0_ + seconds(12));
  auto more = a_.TakeDiagnostics();
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(more[0].level, log::Level::kWarn);
  EXPECT_NE(more[0].Field("hint").find("RBAC"), std::string::npos);
  EXPECT_EQ(more[0].Field("previous_repeats"), "4");  // the 404s after the first
  a_.OnWriteResult(201, Lease("a", "T", "1"), t0_ + seconds(14));
  auto done = a_.TakeDiagnostics();
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].message, "the lease is reachable again");
  EXPECT_EQ(done[1].message, "became leader");
}

TEST_F(LeaderTest, AnApiServerThatDoesNotAnswerIsWarnedToo) {
  a_.OnReadFailed(0, t0_);  // transport error: no HTTP status
  auto logs = a_.TakeDiagnostics();
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0].level, log::Level::kWarn);
  EXPECT_NE(logs[0].Field("hint").find("did not answer"), std::string::npos);
  a_.OnReadFailed(0, t0_ + seconds(2));
  EXPECT_EQ(a_.TakeDiagnostics()[0].level, log::Level::kDebug);
  a_.OnRead(std::nullopt, t0_ + seconds(4), "T");
  a_.OnWriteResult(201, Lease("a", "T", "1"), t0_ + seconds(4));
  EXPECT_EQ(a_.TakeDiagnostics()[0].message, "the lease is reachable again");
}

TEST_F(LeaderTest, StepsDownWhenTheLeaseShowsAnotherHolder) {
  a_.OnRead(std::nullopt, t0_, "T0");
  a_.OnWriteResult(201, Lease("a", "T0", "1"), t0_);
  EXPECT_FALSE(a_.OnRead(Lease("b", "Rb", "5"), t0_ + seconds(2), "X"));
  EXPECT_FALSE(a_.IsLeader(t0_ + seconds(2)));
}

TEST_F(LeaderTest, ReleaseClearsTheHolderWithTheObservedResourceVersion) {
  EXPECT_FALSE(a_.Release("T"));  // not leader: nothing to release
  a_.OnRead(std::nullopt, t0_, "T0");
  a_.OnWriteResult(201, Lease("a", "T0", "4", 1), t0_);
  auto r = a_.Release("T9");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->create);
  EXPECT_EQ(r->lease["spec"]["holderIdentity"], "");
  EXPECT_EQ(r->lease["spec"]["leaseDurationSeconds"], 1);
  EXPECT_EQ(r->lease["spec"]["leaseTransitions"], 1);
  EXPECT_EQ(r->lease["metadata"]["resourceVersion"], "4");
}

TEST_F(LeaderTest, TwoCandidatesOneWinner) {
  LeaderElection b{Opts("b"), [] { return 0.0; }};
  // Both read "no lease" and try to create it; the API lets one create succeed.
  auto wa = a_.OnRead(std::nullopt, t0_, "T");
  auto wb = b.OnRead(std::nullopt, t0_, "T");
  ASSERT_TRUE(wa && wb);
  a_.OnWriteResult(201, Lease("a", "T", "1"), t0_);
  b.OnWriteResult(409, json(), t0_);
  EXPECT_TRUE(a_.IsLeader(t0_));
  EXPECT_FALSE(b.IsLeader(t0_));
  // b then sees a renewing and stays a follower.
  EXPECT_FALSE(b.OnRead(Lease("a", "T2", "2"), t0_ + seconds(2), "X"));
  EXPECT_FALSE(b.OnRead(Lease("a", "T4", "3"), t0_ + seconds(4), "X"));
  EXPECT_FALSE(b.IsLeader(t0_ + seconds(4)));
}

}  // namespace
}  // namespace doorman::controller::kube
