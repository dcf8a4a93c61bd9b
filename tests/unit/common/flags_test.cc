#include "common/flags.h"

#include <gtest/gtest.h>

namespace doorman {
namespace {

TEST(SplitHostPort, Forms) {
  std::string h;
  uint16_t p = 0;
  ASSERT_TRUE(SplitHostPort("127.0.0.1:18000", &h, &p));
  EXPECT_EQ(h, "127.0.0.1");
  EXPECT_EQ(p, 18000);
  ASSERT_TRUE(SplitHostPort(":9100", &h, &p));
  EXPECT_EQ(h, "0.0.0.0");
  EXPECT_EQ(p, 9100);
  ASSERT_TRUE(SplitHostPort("[::1]:80", &h, &p));
  EXPECT_EQ(h, "::1");
  EXPECT_EQ(p, 80);
  EXPECT_FALSE(SplitHostPort("127.0.0.1", &h, &p));
  EXPECT_FALSE(SplitHostPort("127.0.0.1:", &h, &p));
  EXPECT_FALSE(SplitHostPort("127.0.0.1:65536", &h, &p));
  EXPECT_FALSE(SplitHostPort("::1:80", &h, &p));
  EXPECT_FALSE(SplitHostPort("host:8x", &h, &p));
}

TEST(FlagSet, ParsesBothForms) {
  std::string s = "def";
  int64_t n = 1;
  bool b = false;
  int64_t d = 0;
  FlagSet fs("prog", "test");
  fs.String("name", &s, "a string");
  fs.Int("count", &n, "a number");
  fs.Bool("on", &b, "a bool");
  fs.DurationMs("wait", &d, "a duration");
  const char* argv[] = {"prog", "--name", "x", "--count=7", "--on", "--wait=1.5s", "pos"};
  auto rest = fs.ParseOrExit(7, const_cast<char**>(argv));
  EXPECT_EQ(s, "x");
  EXPECT_EQ(n, 7);
  EXPECT_TRUE(b);
  EXPECT_EQ(d, 1500);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0], "pos");
}

TEST(FlagSetDeathTest, UnknownFlagExits2) {
  FlagSet fs("prog", "test");
  const char* argv[] = {"prog", "--nope"};
  EXPECT_EXIT(fs.ParseOrExit(2, const_cast<char**>(argv)), ::testing::ExitedWithCode(2), "unknown flag --nope");
}

TEST(FlagSetDeathTest, BadValueExits2) {
  int64_t n = 0;
  FlagSet fs("prog", "test");
  fs.Int("count", &n, "a number");
  const char* argv[] = {"prog", "--count", "many"};
  EXPECT_EXIT(fs.ParseOrExit(3, const_cast<char**>(argv)), ::testing::ExitedWithCode(2), "invalid value");
}

}  // namespace
}  // namespace doorman
