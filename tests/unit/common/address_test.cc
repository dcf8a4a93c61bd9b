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
