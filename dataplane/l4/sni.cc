#include "dataplane/l4/sni.h"

#include <cstdint>

namespace doorman::l4 {
namespace {

SniResult Invalid(const char* why) {
  SniResult r;
  r.status = SniResult::kInvalid;
  r.error = why;
  return r;
}

// Bounds-checked big-endian reader over the reassembled handshake message.
struct Reader {
  std::string_view d;
  std::size_t pos = 0;
  bool ok = true;
  std::size_t left() const { return d.size() - pos; }
  uint32_t U(int n) {
    if (!ok || left() < static_cast<std::size_t>(n)) {
      ok = false;
      return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(d[pos++]);
    return v;
  }
  std::string_view Bytes(std::size_t n) {
    if (!ok || left() < n) {
      ok = false;
      return {};
    }
    auto s = d.substr(pos, n);
    pos += n;
    return s;
  }
};

bool ValidHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

SniResult ParseHello(std::string_view msg) {
  Reader r{msg};
  r.U(2);          // legacy_version
  r.Bytes(32);     // random
  const auto sid = r.U(1);
  if (sid > 32) return Invalid("session id too long");
  r.Bytes(sid);
  const auto cs = r.U(2);
  if (cs == 0 || cs % 2 != 0) return Invalid("bad cipher suites");
  r.Bytes(cs);
  const auto comp = r.U(1);
  if (comp == 0) return Invalid("no compression methods");
  r.Bytes(comp);
  if (!r.ok) return Invalid("truncated ClientHello");
  SniResult out;
  out.status = SniResult::kDone;
  if (r.left() == 0) return out;  // no extensions at all
  const auto ext_len = r.U(2);
  if (!r.ok || ext_len != r.left()) return Invalid("bad extensions length");
  bool seen_sni = false;
  while (r.left() > 0) {
    const auto type = r.U(2);
    const auto len = r.U(2);
    auto body = r.Bytes(len);
    if (!r.ok) return Invalid("truncated extension");
    if (type != 0) continue;
    if (seen_sni) return Invalid("duplicate server_name extension");
    seen_sni = true;
    Reader e{body};
    const auto list_len = e.U(2);
    if (!e.ok || list_len != e.left() || list_len == 0) return Invalid("bad server_name list");
    while (e.left() > 0) {
      const auto name_type = e.U(1);
      const auto name_len = e.U(2);
      auto name = e.Bytes(name_len);
      if (!e.ok) return Invalid("truncated server_name");
      if (name_type != 0 || !out.server_name.empty()) continue;  // first host_name wins
      if (name.empty() || name.size() > 253) return Invalid("bad host name length");
      std::string lower;
      lower.reserve(name.size());
      for (char c : name) {
        const char l = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        if (!ValidHostChar(l)) return Invalid("bad host name character");
        lower.push_back(l);
      }
      if (lower.back() == '.') lower.pop_back();  // absolute form
      if (lower.empty()) return Invalid("bad host name");
      out.server_name = std::move(lower);
    }
  }
  return out;
}

}  // namespace

SniResult ParseClientHelloSni(std::string_view data) {
  std::string handshake;  // reassembled handshake-layer bytes (small: bounded below)
  std::size_t pos = 0;
  for (;;) {
    if (data.size() - pos < 5) {
      if (pos == 0 && !data.empty() && static_cast<uint8_t>(data[0]) != 22) return Invalid("not a TLS handshake");
      break;
    }
    const auto* h = reinterpret_cast<const uint8_t*>(data.data() + pos);
    if (h[0] != 22) return Invalid("not a TLS handshake record");
    if (h[1] != 3) return Invalid("bad record version");
    const std::size_t len = (static_cast<std::size_t>(h[3]) << 8) | h[4];
    if (len == 0 || len > 16384) return Invalid("bad record length");
    if (pos + 5 + len > kMaxClientHelloBytes) return Invalid("ClientHello too large");
    if (data.size() - pos - 5 < len) {
      // Partial record: use what we have (the SNI may already be complete in it).
      handshake.append(data.substr(pos + 5));
      pos = data.size();
      break;
    }
    handshake.append(data.substr(pos + 5, len));
    pos += 5 + len;
    if (handshake.size() >= 4) {
      const std::size_t msg_len = (static_cast<std::size_t>(static_cast<uint8_t>(handshake[1])) << 16) |
                                  (static_cast<std::size_t>(static_cast<uint8_t>(handshake[2])) << 8) |
                                  static_cast<uint8_t>(handshake[3]);
      if (handshake.size() >= 4 + msg_len) break;
    }
  }
  if (handshake.empty()) return SniResult{};
  if (static_cast<uint8_t>(handshake[0]) != 1) return Invalid("first handshake message is not a ClientHello");
  if (handshake.size() < 4) return SniResult{};
  const std::size_t msg_len = (static_cast<std::size_t>(static_cast<uint8_t>(handshake[1])) << 16) |
                              (static_cast<std::size_t>(static_cast<uint8_t>(handshake[2])) << 8) |
                              static_cast<uint8_t>(handshake[3]);
  if (msg_len < 38 || msg_len > kMaxClientHelloBytes) return Invalid("bad ClientHello length");
  if (handshake.size() < 4 + msg_len) {
    if (pos >= kMaxClientHelloBytes) return Invalid("ClientHello too large");
    return SniResult{};
  }
  return ParseHello(std::string_view(handshake).substr(4, msg_len));
}

bool SniMatcher::Matches(std::string_view name) const { return MatchRank(name).has_value(); }

std::optional<std::pair<int, int64_t>> SniMatcher::MatchRank(std::string_view name) const {
  for (const auto& e : exact) {
    if (e == name) return std::make_pair(0, -static_cast<int64_t>(e.size()));
  }
  std::optional<std::pair<int, int64_t>> best;
  for (const auto& s : suffixes) {
    if (name.size() > s.size() && name.substr(name.size() - s.size()) == s) {
      const auto r = std::make_pair(1, -static_cast<int64_t>(s.size()));
      if (!best || r < *best) best = r;
    }
  }
  return best;
}

}  // namespace doorman::l4
