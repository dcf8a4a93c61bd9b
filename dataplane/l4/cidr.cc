#include "dataplane/l4/cidr.h"

#include <arpa/inet.h>

#include <cstring>
#include <string>

namespace doorman::l4 {

std::optional<Cidr> ParseCidr(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  const auto slash = text.find('/');
  const std::string ip(text.substr(0, slash));
  Cidr c;
  if (inet_pton(AF_INET, ip.c_str(), c.addr.data()) == 1) {
    c.v6 = false;
  } else if (inet_pton(AF_INET6, ip.c_str(), c.addr.data()) == 1) {
    c.v6 = true;
  } else {
    return std::nullopt;
  }
  const int max = c.v6 ? 128 : 32;
  c.prefix = max;
  if (slash != std::string_view::npos) {
    const auto p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3) return std::nullopt;
    int v = 0;
    for (char ch : p) {
      if (ch < '0' || ch > '9') return std::nullopt;
      v = v * 10 + (ch - '0');
    }
    if (v > max) return std::nullopt;
    c.prefix = v;
  }
  // An IPv4-mapped IPv6 range (::ffff:10.0.0.0/104) is the IPv4 range it maps (10.0.0.0/8), as
  // Go's net.IPNet (kube-proxy's reading of source ranges) takes it; IPv4 clients arrive as 4
  // bytes and would never match a 16-byte range (helper-134).
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (c.v6 && c.prefix >= 96 && std::memcmp(c.addr.data(), kMapped, 12) == 0) {
    std::memmove(c.addr.data(), c.addr.data() + 12, 4);
    std::memset(c.addr.data() + 4, 0, c.addr.size() - 4);
    c.v6 = false;
    c.prefix -= 96;
  }
  return c;
}

namespace {
bool PrefixEqual(const uint8_t* a, const uint8_t* b, int prefix) {
  const int full = prefix / 8;
  if (std::memcmp(a, b, static_cast<std::size_t>(full)) != 0) return false;
  const int rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}
}  // namespace

bool CidrContains(const Cidr& c, const uint8_t* addr, std::size_t len) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (len == 16 && !c.v6 && std::memcmp(addr, kMapped, 12) == 0) {
    addr += 12;
    len = 4;
  }
  if ((len == 16) != c.v6 || (len != 4 && len != 16)) return false;
  return PrefixEqual(addr, c.addr.data(), c.prefix);
}

bool SourceAllowed(const std::vector<Cidr>& ranges, const uint8_t* addr, std::size_t len) {
  if (ranges.empty()) return true;
  for (const auto& r : ranges) {
    if (CidrContains(r, addr, len)) return true;
  }
  return false;
}

bool AnyContains(const std::vector<Cidr>& ranges, const uint8_t* addr, std::size_t len) {
  return !ranges.empty() && SourceAllowed(ranges, addr, len);
}

bool AnyContains(const std::vector<Cidr>& ranges, std::string_view ip) {
  if (ip.size() > 64) return false;
  const std::string text(ip);
  std::array<uint8_t, 16> a{};
  if (inet_pton(AF_INET, text.c_str(), a.data()) == 1) return AnyContains(ranges, a.data(), 4);
  if (inet_pton(AF_INET6, text.c_str(), a.data()) == 1) return AnyContains(ranges, a.data(), 16);
  return false;
}

}  // namespace doorman::l4
