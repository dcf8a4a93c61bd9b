#include "dataplane/l4/sni.h"

#include <gtest/gtest.h>

#include <random>

namespace doorman::l4 {
namespace {

std::string U16(std::size_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }
std::string U24(std::size_t v) { return {static_cast<char>(v >> 16), static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)}; }

// A ClientHello handshake message (type + length + body) with the given SNI ("" = no SNI ext)
// and `padding` bytes of an extra extension (to make it large).
std::string Hello(const std::string& sni, std::size_t padding = 0) {
  std::string body = "\x03\x03" + std::string(32, 'R') + std::string(1, '\x20') + std::string(32, 'S');
  body += U16(4) + "\x13\x01\x13\x02";
  body += std::string("\x01\x00", 2);
  std::string exts;
  exts += U16(0x002b) + U16(3) + "\x02\x03\x04";  // supported_versions
  if (!sni.empty()) {
    std::string entry = std::string(1, '\0') + U16(sni.size()) + sni;
    std::string list = U16(entry.size()) + entry;
    exts += U16(0) + U16(list.size()) + list;
  }
  if (padding) exts += U16(0x0015) + U16(padding) + std::string(padding, '\0');
  body += U16(exts.size()) + exts;
  return std::string(1, '\x01') + U24(body.size()) + body;
}

// Frames handshake bytes into TLS records of at most `max` bytes each.
std::string Records(const std::string& hs, std::size_t max = 16384) {
  std::string out;
  for (std::size_t i = 0; i < hs.size(); i += max) {
    const auto part = hs.substr(i, max);
    out += std::string("\x16\x03\x01", 3) + U16(part.size()) + part;
  }
  return out;
}

TEST(SniTest, FindsTheServerName) {
  const auto r = ParseClientHelloSni(Records(Hello("Db.Example.COM")));
  ASSERT_EQ(r.status, SniResult::kDone) << r.error;
  EXPECT_EQ(r.server_name, "db.example.com");
}

TEST(SniTest, NoSniIsDoneWithAnEmptyName) {
  const auto r = ParseClientHelloSni(Records(Hello("")));
  ASSERT_EQ(r.status, SniResult::kDone) << r.error;
  EXPECT_EQ(r.server_name, "");
}

TEST(SniTest, EveryPrefixNeedsMoreThenDone) {
  const std::string all = Records(Hello("a.test"), 50);  // fragmented over several records
  for (std::size_t n = 0; n < all.size(); ++n) {
    const auto r = ParseClientHelloSni(std::string_view(all).substr(0, n));
    // Once the SNI extension is complete the parser may answer early, but never kInvalid.
    ASSERT_NE(r.status, SniResult::kInvalid) << "n=" << n << " " << r.error;
  }
  const auto r = ParseClientHelloSni(all);
  ASSERT_EQ(r.status, SniResult::kDone) << r.error;
  EXPECT_EQ(r.server_name, "a.test");
}

TEST(SniTest, LargeHelloSplitAcrossRecordsUpToTheBound) {
  auto r = ParseClientHelloSni(Records(Hello("big.test", 9000), 4000));
  ASSERT_EQ(r.status, SniResult::kDone) << r.error;
  EXPECT_EQ(r.server_name, "big.test");
  r = ParseClientHelloSni(Records(Hello("huge.test", 20000)));
  EXPECT_EQ(r.status, SniResult::kInvalid);
}

TEST(SniTest, MalformedIsInvalid) {
  const std::string good = Records(Hello("a.test"));
  auto mutate = [&](std::size_t at, char v) {
    std::string s = good;
    s[at] = v;
    return s;
  };
  EXPECT_EQ(ParseClientHelloSni("GET / HTTP/1.1\r\n").status, SniResult::kInvalid);
  EXPECT_EQ(ParseClientHelloSni(mutate(0, '\x17')).status, SniResult::kInvalid);   // application data
  EXPECT_EQ(ParseClientHelloSni(mutate(1, '\x02')).status, SniResult::kInvalid);   // record version
  EXPECT_EQ(ParseClientHelloSni(mutate(5, '\x02')).status, SniResult::kInvalid);   // ServerHello
  EXPECT_EQ(ParseClientHelloSni(mutate(5 + 4 + 34, '\x40')).status, SniResult::kInvalid);  // session id 64
  EXPECT_EQ(ParseClientHelloSni(Records(Hello("bad name.test"))).status, SniResult::kInvalid);
  EXPECT_EQ(ParseClientHelloSni(Records(Hello("x\x01y"))).status, SniResult::kInvalid);
  std::string zero_len = std::string("\x16\x03\x01\x00\x00", 5);
  EXPECT_EQ(ParseClientHelloSni(zero_len).status, SniResult::kInvalid);
}

TEST(SniTest, RandomBytesNeverCrash) {
  std::mt19937_64 rng(7);
  const std::string seed = Records(Hello("fuzz.example.com", 100), 60);
  int invalid = 0;
  for (int i = 0; i < 100000; ++i) {
    std::string s;
    if (i % 2) {
      s.resize(rng() % 400);
      for (auto& c : s) c = static_cast<char>(rng());
      if (!s.empty()) s[0] = '\x16';
      if (s.size() > 1) s[1] = '\x03';
    } else {
      s = seed;
      for (int m = 0; m < 1 + static_cast<int>(rng() % 4); ++m) s[rng() % s.size()] = static_cast<char>(rng());
      s.resize(rng() % (s.size() + 1));
    }
    const auto r = ParseClientHelloSni(s);
    invalid += r.status == SniResult::kInvalid;
    ASSERT_EQ(ParseClientHelloSni(s).status, r.status);
  }
  EXPECT_GT(invalid, 1000);
}

TEST(SniTest, Matcher) {
  SniMatcher m{{"db.example.com"}, {".wild.test"}};
  EXPECT_TRUE(m.Matches("db.example.com"));
  EXPECT_FALSE(m.Matches("x.db.example.com"));
  EXPECT_TRUE(m.Matches("a.wild.test"));
  EXPECT_TRUE(m.Matches("a.b.wild.test"));
  EXPECT_FALSE(m.Matches("wild.test"));
  EXPECT_FALSE(m.Matches(""));
}

TEST(SniMatcherTest, MatchRankPrefersExactThenTheLongestWildcard) {
  const SniMatcher m{{"aaaaaaaa.ex.com", "b.ex.com"}, {".ex.com", ".deep.ex.com"}};
  EXPECT_EQ(m.MatchRank("b.ex.com"), std::make_pair(0, int64_t{-8}));
  EXPECT_EQ(m.MatchRank("x.deep.ex.com"), std::make_pair(1, int64_t{-12}));  // the longer suffix
  EXPECT_EQ(m.MatchRank("c.ex.com"), std::make_pair(1, int64_t{-7}));
  EXPECT_EQ(m.MatchRank("ex.com"), std::nullopt);
  // An exact name of another route ranks above this route's wildcard match of it.
  EXPECT_LT(*SniMatcher({{"c.ex.com"}, {}}).MatchRank("c.ex.com"), *m.MatchRank("c.ex.com"));
}

}  // namespace
}  // namespace doorman::l4
