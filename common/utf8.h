// UTF-8 checks for text that ends up in JSON (the Kubernetes API, /debug pages): nlohmann::json
// refuses to serialise invalid UTF-8 (it throws), and the API server accepts nothing else.
// Hand-written (RFC 3629 §4's table, 30 lines): glibc's iconv would need a conversion buffer
// and does not say where the input went wrong in a form worth reporting.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace doorman {

// The offset of the first byte of `s` that does not start or continue a well-formed UTF-8
// sequence (overlong forms, surrogates and code points above U+10FFFF are ill-formed), or
// nullopt when all of `s` is valid.
constexpr std::optional<std::size_t> FirstInvalidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (b >= 0xC2 && b <= 0xDF) len = 2;
    else if (b == 0xE0) len = 3, lo = 0xA0;
    else if (b == 0xED) len = 3, hi = 0x9F;  // no surrogates
    else if (b >= 0xE1 && b <= 0xEF) len = 3;
    else if (b == 0xF0) len = 4, lo = 0x90;
    else if (b == 0xF4) len = 4, hi = 0x8F;  // nothing above U+10FFFF
    else if (b >= 0xF1 && b <= 0xF3) len = 4;
    else return i;  // a continuation byte, C0/C1 (overlong) or F5..FF
    if (i + len > s.size()) return i;
    for (std::size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if (k == 1 ? (c < lo || c > hi) : (c & 0xC0) != 0x80) return i;
    }
    i += len;
  }
  return std::nullopt;
}

// The longest prefix of `s` of at most `max` bytes that does not end inside a multi-byte
// character of (valid) UTF-8: clipping a message must not make it invalid. At most 3 bytes are
// given back (a character is at most 4), whatever the input.
constexpr std::string_view Utf8Prefix(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t cut = max;
  while (cut > 0 && max - cut < 3 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut);
}

}  // namespace doorman
