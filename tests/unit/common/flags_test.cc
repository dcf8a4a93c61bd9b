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

// A help text that gives its default in words gets no second, generated one (helper-105).
TEST(FlagSet, AHelpTextWithItsOwnDefaultIsNotGivenASecond) {
  bool remote = false;
  int64_t n = 3;
  FlagSet fs("prog", "test");
  fs.Bool("remote", &remote, "serve others too (default: loopback only)");
  fs.Int("count", &n, "a number");
  const std::string usage = fs.Usage();
  EXPECT_NE(usage.find("serve others too (default: loopback only)\n"), std::string::npos) << usage;
  EXPECT_NE(usage.find("a number (default: 3)"), std::string::npos) << usage;
}

// "--controller --metrics-listen X": the next flag is not taken as the value (helper-101), at the
// end or in the middle; "--name=--x" still passes a value that starts with "--".
TEST(FlagSetDeathTest, AFlagWithoutItsValueExits2) {
  std::string a;
  std::string b;
  FlagSet fs("prog", "test");
  fs.String("controller", &a, "address");
  fs.String("metrics-listen", &b, "address");
  const char* middle[] = {"prog", "--controller", "--metrics-listen", "127.0.0.1:1"};
  EXPECT_EXIT(fs.ParseOrExit(4, const_cast<char**>(middle)), ::testing::ExitedWithCode(2),
              "flag --controller needs a value");
  const char* last[] = {"prog", "--controller"};
  EXPECT_EXIT(fs.ParseOrExit(2, const_cast<char**>(last)), ::testing::ExitedWithCode(2), "flag --controller needs a value");
  const char* equals[] = {"prog", "--controller=--x"};
  fs.ParseOrExit(2, const_cast<char**>(equals));
  EXPECT_EQ(a, "--x");
}

}  // namespace
}  // namespace doorman
