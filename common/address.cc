#include "common/address.h"

#include <arpa/inet.h>

namespace doorman {

bool IsIpLiteral(const std::string& s) {
  if (s.find('\0') != std::string::npos) return false;  // inet_pton would stop at it
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool IsStatusHostname(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t label = 0;
  bool numeric = true;  // the current label is all digits
  char prev = '.';
  for (const char c : s) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
      numeric = true;
    } else {
      const bool digit = c >= '0' && c <= '9';
      const bool alnum = (c >= 'a' && c <= 'z') || digit;
      if (!alnum && !(c == '-' && label > 0)) return false;
      if (++label > 63) return false;
      numeric = numeric && digit;
    }
    prev = c;
  }
  // An all-numeric last label is a mistyped IP address ("999.1.1.1"), not a name (RFC 1123 §2.1).
  return label > 0 && prev != '-' && !numeric;
}

}  // namespace doorman
