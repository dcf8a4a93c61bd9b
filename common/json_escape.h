// JSON string escaping shared by the logger and the access log. Header-only (no link dependency
// for the pure libraries).
//
// Output is always valid JSON (RFC 8259, UTF-8): '"', '\\' and control characters are escaped;
// well-formed UTF-8 sequences are copied, except the C1 controls U+0080..U+009F (escaped, as
// terminals may act on them); every byte that is not part of one (raw Latin-1 in a
// request path, a truncated or overlong sequence, a surrogate) is written as \u00XX — its value
// as a code point — so a hostile request can never make a log line unparseable, and the byte
// stays recoverable.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace doorman {

// Length of the well-formed UTF-8 sequence starting at s[i] (a byte >= 0x80), or 0.
inline std::size_t Utf8SequenceLength(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // bounds of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;  // overlong
    if (c == 0xed) hi = 0x9f;  // surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;  // overlong
    if (c == 0xf4) hi = 0x8f;  // > U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xbf) return 0;
  }
  return n;
}

inline void AppendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; ++i; continue;
      case '\\': out += "\\\\"; ++i; continue;
      case '\n': out += "\\n"; ++i; continue;
      case '\r': out += "\\r"; ++i; continue;
      case '\t': out += "\\t"; ++i; continue;
      default: break;
    }
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const std::size_t n = Utf8SequenceLength(s, i);
      if (n == 2 && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
        // U+0080..U+009F, the C1 controls (CSI among them): escaped like C0 controls.
        char esc[8];
        std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned char>(s[i + 1]));
        out += esc;
        i += 2;
        continue;
      }
      if (n != 0) {
        out.append(s.substr(i, n));
        i += n;
        continue;
      }
    }
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\u%04x", c);
    out += buf;
    ++i;
  }
  out.push_back('"');
}

}  // namespace doorman
