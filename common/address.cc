#include "common/address.h"

#include <arpa/inet.h>

namespace doorman {

bool IsIpLiteral(const std::string& s) {
  if (s.find('\0') != std::string::npos) return false;  // inet_pton would stop at it
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string CanonicalIp(const std::string& s) {
  if (s.find('\0') != std::string::npos) return "";
  unsigned char buf[16];
  char text[INET6_ADDRSTRLEN];
  for (const int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, s.c_str(), buf) == 1 && inet_ntop(family, buf, text, sizeof text)) return text;
  }
  return "";
}

bool IsDns1123Label(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && !(c == '-' && i != 0 && i + 1 != s.size())) return false;
  }
  return true;
}

bool IsDns1123Subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (size_t start = 0;;) {
    const size_t dot = s.find('.', start);
    if (!IsDns1123Label(s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool IsStatusHostname(std::string_view s) {
  if (!IsDns1123Subdomain(s)) return false;
  // An all-numeric last label is a mistyped IP address ("999.1.1.1"), not a name (RFC 1123 §2.1).
  const std::string_view last = s.substr(s.rfind('.') == std::string_view::npos ? 0 : s.rfind('.') + 1);
  return last.find_first_not_of("0123456789") != std::string_view::npos;
}

namespace {

// A registered name as Host headers carry it: dot-separated labels of letters (any case),
// digits, '-' and '_' (service names such as "my_svc.internal" exist), 1-63 each, one optional
// trailing dot, 253 characters at most.
bool IsHostName(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  if (s.empty() || s.size() > 253) return false;
  size_t label = 0;
  for (const char c : s) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return label > 0;
}

}  // namespace

bool IsHostHeaderValue(std::string_view s) {
  if (s.find('\0') != std::string_view::npos) return false;  // inet_pton would stop at it
  std::string_view host = s;
  std::string_view port;
  bool has_port = false;
  if (!s.empty() && s.front() == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos) return false;
    host = s.substr(1, close - 1);
    const std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      has_port = true;
      port = rest.substr(1);
    }
    const std::string h(host);
    unsigned char buf[16];
    if (inet_pton(AF_INET6, h.c_str(), buf) != 1) return false;
  } else {
    if (const size_t colon = s.find(':'); colon != std::string_view::npos) {
      host = s.substr(0, colon);
      port = s.substr(colon + 1);
      has_port = true;
    }
    // A name, or an IPv4 literal (which is a name by the rule above too).
    if (!IsHostName(host)) return false;
  }
  if (!has_port) return true;
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) return false;
  const int n = std::stoi(std::string(port));
  return n >= 1 && n <= 65535;
}

bool IsLoopbackHost(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost" || host == "::1") return true;
  const std::string h(host);
  return IsIpLiteral(h) && h.rfind("127.", 0) == 0;
}

}  // namespace doorman
