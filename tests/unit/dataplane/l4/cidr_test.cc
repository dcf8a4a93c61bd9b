#include "dataplane/l4/cidr.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

namespace doorman::l4 {
namespace {

bool Allowed(const std::vector<std::string>& ranges, const std::string& ip) {
  std::vector<Cidr> cs;
  for (const auto& r : ranges) {
    auto c = ParseCidr(r);
    EXPECT_TRUE(c.has_value()) << r;
    if (c) cs.push_back(*c);
  }
  uint8_t buf[16];
  if (inet_pton(AF_INET, ip.c_str(), buf) == 1) return SourceAllowed(cs, buf, 4);
  EXPECT_EQ(inet_pton(AF_INET6, ip.c_str(), buf), 1) << ip;
  return SourceAllowed(cs, buf, 16);
}

TEST(CidrTest, ParsesAndRejects) {
  EXPECT_TRUE(ParseCidr("10.0.0.0/8"));
  EXPECT_TRUE(ParseCidr("0.0.0.0/0"));
  EXPECT_TRUE(ParseCidr("192.0.2.1"));
  EXPECT_TRUE(ParseCidr("fd00::/8"));
  EXPECT_TRUE(ParseCidr("::1/128"));
  for (const char* bad : {"", "10.0.0.0/33", "10.0.0.0/", "10.0.0/8", "fd00::/129", "x/8", "10.0.0.0/-1",
                          "10.0.0.0/8/8", "1.2.3.4/0008", "::1/1a"}) {
    EXPECT_FALSE(ParseCidr(bad)) << bad;
  }
}

TEST(CidrTest, Matching) {
  EXPECT_TRUE(Allowed({}, "203.0.113.9"));  // empty = everyone
  EXPECT_TRUE(Allowed({"10.0.0.0/8"}, "10.200.1.1"));
  EXPECT_FALSE(Allowed({"10.0.0.0/8"}, "11.0.0.1"));
  EXPECT_TRUE(Allowed({"127.0.0.2/32", "127.0.0.4/31"}, "127.0.0.5"));
  EXPECT_FALSE(Allowed({"127.0.0.2/32", "127.0.0.4/31"}, "127.0.0.3"));
  EXPECT_TRUE(Allowed({"192.168.1.0/25"}, "192.168.1.127"));
  EXPECT_FALSE(Allowed({"192.168.1.0/25"}, "192.168.1.128"));
  EXPECT_TRUE(Allowed({"0.0.0.0/0"}, "8.8.8.8"));
  EXPECT_FALSE(Allowed({"0.0.0.0/0"}, "::1"));  // families do not mix ...
  EXPECT_TRUE(Allowed({"10.0.0.0/8"}, "::ffff:10.1.2.3"));  // ... except IPv4-mapped clients
  EXPECT_TRUE(Allowed({"fd00::/8"}, "fd12:3456::1"));
  EXPECT_FALSE(Allowed({"fd00::/8"}, "fe80::1"));
  EXPECT_TRUE(Allowed({"10.1.2.3/8"}, "10.9.9.9"));  // host bits ignored
  // An IPv4-mapped range is the IPv4 range it maps, as Go's net.IPNet takes it (helper-134).
  EXPECT_TRUE(Allowed({"::ffff:127.0.0.0/104"}, "127.0.0.1"));
  EXPECT_TRUE(Allowed({"::ffff:127.0.0.0/104"}, "::ffff:127.3.2.1"));
  EXPECT_FALSE(Allowed({"::ffff:127.0.0.0/104"}, "128.0.0.1"));
  EXPECT_TRUE(Allowed({"::ffff:10.1.2.3"}, "10.1.2.3"));
  EXPECT_FALSE(Allowed({"::ffff:10.1.2.3"}, "10.1.2.4"));
  EXPECT_TRUE(Allowed({"::ffff:0.0.0.0/80"}, "::ffff:0:1"));  // below /96: an IPv6 range as written
}

// The L7 trusted-proxy cases (the matcher the L4 allow-lists and L7 share), by textual address.
TEST(CidrTest, AnyContainsByText) {
  struct Case {
    const char* cidr;
    const char* ip;
    bool want;
  };
  const Case cases[] = {
      {"10.0.0.0/8", "10.1.2.3", true},        {"10.0.0.0/8", "11.0.0.1", false},
      {"192.168.1.0/25", "192.168.1.127", true}, {"192.168.1.0/25", "192.168.1.128", false},
      {"127.0.0.1", "127.0.0.1", true},        {"127.0.0.1", "127.0.0.2", false},
      {"0.0.0.0/0", "8.8.8.8", true},          {"fd00::/8", "fd12::1", true},
      {"fd00::/8", "fe80::1", false},          {"10.0.0.0/8", "fd00::1", false},
      {"10.0.0.0/8", "::ffff:10.0.0.1", true}, {"10.0.0.0/8", "garbage", false},
  };
  for (const auto& c : cases) {
    auto n = ParseCidr(c.cidr);
    ASSERT_TRUE(n) << c.cidr;
    EXPECT_EQ(AnyContains(std::vector<Cidr>{*n}, c.ip), c.want) << c.cidr << " " << c.ip;
  }
  EXPECT_FALSE(AnyContains(std::vector<Cidr>{}, "10.0.0.1"));  // empty list: nobody is trusted
}

}  // namespace
}  // namespace doorman::l4
