#include "common/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace doorman {
namespace {

TEST(Utf8Test, WellFormedTextIsValid) {
  EXPECT_EQ(FirstInvalidUtf8(""), std::nullopt);
  EXPECT_EQ(FirstInvalidUtf8("plain ascii\n"), std::nullopt);
  EXPECT_EQ(FirstInvalidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), std::nullopt);  // é € 😀
  EXPECT_EQ(FirstInvalidUtf8("\xef\xbb\xbf" "a"), std::nullopt);                            // a BOM is a character
  EXPECT_EQ(FirstInvalidUtf8("\xed\x9f\xbf"), std::nullopt);                                // U+D7FF
  EXPECT_EQ(FirstInvalidUtf8("\xf4\x8f\xbf\xbf"), std::nullopt);                            // U+10FFFF
}

TEST(Utf8Test, IllFormedSequencesAreFoundAtTheirFirstByte) {
  struct Case {
    std::string text;
    std::size_t at;
  };
  const Case cases[] = {
      {"caf\xe9", 3},                // Latin-1 é
      {"ab\x80", 2},                 // a lone continuation byte
      {"\xc0\xaf", 0},               // overlong "/"
      {"\xc1\xbf", 0},               // overlong
      {"\xe0\x80\xaf", 0},           // overlong 3-byte
      {"\xf0\x80\x80\xaf", 0},       // overlong 4-byte
      {"x\xed\xa0\x80", 1},          // a surrogate (U+D800)
      {"\xf4\x90\x80\x80", 0},       // above U+10FFFF
      {"\xf5\x80\x80\x80", 0},       // F5 never starts a sequence
      {"\xff", 0},
      {"ok\xe2\x82", 2},             // truncated at the end
      {"\xe2\x28\xa1", 0},           // a continuation byte missing
      {std::string("a\0b\xc3", 4), 3},  // NUL is ASCII; the cut é is not
  };
  for (const auto& c : cases) {
    EXPECT_EQ(FirstInvalidUtf8(c.text), c.at) << testing::PrintToString(c.text);
  }
}

TEST(Utf8Test, PrefixesEndOnACharacterBoundary) {
  const std::string s = "a\xc3\xa9\xe2\x82\xac";  // a é €
  EXPECT_EQ(Utf8Prefix(s, 10), s);
  EXPECT_EQ(Utf8Prefix(s, 6), s);
  EXPECT_EQ(Utf8Prefix(s, 5), "a\xc3\xa9");
  EXPECT_EQ(Utf8Prefix(s, 4), "a\xc3\xa9");
  EXPECT_EQ(Utf8Prefix(s, 3), "a\xc3\xa9");
  EXPECT_EQ(Utf8Prefix(s, 2), "a");
  EXPECT_EQ(Utf8Prefix(s, 1), "a");
  EXPECT_EQ(Utf8Prefix(s, 0), "");
  for (std::size_t n = 0; n <= s.size(); ++n) EXPECT_EQ(FirstInvalidUtf8(Utf8Prefix(s, n)), std::nullopt) << n;
  // Invalid input (a run of continuation bytes): at most 3 bytes are given back.
  EXPECT_EQ(Utf8Prefix(std::string(100, '\x80'), 50).size(), 47u);
}

}  // namespace
}  // namespace doorman
