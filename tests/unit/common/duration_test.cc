#include "common/duration.h"

#include <gtest/gtest.h>

#include <string>

namespace doorman {
namespace {

using std::chrono::milliseconds;

TEST(ParseDuration, AcceptsGoSyntax) {
  struct Case {
    const char* in;
    int64_t ms;
  } cases[] = {{"0", 0},        {"0s", 0},           {"500ms", 500}, {"2s", 2000},
               {"1.5s", 1500},  {"1m", 60000},       {"1h", 3600000}, {"1h30m", 5400000},
               {"350s", 350000}, {"1000us", 1},      {"2500000ns", 2}, {"1m0.5s", 60500}};
  for (const auto& c : cases) {
    auto d = ParseDuration(c.in);
    ASSERT_TRUE(d.has_value()) << c.in;
    EXPECT_EQ(d->count(), c.ms) << c.in;
  }
}

TEST(ParseDuration, ExactToTheNanosecond) {
  EXPECT_EQ(ParseDurationNs("500us")->count(), 500000);
  EXPECT_EQ(ParseDurationNs("1.5ms")->count(), 1500000);
  EXPECT_EQ(ParseDurationNs("0.3s")->count(), 300000000);  // not 299999999 (binary fractions)
  EXPECT_EQ(ParseDuration("0.3s")->count(), 300);
  EXPECT_EQ(ParseDuration("0.7s")->count(), 700);
  EXPECT_EQ(ParseDurationNs("\xC2\xB5s"), std::nullopt);  // a unit without a number
}

TEST(ParseDuration, RejectsMalformed) {
  for (const char* in : {"", "5", "-1s", "1x", "s", "1.s5", "ms", "1 s", "1h-2m", "99999999999999h"}) {
    EXPECT_FALSE(ParseDuration(in).has_value()) << in;
  }
}

TEST(ParseDuration, TooLongIsToldApartFromMalformed) {
  EXPECT_TRUE(DurationTooLong("99999999h"));
  EXPECT_TRUE(DurationTooLong("99999999999999h"));
  EXPECT_TRUE(DurationTooLong(std::string(6000, '9') + "s"));  // no overflow on the way
  EXPECT_FALSE(DurationTooLong("24h"));
  EXPECT_FALSE(DurationTooLong("99999999x"));
  EXPECT_FALSE(DurationTooLong("forever"));
}

TEST(FormatDuration, Shortest) {
  EXPECT_EQ(FormatDuration(milliseconds(0)), "0s");
  EXPECT_EQ(FormatDuration(milliseconds(500)), "500ms");
  EXPECT_EQ(FormatDuration(milliseconds(5400000)), "1h30m");
  EXPECT_EQ(FormatDuration(milliseconds(60500)), "1m500ms");
}

}  // namespace
}  // namespace doorman
