#include "common/json_escape.h"

#include <gtest/gtest.h>

#include <string>

namespace doorman {
namespace {

std::string Json(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

TEST(JsonEscapeTest, QuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(Json("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(Json("\n\r\t\x01\x7f"), "\"\\n\\r\\t\\u0001\\u007f\"");
}

TEST(JsonEscapeTest, WellFormedUtf8IsCopied) {
  EXPECT_EQ(Json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
}

// Bytes that are not well-formed UTF-8 become \u00XX: the line stays valid JSON.
TEST(JsonEscapeTest, MalformedUtf8BytesAreEscapedOneByOne) {
  EXPECT_EQ(Json("/api/\xff\xfe"), "\"/api/\\u00ff\\u00fe\"");
  EXPECT_EQ(Json("\xc3"), "\"\\u00c3\"");                    // truncated
  EXPECT_EQ(Json("\xc0\xaf"), "\"\\u00c0\\u00af\"");          // overlong '/'
  EXPECT_EQ(Json("\xe0\x80\xaf"), "\"\\u00e0\\u0080\\u00af\"");  // overlong 3-byte
  EXPECT_EQ(Json("\xed\xa0\x80"), "\"\\u00ed\\u00a0\\u0080\"");  // surrogate
  EXPECT_EQ(Json("\xf4\x90\x80\x80"), "\"\\u00f4\\u0090\\u0080\\u0080\"");  // > U+10FFFF
  EXPECT_EQ(Json("\xc3\xa9\xff"), "\"\xc3\xa9\\u00ff\"");      // a good sequence, then a bad byte
  // The C1 controls, well-formed as UTF-8 (U+009B is CSI): escaped like C0 ones (helper-108).
  EXPECT_EQ(Json("a\xc2\x9b[31m\xc2\x80\xc2\xa0"), "\"a\\u009b[31m\\u0080\xc2\xa0\"");
}

}  // namespace
}  // namespace doorman
