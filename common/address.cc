#include "common/address.h"

#include <arpa/inet.h>

#include <algorithm>

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

bool IsObjectName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) continue;
    // '-' and '.' only between alphanumerics of a label: not first, not last, no "-." or ".-" or "..".
    if (c != '-' && c != '.') return false;
    if (i == 0 || i + 1 == s.size()) return false;
    if (c == '.' && (s[i - 1] == '-' || s[i - 1] == '.' || s[i + 1] == '-' || s[i + 1] == '.')) return false;
  }
  return true;
}

std::string NodeLocalAddressProblem(const std::string& ip) {
  unsigned char b[16];
  const char* const ip_s = ip.c_str();
  if (ip.find('\0') != std::string::npos) return "";
  auto v4 = [](const unsigned char* a) -> std::string {
    if (a[0] == 0) return "is in 0.0.0.0/8 (this host)";
    if (a[0] == 127) return "is in the loopback range (127.0.0.0/8)";
    if (a[0] == 169 && a[1] == 254) return "is in the link-local range (169.254.0.0/16)";
    if (a[0] == 224 && a[1] == 0 && a[2] == 0) return "is in the link-local multicast range (224.0.0.0/24)";
    if (a[0] == 100 && a[1] == 100 && a[2] == 100 && a[3] == 200) return "is a cloud metadata service (Alibaba Cloud)";
    return "";
  };
  if (inet_pton(AF_INET, ip_s, b) == 1) return v4(b);
  if (inet_pton(AF_INET6, ip_s, b) != 1) return "";
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(b, b + 12, kMapped)) return v4(b + 12);
  bool zero = true;
  for (int i = 0; i < 15; ++i) zero = zero && b[i] == 0;
  if (zero && b[15] == 0) return "is the unspecified address (::)";
  if (zero && b[15] == 1) return "is the loopback address (::1)";
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return "is in the link-local range (fe80::/10)";
  if (b[0] == 0xff && (b[1] & 0x0f) == 0x02) return "is in the link-local multicast range (ff02::/16)";
  static constexpr unsigned char kAwsMetadata[16] = {0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
  if (std::equal(b, b + 16, kAwsMetadata)) return "is a cloud metadata service (AWS, fd00:ec2::254)";
  return "";
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
