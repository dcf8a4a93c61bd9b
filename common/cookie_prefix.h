// Cookie name prefixes (RFC 6265bis §4.1.3, matched case-insensitively): browsers keep a
// __Secure- cookie only with Secure, and a __Host- one only with Secure, Path=/ and no Domain.
// One rule for the controller (which warns about a declared path) and the dataplane (which sets
// the attributes).
#pragma once

#include <strings.h>

#include <string_view>

namespace doorman {

inline bool HasCookiePrefix(std::string_view name, std::string_view prefix) {
  return name.size() >= prefix.size() && ::strncasecmp(name.data(), prefix.data(), prefix.size()) == 0;
}
inline bool IsHostPrefixedCookie(std::string_view name) { return HasCookiePrefix(name, "__Host-"); }
inline bool IsSecurePrefixedCookie(std::string_view name) { return HasCookiePrefix(name, "__Secure-"); }

}  // namespace doorman
