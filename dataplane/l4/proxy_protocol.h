// PROXY protocol v1 (text) and v2 (binary), HAProxy's spec
// (https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt). Pure: no sockets.
//
// Parse() is strict and incremental: feed it the bytes received so far; it answers kNeedMore
// (a valid prefix, read more), kDone (a complete header of `consumed` bytes; what follows is
// payload), or kInvalid (never a valid header — close the connection and count it). It never
// reads past `data`, never allocates in proportion to input, and bounds a header to
// kMaxV1Length / kMaxV2Length bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace doorman::l4 {

inline constexpr std::size_t kMaxV1Length = 107;     // the spec's bound, CRLF included
inline constexpr std::size_t kMaxV2Length = 16 + 2048;  // header + addresses + TLVs we accept

struct ProxyAddress {
  bool v6 = false;
  std::array<uint8_t, 16> ip{};  // v4: first 4 bytes
  uint16_t port = 0;
};

struct ProxyHeader {
  int version = 0;        // 1 or 2
  bool local = false;     // v2 LOCAL command / v1 UNKNOWN: no addresses, use the connection's
  bool datagram = false;  // v2 transport DGRAM (UDP4/UDP6); v1 and STREAM families: false
  ProxyAddress source;
  ProxyAddress destination;
};

// Whether a listener takes the header's addresses as the client's: only for its own transport
// (STREAM on a TCP listener, DGRAM on a UDP one), as HAProxy does. Another defined family (the
// other transport, AF_UNIX, UNSPEC, LOCAL) is accepted and keeps the connection's own address.
inline bool UsesAddresses(const ProxyHeader& h, bool datagram_listener) {
  return !h.local && h.datagram == datagram_listener;
}

struct ProxyParseResult {
  enum Status { kNeedMore, kDone, kInvalid } status = kNeedMore;
  std::size_t consumed = 0;  // kDone: header length
  ProxyHeader header;
  const char* error = "";    // kInvalid: why (for logs)
};

ProxyParseResult ParseProxyHeader(std::string_view data);

// CRC-32C of `n` bytes continuing `crc` (start from 0): Crc32cUpdate(0, "123456789") = 0xE3069283.
// A v2 header's PP2_TYPE_CRC32C TLV is checked with it.
uint32_t Crc32cUpdate(uint32_t crc, const uint8_t* data, std::size_t n);

// Encodes a header for `source` → `destination` (same family). version 1 or 2.
std::string EncodeProxyHeader(int version, const ProxyAddress& source, const ProxyAddress& destination);

}  // namespace doorman::l4
