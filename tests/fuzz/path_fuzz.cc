// libFuzzer target: what the L7 proxy does with a request target and Host before routing
// (http_proxy.cc's Handle, without sockets): SplitTarget, HasDotSegmentWithParams,
// NormalizePath, RoutingPathWithoutParams, ValidHost, NormalizeHost, then a prefix rewrite and a
// redirect. Input: "host\ntarget\nprefix\nreplacement".
// Properties: never crashes; the routed and forwarded paths are in normal form (normalising again
// changes nothing: no "//", "." or ".." segments left for a backend to resolve otherwise) and
// rooted; the routing path has no ";" parameters; a rewrite stays rooted, and keeping the ";"
// parameters after the prefix changes nothing but them; a redirect's authority
// is exactly the request's host (a crafted Host cannot move the client elsewhere) and carries
// no control character.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dataplane/l7/filters.h"
#include "dataplane/l7/router.h"

using namespace doorman::dataplane;

namespace {
std::string_view Next(std::string_view* in) {
  const std::size_t nl = in->find('\n');
  const std::string_view part = in->substr(0, nl);
  in->remove_prefix(nl == std::string_view::npos ? in->size() : nl + 1);
  return part;
}

void CheckNormal(std::string_view p) {
  if (p.empty() || p.front() != '/') std::abort();
  if (p.find("//") != std::string_view::npos) std::abort();
  std::string again;
  if (NormalizePath(p, &again)) std::abort();  // idempotent: already normal
  for (std::size_t i = 0; i < p.size();) {  // no "." or ".." segment
    const std::size_t end = std::min(p.find('/', i + 1), p.size());
    const std::string_view seg = p.substr(i + 1, end - i - 1);
    if (seg == "." || seg == "..") std::abort();
    i = end;
  }
}

bool HasCtl(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::string_view host_header = Next(&in);
  const std::string_view target = Next(&in);
  const std::string_view prefix = Next(&in);
  const std::string_view replacement = Next(&in);
  // Beast's parser refuses these in a request target and a field value.
  if (target.empty() || HasCtl(target) || target.find(' ') != std::string_view::npos || HasCtl(host_header)) return 0;

  std::string_view path, query, authority;
  SplitTarget(target, &path, &query, &authority);
  if (path.empty() || path.front() != '/') return 0;          // 400 (or "*")
  if (target.find('#') != std::string_view::npos) return 0;   // 400
  if (HasInvalidPercentEncoding(path)) return 0;              // 400
  if (HasDotSegmentWithParams(path)) return 0;                 // 400
  std::string norm;
  if (NormalizePath(path, &norm)) path = norm;
  CheckNormal(path);
  std::string routing;
  std::string_view route_path = path;
  if (RoutingPathWithoutParams(path, &routing)) route_path = routing;
  if (route_path.find(';') != std::string_view::npos) std::abort();
  CheckNormal(route_path);
  if (!ValidHost(host_header) || !ValidHost(authority)) return 0;  // 400
  const std::string_view host = authority.empty() ? host_header : authority;
  (void)NormalizeHost(host);

  // A route's prefix is validated by the controller (rooted, no trailing '/'); emulate that.
  std::string matched(prefix);
  if (!matched.empty() && (matched.front() != '/' || matched.back() == '/')) matched.clear();
  if (PathPrefixMatches(matched, route_path) && !replacement.empty() && replacement.front() == '/' &&
      !HasCtl(replacement)) {
    const std::string rewritten = RewritePathPrefix(route_path, matched, replacement);
    if (rewritten.empty() || rewritten.front() != '/') std::abort();
    // Keeping the ";" parameters after the prefix forwards what was routed: without its
    // parameters it is the plain rewrite of the routing path.
    // (The controller refuses a pathPrefix with a malformed escape: internal.cc PathProblem.)
    if (replacement.find(';') == std::string_view::npos && !HasInvalidPercentEncoding(replacement)) {
      const std::string kept = RewritePathPrefixKeepingParams(path, route_path, matched, replacement);
      if (kept.empty() || kept.front() != '/') std::abort();
      std::string a, b;
      const std::string_view kept_routed = RoutingPathWithoutParams(kept, &a) ? std::string_view(a) : kept;
      const std::string_view plain_routed = RoutingPathWithoutParams(rewritten, &b) ? std::string_view(b) : rewritten;
      std::string na, nb;
      const std::string_view x = NormalizePath(kept_routed, &na) ? std::string_view(na) : kept_routed;
      const std::string_view y = NormalizePath(plain_routed, &nb) ? std::string_view(nb) : plain_routed;
      if (x != y) std::abort();
    }
  }

  if (host.empty()) return 0;  // the proxy redirects a Host-less request to its own address
  for (const char* scheme : {"", "https"}) {
    RedirectFilter r;
    r.enabled = true;
    r.scheme = scheme;
    const std::string loc = RedirectLocation(r, "http", host, 8080, path, query);
    if (HasCtl(loc)) std::abort();
    const std::size_t start = loc.find("://");
    if (start == std::string::npos) std::abort();
    const std::size_t end = loc.find_first_of("/?#", start + 3);
    std::string_view authority_out = std::string_view(loc).substr(start + 3, end - start - 3);
    // The host part (before ":port", outside brackets) must be the request's.
    std::string_view want = host;
    if (!want.empty() && want.front() == '[') {
      want = want.substr(0, want.find(']') + 1);
    } else {
      want = want.substr(0, want.find(':'));
    }
    if (authority_out.substr(0, want.size()) != want) std::abort();
    const std::string_view rest = authority_out.substr(want.size());
    if (!rest.empty() && (rest.front() != ':' || rest.find_first_not_of("0123456789", 1) != std::string_view::npos)) {
      std::abort();
    }
    if (want.empty()) std::abort();
  }
  return 0;
}
