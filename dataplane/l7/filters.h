// Pure L7 request/response policy (no sockets, no Beast): redirect targets, path-prefix rewrite,
// header rule sets, trusted-proxy CIDRs and request ids. The proxy applies them; Compile() builds
// them from RouteFilters / ForwardedHeaders.
//
// Semantics (Gateway API HTTPRoute filters where it defines them):
// * Redirect: Location = scheme://host[:port]path[?query]. An empty scheme/host keeps the
//   request's; port 0 is, as Gateway API derives it, the scheme's well-known port when a scheme
//   is given, else the listener's port; 80 for http and 443 for https are not written. An empty
//   path keeps the request path; the query is kept. Status 0 → 302.
// * Rewrite.path_prefix replaces the part of the path the route's Prefix (or Exact) match
//   matched ("/api" + rewrite "/" : "/api/x" → "/x", "/api" → "/"); a route without a path match
//   is treated as prefix "/" (the replacement is prepended). Rewrite.host replaces Host.
// * Header rules apply in the order remove, set, add (names case-insensitive).
// * Trusted proxies: CIDRs whose X-Forwarded-* and X-Request-Id headers are believed (l4::Cidr,
//   dataplane/l4/cidr.h: the same parser and matcher as the L4 allow-lists).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace doorman::dataplane {

class HostOwnership;

struct RedirectFilter {
  bool enabled = false;
  std::string scheme;  // "" = keep
  std::string host;    // "" = keep
  uint32_t port = 0;   // 0 = see above
  std::string path;    // "" = keep
  unsigned status = 302;
  bool unless_forwarded_https = false;  // a trusted proxy's X-Forwarded-Proto: https skips it
};

// Whether an X-Forwarded-Proto value says https (its first element, any case, trimmed).
bool ForwardedProtoIsHttps(std::string_view value);

struct RewriteFilter {
  bool enabled = false;
  std::string path_prefix;  // "" = keep the path
  std::string host;         // "" = keep Host
};

struct HeaderRules {
  std::vector<std::pair<std::string, std::string>> set;  // sorted by name (deterministic)
  std::vector<std::pair<std::string, std::string>> add;
  std::vector<std::string> remove;
  bool empty() const { return set.empty() && add.empty() && remove.empty(); }
};

// `request_scheme` "http"/"https"; `host_header` is the raw Host (may carry ":port", not used);
// `listener_port` the port the request came in on.
std::string RedirectLocation(const RedirectFilter& r, std::string_view request_scheme, std::string_view host_header,
                             uint16_t listener_port, std::string_view path, std::string_view query);

// `matched_prefix` is the route's prefix without trailing '/' ("" for "/" or no path match);
// for an Exact match pass the exact path.
std::string RewritePathPrefix(std::string_view path, std::string_view matched_prefix, std::string_view replacement);

// The same, for a Prefix match (or none), for a request whose path had ";" parameters: `raw_path` as forwarded (with them),
// `routed_path` as routed (without). The parameters after the matched segments are kept
// ("/api;v=1/users;id=3" with "/api" → "/v2" is "/v2/users;id=3"); those of the matched
// segments are replaced with them.
std::string RewritePathPrefixKeepingParams(std::string_view raw_path, std::string_view routed_path,
                                           std::string_view matched_prefix, std::string_view replacement);

// X-Request-Id values: 32 lowercase hex digits from a splitmix64 sequence seeded per worker.
class RequestIdGenerator {
 public:
  explicit RequestIdGenerator(uint64_t seed) : state_(seed) {}
  std::string Next();
  void NextInto(std::string* out);  // the same, reusing *out's storage

 private:
  uint64_t Mix();
  uint64_t state_;
};

// TLS SNI: the index of the certificate (by its lowercase DNS names: SAN dNSName entries, else
// the subject CN) to serve for `sni`: an exact name match first, then a wildcard ("*.example.com"
// covers exactly one extra label, RFC 6125 §6.4.3), the earlier certificate winning ties; 0 (the
// listener's default certificate) when nothing matches or there is no SNI.
// With `owners` and `namespaces` (each certificate's, parallel to `names`): for a name another
// namespace owns (HostOwnership), only that namespace's certificates are candidates, so another
// tenant's exact-name certificate does not outrank the owner's wildcard; a name whose owner has
// none gets the default, as any unknown name does.
std::size_t SelectCertificate(const std::vector<std::vector<std::string>>& names, std::string_view sni,
                              const HostOwnership* owners = nullptr, const std::vector<std::string>* namespaces = nullptr);

// An incoming X-Request-Id is kept only when it is 1..128 visible ASCII characters.
bool ValidRequestId(std::string_view id);

}  // namespace doorman::dataplane
