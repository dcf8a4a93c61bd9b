#include "dataplane/l7/header_rewrite.h"

#include <boost/asio/ip/address.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

namespace doorman::dataplane {

namespace http = boost::beast::http;

namespace {
bool IEquals(std::string_view a, std::string_view b) { return boost::beast::iequals(a, b); }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The client a trusted X-Forwarded-For chain names, as nginx's realip module (recursive) finds
// it: walking from the right, the first entry that is not a trusted proxy; the leftmost when
// every entry is one. Empty for an empty chain.
std::string_view ClientOfChain(std::string_view chain, const std::vector<l4::Cidr>* trusted) {
  std::string_view leftmost;
  while (!chain.empty()) {
    const auto comma = chain.rfind(',');
    const std::string_view entry = Trim(comma == std::string_view::npos ? chain : chain.substr(comma + 1));
    chain = comma == std::string_view::npos ? std::string_view() : chain.substr(0, comma);
    if (entry.empty()) continue;
    leftmost = entry;
    if (trusted == nullptr || !l4::AnyContains(*trusted, entry)) return entry;
  }
  return leftmost;
}

// The client address ClientOfChain finds, as a plain IP (a port some balancers add dropped,
// v4-mapped v6 as v4, no zone index); empty when the chain is empty or that entry is no IP.
std::string ClientIpOfChain(std::string_view chain, const std::vector<l4::Cidr>* trusted) {
  if (chain.empty()) return "";
  std::string_view entry = ClientOfChain(chain, trusted);
  // Some balancers add the client's port ("203.0.113.9:4711", "[2001:db8::5]:443").
  if (!entry.empty() && entry.front() == '[') {
    const auto close = entry.find(']');
    if (close == std::string_view::npos) return "";
    entry = entry.substr(1, close - 1);
  } else if (const auto colon = entry.find(':'); colon != std::string_view::npos && entry.find(':', colon + 1) == std::string_view::npos) {
    entry = entry.substr(0, colon);
  }
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(std::string(entry), ec);
  if (ec) return "";
  if (a.is_v6() && a.to_v6().is_v4_mapped()) a = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
  // Without a zone index: "::1%2" and "::1%3" are one client to a rate limit or a source-IP
  // key, not two (found by tests/fuzz/http_head_fuzz.cc: the zone made distinct keys).
  if (a.is_v6()) a = boost::asio::ip::address_v6(a.to_v6().to_bytes());
  return a.to_string();
}

// Whether two header names are one variable to a CGI-style backend (PHP, Rack, WSGI read both
// X-User and X_User as HTTP_X_USER): equal with '_' read as '-' and case folded.
bool SameCgiName(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  auto fold = [](char ch) { return ch == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(ch))); };
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (fold(a[i]) != fold(b[i])) return false;
  }
  return true;
}

// Whether `name` contains '_' and is one of `names` to a CGI-style backend.
template <std::size_t N>
bool IsUnderscoredSpellingOf(std::string_view name, const std::string_view (&names)[N]) {
  if (name.find('_') == std::string_view::npos) return false;
  return std::any_of(std::begin(names), std::end(names), [name](std::string_view m) { return SameCgiName(name, m); });
}

// Whether `name` is one of the forwarding headers the proxy manages spelled with '_' for '-'
// ("X_Forwarded_For"): CGI-style backends (PHP, Rack, WSGI) read both spellings as
// HTTP_X_FORWARDED_FOR, so an untrusted client's must not pass (nginx drops every name with an
// underscore by default; Envoy has headers_with_underscores_action).
bool IsUnderscoredForwardingHeader(std::string_view name) {
  static constexpr std::string_view kManaged[] = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                                                  "x-forwarded-port", "x-real-ip", "x-request-id", "forwarded"};
  return IsUnderscoredSpellingOf(name, kManaged);
}

// Whether `name` is a framing or hop-by-hop field spelled with '_' for '-' ("Transfer_Encoding",
// "Content_Length"). The proxy frames the request by the real names only; a backend that folds
// '_' into '-' (gunicorn before 22.0 did, for Transfer_Encoding) would frame it differently — a
// smuggling vector — and no client has a legitimate use for these spellings, so they are dropped
// whatever the client's trust.
bool IsUnderscoredFramingHeader(std::string_view name) {
  // Only names with a '-' have an underscore spelling (Host, TE, Upgrade... have none).
  static constexpr std::string_view kFraming[] = {"content-length", "transfer-encoding", "keep-alive",
                                                  "proxy-connection"};
  return IsUnderscoredSpellingOf(name, kFraming);
}

// Every field named `name` (or of Beast id `id`), values joined with ", " in arrival order (the
// one value RFC 9110 §5.3 says a repeated list field stands for).
std::string JoinedValues(const HttpHead& h, http::field id, std::string_view name) {
  std::string out;
  for (const auto& f : h.fields()) {
    if (f.removed || (id != http::field::unknown ? f.id != id : !IEquals(h.name(f), name))) continue;
    if (!out.empty()) out += ", ";
    out.append(h.value(f));
  }
  return out;
}

// An RFC 7239 node for an address: IPv6 in quotes and brackets (§6).
std::string ForwardedNode(std::string_view ip) {
  if (ip.find(':') == std::string_view::npos) return std::string(ip);
  return "\"[" + std::string(ip) + "]\"";
}
}  // namespace

// Fields a Connection header may not remove. Framing and Host: their meaning is end to end.
// The forwarding fields: a client could otherwise name them to delete what a trusted proxy in
// front added (the real client's address), so the backend saw that proxy as the client
// (Traefik's CVE-2024-45410); nginx and HAProxy never remove them either.
bool NeverNominated(std::string_view t) {
  for (const std::string_view name : {"content-length", "transfer-encoding", "host", "x-forwarded-for", "x-real-ip",
                                      "forwarded", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
                                      "x-request-id"}) {
    if (IEquals(t, name)) return true;
  }
  return false;
}

void StripHopByHop(HttpHead& h) {
  // Walk the whole list: fields are kept in arrival order, repeated names need not be adjacent.
  // Connection names live in the received bytes, which Erase() does not move.
  for (const auto& f : h.fields()) {
    if (f.removed || f.id != http::field::connection) continue;
    for (const auto token : http::token_list{h.value(f)}) {
      const std::string_view t(token.data(), token.size());
      if (NeverNominated(t)) continue;
      if (http::string_to_field(t) == http::field::connection) continue;
      h.Erase(t);
    }
  }
  for (const auto f : {http::field::connection, http::field::keep_alive, http::field::proxy_connection, http::field::te,
                       http::field::trailer, http::field::upgrade}) {
    h.Erase(f);
  }
}

bool PrepareUpstreamRequest(HttpHead& h, const ForwardedInfo& info) {
  bool expect_continue = false;
  if (const auto v = h.Get(http::field::expect)) {
    expect_continue = IEquals(*v, "100-continue");
    h.Erase(http::field::expect);
  }
  StripHopByHop(h);
  if (!info.authority.empty()) {
    h.Set(http::field::host, "Host", info.authority);
    h.set_target(info.origin_target);
  }
  // RFC 7239 Forwarded says what X-Forwarded-For does: believed from a trusted client only,
  // extended like X-Forwarded-For's chain in Append, dropped with it in Replace.
  if (!info.trusted || info.forwarded_for == ForwardedForMode::kReplace) h.Erase(http::field::forwarded);
  {
    std::vector<std::string> underscored;
    for (const auto& f : h.fields()) {
      if (f.removed) continue;
      const std::string_view name = h.name(f);
      if (IsUnderscoredFramingHeader(name) || (!info.trusted && IsUnderscoredForwardingHeader(name))) {
        underscored.emplace_back(name);
      }
    }
    for (const auto& name : underscored) h.Erase(name);
  }
  switch (info.forwarded_for) {
    case ForwardedForMode::kOff:
      if (!info.trusted) {
        h.Erase("X-Forwarded-For");
        h.Erase("X-Real-IP");
      }
      break;
    case ForwardedForMode::kReplace:
      h.Set(http::field::unknown, "X-Forwarded-For", info.client_ip);
      h.Set(http::field::unknown, "X-Real-IP", info.client_ip);
      break;
    case ForwardedForMode::kAppend: {
      std::string value = info.trusted ? JoinedValues(h, http::field::unknown, "x-forwarded-for") : std::string();
      // X-Real-IP (ingress-nginx and Traefik set it; nginx's realip module reads it): the
      // original client. A trusted proxy's own is kept; without one, its chain names the client
      // (AWS ALB and most L7 balancers send X-Forwarded-For only), not the proxy's address.
      if (!info.trusted || !h.Has("X-Real-IP")) {
        // An entry that is no IP address ("unknown", junk) leaves the peer's address.
        const std::string from_chain = info.trusted ? ClientIpOfChain(value, info.trusted_proxies) : std::string();
        const std::string real_ip(from_chain.empty() ? info.client_ip : from_chain);
        h.Set(http::field::unknown, "X-Real-IP", real_ip);
      }
      if (info.trusted && h.Get(http::field::forwarded)) {
        std::string joined = JoinedValues(h, http::field::forwarded, "forwarded");
        joined.append(", for=").append(ForwardedNode(info.client_ip));
        h.Set(http::field::forwarded, "Forwarded", joined);
      }
      if (!value.empty()) value += ", ";
      value.append(info.client_ip);
      h.Set(http::field::unknown, "X-Forwarded-For", value);
      break;
    }
  }
  auto set_unless_trusted = [&](std::string_view name, std::string_view value) {
    if (info.trusted && h.Has(name)) return;
    if (value.empty()) {
      h.Erase(name);
    } else {
      h.Set(http::field::unknown, name, value);  // X-Forwarded-*: not in Beast's field table
    }
  };
  set_unless_trusted("X-Forwarded-Proto", info.proto);
  set_unless_trusted("X-Forwarded-Host", info.host);
  set_unless_trusted("X-Forwarded-Port", info.port);
  if (!info.request_id.empty()) h.Set(http::field::unknown, "X-Request-Id", info.request_id);
  return expect_continue;
}

void ApplyHeaderRules(HttpHead& h, const HeaderRules& rules, bool request) {
  if (request) {
    // Every spelling a CGI-style backend reads as a name removed or set (a rule naming x_user
    // covers X-User too) goes with it.
    std::vector<std::string> underscored;
    for (const auto& f : h.fields()) {
      if (f.removed) continue;
      const std::string_view name = h.name(f);
      auto same = [name](std::string_view rule) { return SameCgiName(name, rule); };
      if (std::any_of(rules.remove.begin(), rules.remove.end(), same) ||
          std::any_of(rules.set.begin(), rules.set.end(), [&](const auto& kv) { return same(kv.first); })) {
        underscored.emplace_back(name);
      }
    }
    for (const auto& name : underscored) h.Erase(name);
  }
  for (const auto& name : rules.remove) h.Erase(name);
  for (const auto& [name, value] : rules.set) h.Set(name, value);
  for (const auto& [name, value] : rules.add) h.Insert(name, value);
}

std::string ForwardedClientIp(const HttpHead& h, const std::vector<l4::Cidr>& trusted) {
  return ClientIpOfChain(JoinedValues(h, http::field::unknown, "x-forwarded-for"), &trusted);
}

}  // namespace doorman::dataplane
