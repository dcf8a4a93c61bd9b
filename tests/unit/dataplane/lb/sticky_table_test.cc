#include "dataplane/lb/sticky_table.h"

#include <gtest/gtest.h>

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
