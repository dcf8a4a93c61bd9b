#include "common/address.h"

#include <gtest/gtest.h>

namespace doorman {
namespace {

TEST(StatusAddress, IpLiteralsAndDnsNames) {
  for (const char* ok : {"10.0.0.1", "127.0.0.1", "::1", "fd00::1:2", "lb.example.com", "a", "node-1.zone-b.example",
                         "1a.example"}) {
    EXPECT_TRUE(IsValidStatusAddress(ok)) << ok;
  }
  for (const char* bad : {"", "not an ip", "999.1.1.1", "Bad_Host", "host:80", "LB.example.com", "-a.example",
                          "a-.example", "a..b", ".a", "a.", "[::1]", "10.0.0.1/32", "fe80::1%eth0", "1.2.3", "10.0.0.256"}) {
    EXPECT_FALSE(IsValidStatusAddress(bad)) << bad;
  }
  EXPECT_TRUE(IsStatusHostname(std::string(63, 'a') + ".b"));
  EXPECT_FALSE(IsStatusHostname(std::string(64, 'a') + ".b"));
  std::string labels;  // short labels only: the 253-character total is what is tested
  for (int i = 0; i < 125; ++i) labels += "a.";
  EXPECT_TRUE(IsStatusHostname(labels + "bbb"));      // 250 + 3 = 253
  EXPECT_FALSE(IsStatusHostname(labels + "a.bb"));    // 250 + 4 = 254
  EXPECT_FALSE(IsValidStatusAddress(std::string("10.0.0.1\0x", 10)));
}

// Object names follow apimachinery's IsDNS1123Subdomain: a 64-character label is a valid name
// (a Secret called that exists), but not a hostname.
TEST(AddressTest, ObjectNames) {
  for (const std::string& ok : {std::string("a"), std::string("tls-cert"), std::string("a.b-c.d"), std::string("a--b"),
                               std::string(64, 'a'), std::string(100, 'x') + ".example", std::string(253, 'a')}) {
    EXPECT_TRUE(IsObjectName(ok)) << ok;
  }
  for (const std::string& bad : {std::string(""), std::string("-a"), std::string("a-"), std::string(".a"), std::string("a."),
                                std::string("a..b"), std::string("a-.b"), std::string("a.-b"), std::string("A"),
                                std::string("a_b"), std::string("a/b"), std::string(254, 'a'), std::string("a\0b", 3)}) {
    EXPECT_FALSE(IsObjectName(bad)) << bad;
  }
  EXPECT_FALSE(IsDns1123Subdomain(std::string(64, 'a')));  // a hostname's label stays bounded
}

// As the API server's ValidateNonSpecialIP (plus the rest of 0.0.0.0/8, which reaches the host).
TEST(AddressTest, NodeLocalAddresses) {
  for (const char* bad : {"127.0.0.1", "127.255.0.9", "0.0.0.0", "0.1.2.3", "169.254.169.254", "224.0.0.251", "::",
                          "::1", "fe80::1", "febf::1", "ff02::1", "ff12::2", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
                          "fd00:ec2::254", "100.100.100.200", "::ffff:100.100.100.200"}) {
    EXPECT_NE(NodeLocalAddressProblem(bad), "") << bad;
  }
  for (const char* ok : {"10.0.0.1", "192.168.1.1", "169.253.0.1", "224.0.1.1", "fd00::1", "fec0::1", "ff05::2",
                         "2001:db8::1", "::ffff:10.0.0.1", "::2", "fd00:ec2::253", "100.100.100.201"}) {
    EXPECT_EQ(NodeLocalAddressProblem(ok), "") << ok;
  }
  EXPECT_EQ(NodeLocalAddressProblem("169.254.169.254"), "is in the link-local range (169.254.0.0/16)");
}

TEST(AddressTest, LoopbackHosts) {
  for (const char* h : {"localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"}) EXPECT_TRUE(IsLoopbackHost(h)) << h;
  for (const char* h : {"", "0.0.0.0", "::", "[::]", "10.0.0.1", "127.example.com", "128.0.0.1", "node-1"}) {
    EXPECT_FALSE(IsLoopbackHost(h)) << h;
  }
}

TEST(AddressTest, HostHeaderValues) {
  for (const char* ok : {"api.internal", "api.internal:8080", "10.0.0.1", "10.0.0.1:80", "[::1]", "[fd00::1]:443",
                         "a:65535", "API.Internal", "example.com.", "my_svc.internal", "a-b.c"}) {
    EXPECT_TRUE(IsHostHeaderValue(ok)) << ok;
  }
  for (const char* bad : {"", "bad host", "a@evil.test", "evil.test/x", "a:", "a:0", "a:65536", "a:8o", "::1", "[::1",
                          "[::1]x", "[10.0.0.1]", "a:1:2", ":80", "a..b", ".a", "a\r\nx: y", "a%41", "a;b",
                          "."}) {
    EXPECT_FALSE(IsHostHeaderValue(bad)) << bad;
  }
  EXPECT_TRUE(IsHostHeaderValue(std::string(63, 'a') + ".b"));
  EXPECT_FALSE(IsHostHeaderValue(std::string(64, 'a') + ".b"));
  EXPECT_FALSE(IsHostHeaderValue(std::string_view("a\0b", 3)));
  EXPECT_FALSE(IsHostHeaderValue(std::string_view("1.2.3.4\0x", 9)));
}

}  // namespace
}  // namespace doorman
