#include "dataplane/lb/sticky_table.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

namespace doorman::lb {
namespace {

TEST(StickyTableTest, RemembersUntilTtlAfterLastUse) {
  StickyTable t(1000);
  EXPECT_FALSE(t.Lookup(1, 0));
  t.Remember(1, "a:1", 0);
  EXPECT_EQ(t.Lookup(1, 999), "a:1");
  t.Remember(1, "a:1", 900);  // refreshed by a new connection
  EXPECT_EQ(t.Lookup(1, 1800), "a:1");
  EXPECT_FALSE(t.Lookup(1, 1900));
  EXPECT_EQ(t.size(), 0u);  // expired entries are dropped on lookup
}

// IPVS keeps a persistence template while it controls connections and restarts its timer when
// one ends: a client whose connection outlives the TTL still comes back to its endpoint.
TEST(StickyTableTest, AnOpenConnectionKeepsItsClientPinned) {
  StickyTable t(1000);
  t.Remember(1, "a:1", 0);
  const uint64_t first = t.Hold(1, "a:1");
  const uint64_t second = t.Hold(1, "a:1");
  EXPECT_NE(first, 0u);
  EXPECT_EQ(t.Lookup(1, 5000), "a:1");  // past the TTL, two connections open
  t.Release(1, first, 6000);
  EXPECT_EQ(t.Lookup(1, 8000), "a:1");  // one still open
  t.Release(1, second, 9000);
  EXPECT_EQ(t.Lookup(1, 9999), "a:1");  // TTL from the last close
  EXPECT_FALSE(t.Lookup(1, 10000));
  t.Release(1, second, 10000);  // a second release of a gone entry does nothing
  EXPECT_EQ(t.size(), 0u);
}

TEST(StickyTableTest, HoldsOfAnOldPinningDoNotKeepANewOne) {
  StickyTable t(1000);
  EXPECT_EQ(t.Hold(1, "a:1"), 0u);  // not remembered: nothing held
  t.Remember(1, "a:1", 0);
  EXPECT_EQ(t.Hold(1, "b:1"), 0u);  // another endpoint than the remembered one
  const uint64_t old_token = t.Hold(1, "a:1");
  t.Remember(1, "b:1", 100);  // re-pinned (a:1 left): its connections no longer hold the entry
  EXPECT_FALSE(t.Lookup(1, 1100));
  t.Remember(1, "a:1", 2000);
  const uint64_t fresh = t.Hold(1, "a:1");
  t.Release(1, old_token, 2100);  // the old connection ends: the new one still holds
  EXPECT_EQ(t.Lookup(1, 5000), "a:1");
  t.Release(1, fresh, 5000);
  EXPECT_FALSE(t.Lookup(1, 6000));
  t.Remember(1, "a:1", 0);
  const uint64_t h = t.Hold(1, "a:1");
  t.Forget(1);  // forgotten (the endpoint refused): a release after it does nothing
  t.Release(1, h, 10);
  EXPECT_FALSE(t.Lookup(1, 10));
}

// A StickyHold releases once: on Release, else when destroyed; a moved-from one not at all.
TEST(StickyTableTest, AStickyHoldReleasesExactlyOnce) {
  auto t = std::make_shared<StickyTable>(1000);
  t->Remember(1, "a:1", 0);
  StickyHold kept(t, 1, t->Hold(1, "a:1"));
  {
    StickyHold first(t, 1, t->Hold(1, "a:1"));
    StickyHold moved(std::move(first));
    EXPECT_TRUE(moved.held());
    EXPECT_FALSE(first.held());  // NOLINT(bugprone-use-after-move): what is tested
  }  // `moved` released here (at the steady clock's now), `first` not at all: `kept` still holds
  const int64_t later = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch()).count() + 3'600'000;
  EXPECT_EQ(t->Lookup(1, later), "a:1");
  kept.Release(later);
  kept.Release(later + 500);  // a second Release does nothing (it would extend the TTL)
  EXPECT_EQ(t->Lookup(1, later + 999), "a:1");
  EXPECT_FALSE(t->Lookup(1, later + 1000));
  EXPECT_FALSE(StickyHold(t, 1, 0).held());  // nothing held: nothing to release
}

TEST(StickyTableTest, ClientsAreIndependentAndForgettable) {
  StickyTable t(1000);
  t.Remember(1, "a:1", 0);
  t.Remember(2, "b:1", 0);
  EXPECT_EQ(t.Lookup(2, 10), "b:1");
  t.Forget(1);
  EXPECT_FALSE(t.Lookup(1, 10));
}

TEST(StickyTableTest, BoundedPurgesExpiredThenRefuses) {
  StickyTable t(100, 16);  // 16 shards: 2 entries per shard
  for (uint64_t c = 0; c < 64; ++c) t.Remember(c, "x", 0);
  EXPECT_LE(t.size(), 32u);
  t.Remember(1000, "y", 50);  // shard full of live entries (scanned): not remembered
  EXPECT_FALSE(t.Lookup(1000, 60));
  // The old ones expired at 100, but a full shard is scanned at most once a second: the next
  // new client of that shard within the second is not remembered either (no scan per client).
  t.Remember(1000, "y", 200);
  EXPECT_FALSE(t.Lookup(1000, 210));
  t.Remember(1000, "y", 1050);  // a second after the last scan: purged, then remembered
  EXPECT_EQ(t.Lookup(1000, 1060), "y");
}

}  // namespace
}  // namespace doorman::lb
