#include "dataplane/l7/policy.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace doorman::dataplane {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(PolicyTest, Canary) {
  CanaryPolicy c;
  c.enabled = true;
  c.header_lower = "x-canary";
  c.header_values = {"1", "yes"};
  c.cookie = "canary";
  c.weight_percent = 10;
  EXPECT_TRUE(UseCanary(c, "1", std::nullopt, 99));
  EXPECT_TRUE(UseCanary(c, "yes", std::nullopt, 99));
  // An unlisted value is ignored (ingress-nginx): the cookie, then the weight, decide.
  EXPECT_TRUE(UseCanary(c, "no", "always", 99));
  EXPECT_FALSE(UseCanary(c, "no", "never", 0));
  EXPECT_TRUE(UseCanary(c, "no", std::nullopt, 0));
  EXPECT_FALSE(UseCanary(c, "no", std::nullopt, 10));
  EXPECT_TRUE(UseCanary(c, std::nullopt, "always", 99));
  EXPECT_FALSE(UseCanary(c, std::nullopt, "never", 0));
  EXPECT_TRUE(UseCanary(c, std::nullopt, std::nullopt, 9));
  EXPECT_FALSE(UseCanary(c, std::nullopt, std::nullopt, 10));
  int canary = 0;
  for (uint32_t dice = 0; dice < 100; ++dice) canary += UseCanary(c, std::nullopt, "other", dice);
  EXPECT_EQ(canary, 10);
  c.header_values.clear();  // "always" / "never" semantics
  EXPECT_TRUE(UseCanary(c, "always", std::nullopt, 99));
  EXPECT_FALSE(UseCanary(c, "never", std::nullopt, 0));
  EXPECT_TRUE(UseCanary(c, "other", std::nullopt, 0));  // falls through to the weight
  c.enabled = false;
  EXPECT_FALSE(UseCanary(c, "always", "always", 0));
}

TEST(PolicyTest, CanaryByRequestSaysWhenTheWeightDecides) {
  CanaryPolicy c;
  c.enabled = true;
  c.header_lower = "x-canary";
  c.cookie = "canary";
  c.weight_percent = 50;
  EXPECT_EQ(CanaryByRequest(c, "always", std::nullopt), true);
  EXPECT_EQ(CanaryByRequest(c, "never", "always"), false);
  EXPECT_EQ(CanaryByRequest(c, "other", "always"), true);
  EXPECT_EQ(CanaryByRequest(c, std::nullopt, std::nullopt), std::nullopt);
  EXPECT_EQ(CanaryByRequest(c, "other", "other"), std::nullopt);
}

TEST(PolicyTest, StickyCookie) {
  const uint64_t h1 = StickyHash("10.0.0.1:80");
  EXPECT_EQ(h1, StickyHash("10.0.0.1:80"));  // any dataplane, and any route with this endpoint, computes the same
  EXPECT_NE(h1, StickyHash("10.0.0.2:80"));
  EXPECT_NE(h1, StickyHash("10.0.0.1:81"));
  const std::string v = StickyCookieValue(h1);
  EXPECT_EQ(v.size(), 16u);
  EXPECT_EQ(ParseStickyCookieValue(v), h1);
  EXPECT_EQ(ParseStickyCookieValue(StickyCookieValue(0)), 0u);
  for (const char* bad : {"", "123", "0123456789abcdeg", "0123456789ABCDEF", "0123456789abcdef0"}) {
    EXPECT_FALSE(ParseStickyCookieValue(bad)) << bad;
  }
  EXPECT_EQ(StickySetCookie("S", "ab", milliseconds(3'600'000), false), "S=ab; Path=/; HttpOnly; Max-Age=3600");
  EXPECT_EQ(StickySetCookie("S", "ab", milliseconds(0), true), "S=ab; Path=/; HttpOnly; Secure");
  EXPECT_EQ(StickySetCookie("S", "ab", milliseconds(0), false, "/api"), "S=ab; Path=/api; HttpOnly");
  EXPECT_EQ(StickySetCookie("S", "ab", milliseconds(0), false, ""), "S=ab; Path=/; HttpOnly");
  // Prefixed names: Secure whatever the listener, and a __Host- cookie's Path is "/".
  EXPECT_EQ(StickySetCookie("__Secure-S", "ab", milliseconds(0), false, "/api"), "__Secure-S=ab; Path=/api; HttpOnly; Secure");
  EXPECT_EQ(StickySetCookie("__host-S", "ab", milliseconds(0), false, "/api"), "__host-S=ab; Path=/; HttpOnly; Secure");
  EXPECT_EQ(StickySetCookie("__Hostile", "ab", milliseconds(0), false, "/api"), "__Hostile=ab; Path=/api; HttpOnly");
}

TEST(PolicyTest, TokenBucket) {
  const SteadyTime t0{};
  TokenBucket b(2.0, 3.0, t0);  // 2/s, burst 3
  uint32_t retry = 0;
  EXPECT_TRUE(b.Take(t0, &retry));
  EXPECT_TRUE(b.Take(t0, &retry));
  EXPECT_TRUE(b.Take(t0, &retry));
  EXPECT_FALSE(b.Take(t0, &retry));
  EXPECT_EQ(retry, 1u);
  EXPECT_FALSE(b.Take(t0 + milliseconds(400), &retry));
  EXPECT_TRUE(b.Take(t0 + milliseconds(500), &retry));  // one token after 0.5 s
  EXPECT_FALSE(b.Take(t0 + milliseconds(500), &retry));
  EXPECT_TRUE(b.Full(t0 + seconds(10)));
  TokenBucket slow(0.1, 1.0, t0);
  EXPECT_TRUE(slow.Take(t0, &retry));
  EXPECT_FALSE(slow.Take(t0, &retry));
  EXPECT_EQ(retry, 10u);
}

TEST(PolicyTest, RateLimiterKeysAreIndependentAndBounded) {
  const SteadyTime t0{};
  RateLimiter rl(1, 1, 4);
  uint32_t retry = 0;
  EXPECT_TRUE(rl.Allow("a", t0, &retry));
  EXPECT_FALSE(rl.Allow("a", t0, &retry));
  EXPECT_TRUE(rl.Allow("b", t0, &retry));
  for (const char* k : {"c", "d", "e", "f"}) rl.Allow(k, t0, &retry);
  EXPECT_LE(rl.keys(), 4u);
  EXPECT_TRUE(rl.Allow("a", t0 + seconds(1), &retry));
}

TEST(PolicyTest, RateLimiterLongKeysStayDistinctAndAFullTableEvictsOnlyAFew) {
  const SteadyTime t0{};
  uint32_t retry = 0;
  // 30 KB header values (stored as a prefix and a hash): equal ones share a bucket, ones that
  // differ only at the end do not.
  RateLimiter rl(1, 1);
  const std::string a(30000, 'k'), b = a.substr(0, 29999) + "x";
  EXPECT_TRUE(rl.Allow(a, t0, &retry));
  EXPECT_FALSE(rl.Allow(a, t0, &retry));
  EXPECT_TRUE(rl.Allow(b, t0, &retry));
  EXPECT_FALSE(rl.Allow(std::string(b), t0, &retry));
  // 64 clients each spent their burst; a flood of new keys evicts a sixteenth per overflow, so
  // most of the 64 stay limited (the table was cleared whole before: every client got a fresh burst).
  RateLimiter small(1, 1, 64);
  for (int i = 0; i < 64; ++i) EXPECT_TRUE(small.Allow("client-" + std::to_string(i), t0, &retry));
  EXPECT_TRUE(small.Allow("newcomer", t0, &retry));
  EXPECT_LE(small.keys(), 64u);
  int still_limited = 0;
  for (int i = 0; i < 64; ++i) still_limited += small.Allow("client-" + std::to_string(i), t0, &retry) ? 0 : 1;
  EXPECT_GE(still_limited, 56);
}

TEST(PolicyTest, RetryBudgetAndConditions) {
  EXPECT_TRUE(RetryBudgetAllows(0, 0));
  EXPECT_TRUE(RetryBudgetAllows(0, 2));
  EXPECT_FALSE(RetryBudgetAllows(0, 3));
  EXPECT_TRUE(RetryBudgetAllows(100, 19));
  EXPECT_FALSE(RetryBudgetAllows(100, 20));
  EXPECT_TRUE(IsIdempotentMethod("GET"));
  EXPECT_TRUE(IsIdempotentMethod("PUT"));
  EXPECT_FALSE(IsIdempotentMethod("POST"));
  EXPECT_FALSE(IsIdempotentMethod("PATCH"));
  RetryOn on;
  on.statuses = {503};
  EXPECT_TRUE(on.Status(503));
  EXPECT_FALSE(on.Status(502));
  EXPECT_FALSE(on.OnTimeout());
  on.statuses.push_back(504);
  EXPECT_TRUE(on.OnTimeout());  // a per-try timeout counts as 504
  RetryOn any;
  any.any_5xx = true;
  EXPECT_TRUE(any.Status(500));
  EXPECT_TRUE(any.Status(599));
  EXPECT_FALSE(any.Status(499));
  EXPECT_TRUE(any.OnTimeout());
  RetryOn t;
  t.timeout = true;
  EXPECT_TRUE(t.OnTimeout());
  EXPECT_FALSE(t.Status(504));
}

TEST(PolicyTest, OutlierDetectorEjectsForGrowingPeriods) {
  OutlierDetector::Config cfg;
  cfg.consecutive_failures = 3;
  cfg.base_ejection = seconds(10);
  cfg.max_ejection = seconds(30);
  const OutlierDetector d(cfg);
  lb::EndpointState e, other;
  SteadyTime t = SteadyTime{} + seconds(1000);
  EXPECT_FALSE(d.OnFailure(e, t));
  EXPECT_FALSE(d.OnFailure(e, t));
  d.OnSuccess(e);  // resets the run
  EXPECT_FALSE(d.OnFailure(e, t));
  EXPECT_FALSE(d.OnFailure(e, t));
  EXPECT_TRUE(d.OnFailure(e, t));
  EXPECT_TRUE(d.Ejected(e, t + seconds(9)));
  EXPECT_FALSE(d.Ejected(e, t + seconds(10)));
  EXPECT_FALSE(d.Ejected(other, t));
  EXPECT_FALSE(d.OnFailure(e, t + seconds(5)));  // failures while ejected do not count
  t += seconds(10);
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(d.OnFailure(e, t));
  EXPECT_TRUE(d.OnFailure(e, t));  // second ejection: 20 s
  EXPECT_TRUE(d.Ejected(e, t + seconds(19)));
  EXPECT_FALSE(d.Ejected(e, t + seconds(20)));
  t += seconds(20);
  for (int i = 0; i < 2; ++i) d.OnFailure(e, t);
  EXPECT_TRUE(d.OnFailure(e, t));  // third: 40 s capped at 30 s
  EXPECT_TRUE(d.Ejected(e, t + seconds(29)));
  EXPECT_FALSE(d.Ejected(e, t + seconds(30)));
  // Healthy for longer than max_ejection after the ejection ended: back to the base period.
  t += seconds(30) + seconds(31);
  for (int i = 0; i < 2; ++i) d.OnFailure(e, t);
  EXPECT_TRUE(d.OnFailure(e, t));
  EXPECT_FALSE(d.Ejected(e, t + seconds(10)));
}

// Every worker feeds the same EndpointState: N failures in a row seen by the dataplane eject the
// endpoint once, whichever threads saw them.
TEST(PolicyTest, OutlierDetectionIsSharedAcrossThreads) {
  OutlierDetector::Config cfg;
  cfg.consecutive_failures = 1000;
  const OutlierDetector d(cfg);
  lb::EndpointState e;
  const SteadyTime t = SteadyTime{} + seconds(1000);
  std::atomic<int> ejected{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 250; ++k) ejected += d.OnFailure(e, t) ? 1 : 0;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ejected.load(), 1);  // 4 × 250 = the threshold, reached once
  EXPECT_TRUE(d.Ejected(e, t));
  EXPECT_EQ(e.ejections.load(), 1u);
}

}  // namespace
}  // namespace doorman::dataplane
