#include "common/hash.h"

#include <gtest/gtest.h>

namespace doorman {
namespace {

TEST(Hash, Fnv1aKnownVectors) {
  // Reference values from the FNV specification.
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(Hash, ContentVersionIs53BitAndNonZero) {
  for (const char* s : {"", "a", "snapshot", "another snapshot"}) {
    const uint64_t v = ContentVersion(s);
    EXPECT_NE(v, 0u);
    EXPECT_LT(v, uint64_t{1} << 53);
    EXPECT_EQ(static_cast<uint64_t>(static_cast<double>(v)), v);
  }
  EXPECT_NE(ContentVersion("a"), ContentVersion("b"));
}

}  // namespace
}  // namespace doorman
