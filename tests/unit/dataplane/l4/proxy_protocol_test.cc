#include "dataplane/l4/proxy_protocol.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <random>

namespace doorman::l4 {
namespace {

ProxyAddress V4(const char* ip, uint16_t port) {
  ProxyAddress a;
  inet_pton(AF_INET, ip, a.ip.data());
  a.port = port;
  return a;
}

ProxyAddress V6(const char* ip, uint16_t port) {
  ProxyAddress a;
  a.v6 = true;
  inet_pton(AF_INET6, ip, a.ip.data());
  a.port = port;
  return a;
}

TEST(ProxyProtocolTest, V1Encoding) {
  EXPECT_EQ(EncodeProxyHeader(1, V4("192.0.2.1", 56324), V4("10.0.0.1", 443)),
            "PROXY TCP4 192.0.2.1 10.0.0.1 56324 443\r\n");
  EXPECT_EQ(EncodeProxyHeader(1, V6("2001:db8::1", 1), V6("::1", 2)), "PROXY TCP6 2001:db8::1 ::1 1 2\r\n");
  EXPECT_EQ(EncodeProxyHeader(1, V4("1.2.3.4", 1), V6("::1", 2)), "PROXY UNKNOWN\r\n");
}

TEST(ProxyProtocolTest, RoundTripsBothVersionsAndFamilies) {
  for (int version : {1, 2}) {
    for (const auto& [src, dst] : {std::pair{V4("192.0.2.1", 56324), V4("10.0.0.1", 443)},
                                  std::pair{V6("2001:db8::7", 65535), V6("fd00::1", 1)}}) {
      const std::string h = EncodeProxyHeader(version, src, dst) + "payload";
      const auto r = ParseProxyHeader(h);
      ASSERT_EQ(r.status, ProxyParseResult::kDone) << r.error;
      EXPECT_EQ(h.substr(r.consumed), "payload");
      EXPECT_EQ(r.header.version, version);
      EXPECT_FALSE(r.header.local);
      EXPECT_EQ(r.header.source.ip, src.ip);
      EXPECT_EQ(r.header.source.port, src.port);
      EXPECT_EQ(r.header.destination.ip, dst.ip);
      EXPECT_EQ(r.header.destination.port, dst.port);
      EXPECT_EQ(r.header.source.v6, src.v6);
    }
  }
}

TEST(ProxyProtocolTest, EveryPrefixNeedsMore) {
  for (int version : {1, 2}) {
    const std::string h = EncodeProxyHeader(version, V4("192.0.2.1", 5), V4("10.0.0.1", 6));
    for (std::size_t n = 0; n < h.size(); ++n) {
      EXPECT_EQ(ParseProxyHeader(std::string_view(h).substr(0, n)).status, ProxyParseResult::kNeedMore)
          << "v" << version << " n=" << n;
    }
  }
}

TEST(ProxyProtocolTest, LocalAndUnknown) {
  auto r = ParseProxyHeader("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nX");
  ASSERT_EQ(r.status, ProxyParseResult::kDone);
  EXPECT_TRUE(r.header.local);
  std::string local("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\x20\x00\x00\x00", 16);
  r = ParseProxyHeader(local);
  ASSERT_EQ(r.status, ProxyParseResult::kDone);
  EXPECT_TRUE(r.header.local);
  EXPECT_EQ(r.consumed, 16u);
}

TEST(ProxyProtocolTest, V2WithTlvsIsSkippedWhole) {
  std::string h = EncodeProxyHeader(2, V4("1.2.3.4", 1), V4("5.6.7.8", 2));
  // Append a 7-byte TLV (type 0x04 NOOP, length 4) and fix the length field.
  h += std::string("\x04\x00\x04" "abcd", 7);
  const std::size_t len = h.size() - 16;
  h[14] = static_cast<char>(len >> 8);
  h[15] = static_cast<char>(len & 0xff);
  const auto r = ParseProxyHeader(h + "DATA");
  ASSERT_EQ(r.status, ProxyParseResult::kDone);
  EXPECT_EQ(r.consumed, h.size());
}

// A v2 header with family byte `fam`, the addresses of `addr_len` bytes and `tail` after them.
std::string V2(uint8_t fam, std::size_t addr_len, const std::string& tail = "") {
  std::string h("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\x21", 13);
  h += static_cast<char>(fam);
  const std::size_t len = addr_len + tail.size();
  h += static_cast<char>(len >> 8);
  h += static_cast<char>(len & 0xff);
  for (std::size_t i = 0; i < addr_len; ++i) h += static_cast<char>(i == 0 ? 10 : 1);
  return h + tail;
}

TEST(ProxyProtocolTest, EveryDefinedFamilyIsAcceptedAndOnlyTheListenersTransportGivesAddresses) {
  struct Case {
    uint8_t fam;
    std::size_t addr_len;
    bool datagram;
    bool local;
  } cases[] = {{0x11, 12, false, false}, {0x12, 12, true, false}, {0x21, 36, false, false}, {0x22, 36, true, false},
               {0x31, 216, false, true}, {0x32, 216, true, true},   {0x00, 0, false, true}};
  for (const auto& c : cases) {
    const auto r = ParseProxyHeader(V2(c.fam, c.addr_len) + "payload");
    ASSERT_EQ(r.status, ProxyParseResult::kDone) << int(c.fam) << " " << r.error;
    EXPECT_EQ(r.header.datagram, c.datagram) << int(c.fam);
    EXPECT_EQ(r.header.local, c.local) << int(c.fam);
    // TCP listeners take STREAM addresses, UDP listeners DGRAM ones; everything else keeps the
    // connection's own address.
    EXPECT_EQ(UsesAddresses(r.header, false), !c.local && !c.datagram) << int(c.fam);
    EXPECT_EQ(UsesAddresses(r.header, true), !c.local && c.datagram) << int(c.fam);
  }
}

// The spec (§2.2): family bytes other than the seven defined ones "must be rejected as invalid by
// receivers", UNSPEC in one half only included. LOCAL ignores the family.
TEST(ProxyProtocolTest, UndefinedFamilyBytesAreInvalid) {
  for (const uint8_t fam : {0x01, 0x02, 0x10, 0x20, 0x30, 0x13, 0x23, 0x41, 0x42, 0xf1, 0xff}) {
    const auto r = ParseProxyHeader(V2(fam, 36) + "payload");
    EXPECT_EQ(r.status, ProxyParseResult::kInvalid) << int(fam);
  }
  std::string local = V2(0x10, 12);
  local[12] = 0x20;  // version 2, LOCAL
  EXPECT_EQ(ParseProxyHeader(local).status, ProxyParseResult::kDone);
}

TEST(ProxyProtocolTest, TlvsMustFitTheHeaderExactly) {
  EXPECT_EQ(ParseProxyHeader(V2(0x11, 12, std::string("\x04\x00\x02" "ab", 5))).status, ProxyParseResult::kDone);
  EXPECT_EQ(ParseProxyHeader(V2(0x11, 12, std::string("\x04\x00\x00", 3))).status, ProxyParseResult::kDone);
  EXPECT_EQ(ParseProxyHeader(V2(0x11, 12, std::string("\x01\x00\x09" "ab", 5))).status, ProxyParseResult::kInvalid);
  EXPECT_EQ(ParseProxyHeader(V2(0x11, 12, std::string("\x01\x00", 2))).status, ProxyParseResult::kInvalid);
  EXPECT_EQ(ParseProxyHeader(V2(0x21, 36, std::string("\x04\x00\x01" "a" "\x04\x00\x05" "b", 8))).status,
            ProxyParseResult::kInvalid);
  EXPECT_EQ(ParseProxyHeader(V2(0x31, 100)).status, ProxyParseResult::kInvalid);  // short UNIX block
}

TEST(ProxyProtocolTest, Crc32cIsTheCastagnoliChecksum) {
  const std::string check = "123456789";  // the standard check value (RFC 3720 §B.4's polynomial)
  EXPECT_EQ(Crc32cUpdate(0, reinterpret_cast<const uint8_t*>(check.data()), check.size()), 0xE3069283u);
  // Continuing a checksum equals checksumming the whole.
  const uint32_t part = Crc32cUpdate(0, reinterpret_cast<const uint8_t*>(check.data()), 4);
  EXPECT_EQ(Crc32cUpdate(part, reinterpret_cast<const uint8_t*>(check.data()) + 4, 5), 0xE3069283u);
  EXPECT_EQ(Crc32cUpdate(0, nullptr, 0), 0u);
}

// Bit by bit, independent of the table the parser uses.
uint32_t SlowCrc32c(const std::string& s) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

// `before` + a CRC32C TLV + `after` after an IPv4 address block, with the checksum filled in.
std::string V2WithCrc(const std::string& before, const std::string& after) {
  std::string h = V2(0x11, 12, before + std::string("\x03\x00\x04\0\0\0\0", 7) + after);
  const std::size_t at = 16 + 12 + before.size() + 3;
  const uint32_t crc = SlowCrc32c(h);  // the value field is still zero
  for (int i = 0; i < 4; ++i) h[at + i] = static_cast<char>(crc >> (24 - 8 * i));
  return h;
}

// Spec §2.2.5: a receiver that supports PP2_TYPE_CRC32C must verify it (HAProxy does). The
// integration test has HAProxy's `proxy-v2-options crc32c` as the sender.
TEST(ProxyProtocolTest, AV2ChecksumIsVerified) {
  const std::string noop("\x04\x00\x02" "ab", 5);
  for (const auto& [before, after] : {std::pair<std::string, std::string>{"", ""}, {noop, ""}, {"", noop}, {noop, noop}}) {
    const std::string h = V2WithCrc(before, after);
    const auto r = ParseProxyHeader(h + "payload");
    ASSERT_EQ(r.status, ProxyParseResult::kDone) << r.error;
    EXPECT_EQ(r.consumed, h.size());
    EXPECT_EQ(r.header.source.ip[0], 10);
    // Any bit changed anywhere in the header fails it, except in the signature (no header then)
    // and the checksum TLV's type byte (an unknown TLV then, and nothing to check: as in HAProxy).
    for (std::size_t i = 12; i < h.size(); ++i) {
      if (i == 28 + before.size()) continue;
      std::string bad = h;
      bad[i] = static_cast<char>(bad[i] ^ 0x10);
      const auto b = ParseProxyHeader(bad + "payload");
      EXPECT_EQ(b.status, ProxyParseResult::kInvalid) << "byte " << i;
    }
  }
  // Payload after the header is not part of the checksum.
  EXPECT_EQ(ParseProxyHeader(V2WithCrc("", "") + "other payload").status, ProxyParseResult::kDone);
  // Only a 4-byte value, and only one of them.
  EXPECT_EQ(ParseProxyHeader(V2(0x11, 12, std::string("\x03\x00\x03" "abc", 6))).status, ProxyParseResult::kInvalid);
  EXPECT_EQ(ParseProxyHeader(V2(0x11, 12, std::string("\x03\x00\x05" "abcde", 8))).status, ProxyParseResult::kInvalid);
  const std::string good = V2WithCrc("", "");
  std::string twice = V2WithCrc("", good.substr(28, 7));  // the first one's TLV again
  EXPECT_EQ(ParseProxyHeader(twice).status, ProxyParseResult::kInvalid);
  // LOCAL carries no addresses and its TLVs are not read, as in HAProxy.
  std::string local = V2(0x11, 12, std::string("\x03\x00\x04" "abcd", 7));
  local[12] = 0x20;
  EXPECT_EQ(ParseProxyHeader(local).status, ProxyParseResult::kDone);
}

TEST(ProxyProtocolTest, MalformedIsInvalid) {
  for (const std::string& bad : {
           std::string("GET / HTTP/1.1\r\n"),
           std::string("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
           std::string("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"),
           std::string("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"),
           std::string("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"),
           std::string("PROXY TCP4 ::1 5.6.7.8 1 2\r\n"),
           std::string("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"),
           std::string("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"),
           std::string("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"),
           std::string("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"),
           std::string("PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n"),
           std::string("PROXY ") + std::string(120, 'A'),
           std::string("PROXY TCP4 1.2.3.4\0junk 5.6.7.8 1 2\r\n", 37),  // inet_pton stops at the NUL
           std::string("PROXY TCP4 1.2.3.4 5.6.7.8\0x 1 2\r\n", 34),
           std::string("PROXY TCP6 ::1\0junk ::2 1 2\r\n", 29),
           std::string("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0B", 12),                  // bad signature
           std::string("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\x11\x11\x00\x0C", 16),  // version 1
           std::string("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\x22\x11\x00\x0C", 16),  // command 2
           std::string("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\x21\x11\x00\x04xxxx", 20),  // short v4
           std::string("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\x21\x11\xff\xff", 16),  // too long
           std::string("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\x21\x51\x00\x00", 16),  // family 5
       }) {
    EXPECT_EQ(ParseProxyHeader(bad).status, ProxyParseResult::kInvalid) << bad;
  }
}

// Fuzz-ish: random bytes, random mutations of valid headers, random truncations. The parser
// must never crash, never claim more bytes than it was given, and be deterministic.
TEST(ProxyProtocolTest, RandomBytesNeverCrash) {
  std::mt19937_64 rng(12345);
  const std::string seeds[] = {EncodeProxyHeader(1, V4("192.0.2.1", 5), V4("10.0.0.1", 6)),
                               EncodeProxyHeader(2, V6("2001:db8::1", 5), V6("::1", 6)),
                               EncodeProxyHeader(2, V4("192.0.2.1", 5), V4("10.0.0.1", 6))};
  int done = 0, invalid = 0;
  for (int i = 0; i < 200000; ++i) {
    std::string s;
    if (i % 2 == 0) {
      s.resize(rng() % 300);
      for (auto& c : s) c = static_cast<char>(rng());
      if (i % 4 == 0 && !s.empty()) s.replace(0, std::min<std::size_t>(s.size(), 6), "PROXY ");
    } else {
      s = seeds[rng() % 3];
      const int mutations = 1 + static_cast<int>(rng() % 3);
      for (int m = 0; m < mutations; ++m) s[rng() % s.size()] = static_cast<char>(rng());
      s.resize(rng() % (s.size() + 1));
    }
    const auto r = ParseProxyHeader(s);
    if (r.status == ProxyParseResult::kDone) {
      ++done;
      ASSERT_LE(r.consumed, s.size());
      ASSERT_GT(r.consumed, 0u);
    } else if (r.status == ProxyParseResult::kInvalid) {
      ++invalid;
    }
    ASSERT_EQ(ParseProxyHeader(s).status, r.status);
  }
  EXPECT_GT(invalid, 100000);
  EXPECT_GT(done, 0);
}

}  // namespace
}  // namespace doorman::l4
