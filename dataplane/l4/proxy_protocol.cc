#include "dataplane/l4/proxy_protocol.h"

#include <arpa/inet.h>

#include <cstring>

namespace doorman::l4 {
namespace {

constexpr char kV2Sig[12] = {'\x0D', '\x0A', '\x0D', '\x0A', '\x00', '\x0D', '\x0A', '\x51', '\x55', '\x49', '\x54', '\x0A'};
constexpr std::string_view kV1Prefix = "PROXY ";

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the PROXY v2 checksum (spec §2.2.5).
// By hand: Debian 12 packages no C/C++ CRC-32C library (zlib's crc32 is the other polynomial),
// and a 256-entry table is all it takes; unit-tested against the standard check value.
constexpr std::array<uint32_t, 256> MakeCrc32cTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = MakeCrc32cTable();

ProxyParseResult Invalid(const char* why) {
  ProxyParseResult r;
  r.status = ProxyParseResult::kInvalid;
  r.error = why;
  return r;
}

bool ParsePort(std::string_view s, uint16_t* out) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

bool ParseIp(std::string_view s, bool v6, ProxyAddress* out) {
  // inet_pton stops at a NUL: "10.1.2.3\0junk" must not read as 10.1.2.3 (helper-124).
  if (s.empty() || s.size() > 45 || s.find('\0') != std::string_view::npos) return false;
  char buf[46];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  out->v6 = v6;
  return inet_pton(v6 ? AF_INET6 : AF_INET, buf, out->ip.data()) == 1;
}

ProxyParseResult ParseV1(std::string_view data) {
  // Compare what we have against the prefix first: "PRO" is a valid start.
  const std::size_t n = std::min(data.size(), kV1Prefix.size());
  if (data.substr(0, n) != kV1Prefix.substr(0, n)) return Invalid("not a PROXY header");
  const auto crlf = data.find("\r\n");
  if (crlf == std::string_view::npos) {
    if (data.size() >= kMaxV1Length) return Invalid("v1 header too long");
    // A lone CR or LF inside would never become valid.
    if (data.find('\n') != std::string_view::npos) return Invalid("v1 bare LF");
    return ProxyParseResult{};
  }
  if (crlf + 2 > kMaxV1Length) return Invalid("v1 header too long");
  std::string_view line = data.substr(kV1Prefix.size(), crlf - kV1Prefix.size());
  if (line.find('\r') != std::string_view::npos || line.find('\n') != std::string_view::npos) {
    return Invalid("v1 stray CR/LF");
  }
  std::string_view f[6];
  std::size_t count = 0;
  while (!line.empty() && count < 6) {
    const auto sp = line.find(' ');
    f[count++] = line.substr(0, sp);
    if (sp == std::string_view::npos) {
      line = {};
      break;
    }
    line.remove_prefix(sp + 1);
    if (line.empty()) return Invalid("v1 trailing space");
  }
  if (!line.empty()) return Invalid("v1 too many fields");
  ProxyParseResult r;
  r.status = ProxyParseResult::kDone;
  r.consumed = crlf + 2;
  r.header.version = 1;
  if (count >= 1 && f[0] == "UNKNOWN") {  // the rest of the line is ignored, per the spec
    r.header.local = true;
    return r;
  }
  if (count != 5) return Invalid("v1 wrong number of fields");
  bool v6;
  if (f[0] == "TCP4") {
    v6 = false;
  } else if (f[0] == "TCP6") {
    v6 = true;
  } else {
    return Invalid("v1 unknown protocol");
  }
  if (!ParseIp(f[1], v6, &r.header.source) || !ParseIp(f[2], v6, &r.header.destination)) return Invalid("v1 bad address");
  if (!ParsePort(f[3], &r.header.source.port) || !ParsePort(f[4], &r.header.destination.port)) return Invalid("v1 bad port");
  return r;
}

constexpr uint8_t kPp2TypeCrc32c = 0x03;

ProxyParseResult ParseV2(std::string_view data) {
  if (data.size() < 16) return ProxyParseResult{};
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const uint8_t ver_cmd = p[12];
  if ((ver_cmd >> 4) != 2) return Invalid("v2 bad version");
  const uint8_t cmd = ver_cmd & 0x0f;
  if (cmd > 1) return Invalid("v2 bad command");
  const uint8_t fam = p[13];
  const std::size_t len = (static_cast<std::size_t>(p[14]) << 8) | p[15];
  if (16 + len > kMaxV2Length) return Invalid("v2 header too long");
  if (data.size() < 16 + len) return ProxyParseResult{};
  ProxyParseResult r;
  r.status = ProxyParseResult::kDone;
  r.consumed = 16 + len;
  r.header.version = 2;
  if (cmd == 0) {  // LOCAL: health checks from the proxy itself; addresses ignored
    r.header.local = true;
    return r;
  }
  const uint8_t af = fam >> 4;
  const uint8_t transport = fam & 0x0f;
  if (fam == 0x00) {  // UNSPEC: keep the connection's own addresses
    r.header.local = true;
    return r;
  }
  // Only 0x00, 0x11, 0x12, 0x21, 0x22, 0x31 and 0x32 are defined; the spec (§2.2) says receivers
  // must reject the others (an UNSPEC half with a defined other half included).
  if (af == 0 || af > 3) return Invalid("v2 bad address family");
  if (transport != 1 && transport != 2) return Invalid("v2 bad transport");
  r.header.datagram = transport == 2;
  const uint8_t* a = p + 16;
  // After the address block, TLVs (type, 16-bit length, value) fill the rest of the header
  // exactly: one that runs past the declared length makes the header malformed.
  std::size_t block = 0;
  if (af == 1) block = 12;
  if (af == 2) block = 36;
  if (af == 3) block = 216;
  // A PP2_TYPE_CRC32C TLV (0x03) must be 4 bytes and match the checksum of the whole header with
  // its value zeroed: the spec says a receiver that supports it MUST verify it (HAProxy does).
  std::size_t crc_at = 0;  // offset of the checksum value in `p`; 0 = none
  if (block != 0 && len >= block) {
    std::size_t at = block;
    while (at < len) {
      if (len - at < 3) return Invalid("v2 truncated TLV");
      const std::size_t tlv_len = (static_cast<std::size_t>(a[at + 1]) << 8) | a[at + 2];
      if (tlv_len > len - at - 3) return Invalid("v2 TLV runs past the header");
      if (a[at] == kPp2TypeCrc32c) {
        if (tlv_len != 4) return Invalid("v2 CRC32C TLV not 4 bytes");
        if (crc_at != 0) return Invalid("v2 duplicate CRC32C TLV");
        crc_at = 16 + at + 3;
      }
      at += 3 + tlv_len;
    }
  }
  if (crc_at != 0) {
    const uint32_t want = (static_cast<uint32_t>(p[crc_at]) << 24) | (static_cast<uint32_t>(p[crc_at + 1]) << 16) |
                          (static_cast<uint32_t>(p[crc_at + 2]) << 8) | p[crc_at + 3];
    static constexpr uint8_t kZero[4] = {0, 0, 0, 0};
    uint32_t crc = Crc32cUpdate(0, p, crc_at);
    crc = Crc32cUpdate(crc, kZero, 4);
    crc = Crc32cUpdate(crc, p + crc_at + 4, 16 + len - crc_at - 4);
    if (crc != want) return Invalid("v2 CRC32C mismatch");
  }
  if (af == 1) {
    if (len < 12) return Invalid("v2 short IPv4 address block");
    std::memcpy(r.header.source.ip.data(), a, 4);
    std::memcpy(r.header.destination.ip.data(), a + 4, 4);
    r.header.source.port = static_cast<uint16_t>((a[8] << 8) | a[9]);
    r.header.destination.port = static_cast<uint16_t>((a[10] << 8) | a[11]);
  } else if (af == 2) {
    if (len < 36) return Invalid("v2 short IPv6 address block");
    r.header.source.v6 = r.header.destination.v6 = true;
    std::memcpy(r.header.source.ip.data(), a, 16);
    std::memcpy(r.header.destination.ip.data(), a + 16, 16);
    r.header.source.port = static_cast<uint16_t>((a[32] << 8) | a[33]);
    r.header.destination.port = static_cast<uint16_t>((a[34] << 8) | a[35]);
  } else if (af == 3) {  // AF_UNIX: no IP to report; treat as local
    if (len < 216) return Invalid("v2 short UNIX address block");
    r.header.local = true;
  } else {
    return Invalid("v2 bad address family");
  }
  return r;
}

}  // namespace

uint32_t Crc32cUpdate(uint32_t crc, const uint8_t* data, std::size_t n) {
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) crc = kCrc32cTable[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

ProxyParseResult ParseProxyHeader(std::string_view data) {
  if (data.empty()) return ProxyParseResult{};
  if (data[0] == kV2Sig[0]) {
    const std::size_t n = std::min(data.size(), sizeof kV2Sig);
    if (std::memcmp(data.data(), kV2Sig, n) != 0) return Invalid("bad v2 signature");
    return ParseV2(data);
  }
  return ParseV1(data);
}

std::string EncodeProxyHeader(int version, const ProxyAddress& src, const ProxyAddress& dst) {
  if (version == 1) {
    if (src.v6 != dst.v6) return "PROXY UNKNOWN\r\n";
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
    const int af = src.v6 ? AF_INET6 : AF_INET;
    inet_ntop(af, src.ip.data(), a, sizeof a);
    inet_ntop(af, dst.ip.data(), b, sizeof b);
    return std::string("PROXY ") + (src.v6 ? "TCP6 " : "TCP4 ") + a + " " + b + " " + std::to_string(src.port) + " " +
           std::to_string(dst.port) + "\r\n";
  }
  std::string out(kV2Sig, sizeof kV2Sig);
  out.push_back('\x21');  // version 2, PROXY
  if (src.v6 != dst.v6) {
    out.push_back('\x00');  // UNSPEC
    out.append("\x00\x00", 2);
    return out;
  }
  out.push_back(src.v6 ? '\x21' : '\x11');  // TCP over IPv6 / IPv4
  const std::size_t alen = src.v6 ? 16 : 4;
  const std::size_t len = 2 * alen + 4;
  out.push_back(static_cast<char>(len >> 8));
  out.push_back(static_cast<char>(len & 0xff));
  out.append(reinterpret_cast<const char*>(src.ip.data()), alen);
  out.append(reinterpret_cast<const char*>(dst.ip.data()), alen);
  out.push_back(static_cast<char>(src.port >> 8));
  out.push_back(static_cast<char>(src.port & 0xff));
  out.push_back(static_cast<char>(dst.port >> 8));
  out.push_back(static_cast<char>(dst.port & 0xff));
  return out;
}

}  // namespace doorman::l4
