// CIDR lists: L4 allow-lists (Listener.allowed_source_ranges, Service loadBalancerSourceRanges)
// and the L7 trusted proxies (ForwardedHeaders.trusted_proxies) — one implementation. Pure.
// IPv4 and IPv6; an IPv4-mapped IPv6 client (::ffff:a.b.c.d, as seen on a dual-stack socket)
// matches the IPv4 ranges. Host bits set in the range ("10.1.2.3/8") are ignored, as kube-proxy does.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace doorman::l4 {

struct Cidr {
  bool v6 = false;
  std::array<uint8_t, 16> addr{};  // v4: first 4 bytes
  int prefix = 0;
};

// "10.0.0.0/8", "fd00::/8", or a bare address (= /32 or /128). nullopt when malformed.
std::optional<Cidr> ParseCidr(std::string_view text);

// `addr` is 4 (IPv4) or 16 (IPv6) bytes in network order.
bool CidrContains(const Cidr& c, const uint8_t* addr, std::size_t len);

// True when `ranges` is empty (everyone allowed) or one range contains the address.
bool SourceAllowed(const std::vector<Cidr>& ranges, const uint8_t* addr, std::size_t len);

// True when one range contains the address (false for an empty list).
bool AnyContains(const std::vector<Cidr>& ranges, const uint8_t* addr, std::size_t len);
// The same for a textual address ("10.1.2.3", "::1"); false when it does not parse.
bool AnyContains(const std::vector<Cidr>& ranges, std::string_view ip);

}  // namespace doorman::l4
