// L7 route matching, pure (no Beast): a compiled RouteMatch per route and the functions that test
// a request against it. The proxy adapts a parsed request into a RequestView; the first route of
// the listener (in the controller's precedence order) whose every given field matches wins —
// ranked by the host that matched this request (SelectRoute).
//
// Semantics (Gateway API / Kubernetes Ingress, where the two agree):
// * Host: compared case-insensitively after stripping the port ("Example.com:8080" →
//   "example.com") and one trailing dot. "*.example.com" matches any name with one or more
//   labels before ".example.com" (Gateway API) — exactly one for routes from an Ingress
//   (RouteMatch.wildcard_one_label) — but not "example.com" itself. No hosts = any.
// * Path: matched on the raw path (no percent-decoding or dot-segment normalisation), query
//   excluded. Prefix is segment-wise: "/foo" and "/foo/" match "/foo", "/foo/", "/foo/bar" but
//   not "/foobar"; "/" matches everything. Exact is byte-for-byte. RegularExpression is an RE2
//   full match.
// * Methods: exact, case-sensitive (HTTP methods are). Headers: name case-insensitive, value
//   exact / RE2 full match / present; the first field with that name is tested. Query params and
//   cookies: exact value of the first occurrence, no percent-decoding.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace re2 {
class RE2;
}

namespace doorman::dataplane {

struct Listener;
struct Route;

// Header lookup the proxy implements over its parsed request. `lower_name` is lowercase.
class RequestHeaders {
 public:
  virtual ~RequestHeaders() = default;
  virtual std::optional<std::string_view> Get(std::string_view lower_name) const = 0;
  // The value of cookie `name` from the request's Cookie field(s): a client or an HTTP/2
  // front end may send several (RFC 9113 §8.2.3); the first one naming it wins.
  virtual std::optional<std::string_view> Cookie(std::string_view name) const;
};

struct RequestView {
  std::string_view method;     // "GET"
  std::string_view host;       // Host header (or the authority of an absolute-form target), raw
  std::string_view path;       // without the query
  std::string_view query;      // after '?', without it; empty if none
  const RequestHeaders* headers = nullptr;  // may be null when no route needs headers/cookies
};

struct PathMatcher {
  enum class Type { kAny, kPrefix, kExact, kRegex };
  Type type = Type::kAny;
  std::string value;  // kPrefix: without its trailing '/' ("" for "/")
  std::size_t declared_len = 0;  // ranks the route: the length of the value (kPrefix: of `value`)
  std::shared_ptr<const re2::RE2> regex;
  bool Matches(std::string_view path) const;
};

struct HeaderMatcher {
  enum class Type { kExact, kRegex, kPresent };
  std::string lower_name;
  Type type = Type::kExact;
  std::string value;
  std::shared_ptr<const re2::RE2> regex;
};

// How specific a host match is (lower = more specific): an exact host, then a `*.` wildcard,
// then a route for any host; within each, the longer first ("*.a.com" counts ".a.com").
struct HostRank {
  int kind = 2;         // 0 exact, 1 wildcard, 2 any host
  int64_t neg_len = 0;  // minus the host's length
  auto operator<=>(const HostRank&) const = default;
};

struct RouteMatch {
  std::vector<std::string> exact_hosts;      // lowercase
  std::vector<std::string> wildcard_suffixes;  // lowercase, with the leading dot: ".example.com"
  bool wildcard_one_label = false;  // a wildcard covers exactly one label (Ingress), else one or more
  bool after_paths = false;         // RouteMatch.after_paths: no path, ranked after its host's paths
  PathMatcher path;
  std::vector<std::string> methods;
  std::vector<HeaderMatcher> headers;
  std::vector<std::pair<std::string, std::string>> query_params;
  std::vector<std::pair<std::string, std::string>> cookies;

  bool any_host() const { return exact_hosts.empty() && wildcard_suffixes.empty(); }
  bool needs_headers() const { return !headers.empty() || !cookies.empty(); }
  // The most specific host listed: what places the route in the controller's order. Set by
  // FinishRouteMatch().
  HostRank best_host;
};

// Snapshot.host_owners: which namespace each host routed on an HTTP/HTTPS port belongs to. A
// request's host belongs to the owner of its exact name, else of the most specific `*.` wildcard
// covering it (an Ingress's covers one label only); no owner = nobody's. SelectRoute leaves out
// another namespace's routes for an owned host (they could only match it through a wildcard or
// as any-host routes: the controller gives an exact host to its owner alone), and
// SelectCertificate another namespace's certificates, as ingress-nginx serves a named host from
// its own server block only.
class HostOwnership {
 public:
  // `host`: an exact name or "*.suffix" (lowercased here). The first owner of a host stays; returns
  // false for a repeated host of another namespace, or an empty host or namespace (not added).
  bool Add(std::string_view host, std::string_view ns, bool wildcard_one_label);
  // The owner's namespace, or "" when no host entry covers `normalized_host` (NormalizeHost's).
  std::string_view OwnerOf(std::string_view normalized_host) const;
  bool empty() const { return exact_.empty() && wildcards_.empty(); }
  // Whether a host belongs to a namespace other than `ns` (else a route of `ns` needs no check).
  bool HasOwnerOtherThan(std::string_view ns) const;
  struct Entry {
    std::string host;  // exact, or "*.suffix"
    std::string ns;
    bool wildcard_one_label = false;
  };
  // Every entry, exact hosts then wildcards, each in host order (for /debug/config).
  std::vector<Entry> Entries() const;

 private:
  struct Wildcard {
    std::string ns;
    bool one_label = false;
  };
  std::map<std::string, std::string, std::less<>> exact_;
  std::map<std::string, Wildcard, std::less<>> wildcards_;  // keyed by ".suffix"
  std::set<std::string, std::less<>> namespaces_;
};

// Computes the derived fields of a compiled RouteMatch (best_host).
void FinishRouteMatch(RouteMatch* m);
// The rank of the most specific of `m`'s hosts that matches `normalized_host`, or nullopt.
std::optional<HostRank> MatchedHostRank(const RouteMatch& m, std::string_view normalized_host);
// Whether `routes` (a listener's, in the controller's order) are sorted by best_host, which
// lets SelectRoute stop early.
bool SortedByBestHost(const std::vector<const Route*>& routes);

// "Example.COM:8080" → "example.com"; "[::1]:80" → "::1"; strips one trailing dot.
std::string NormalizeHost(std::string_view host);
// Splits an origin-form or absolute-form request target. For absolute form ("http://h:1/p?q")
// *authority receives "h:1"; otherwise it is left untouched.
void SplitTarget(std::string_view target, std::string_view* path, std::string_view* query,
                 std::string_view* authority);

// RFC 3986 §6.2.2 normalisation of an origin-form path before it is routed and forwarded:
// %XX escapes of unreserved characters are decoded (%2E is ".", %7E is "~"), then dot-segments
// are removed (§5.2.4: "/a/./b/../c" is "/a/c"; ".." never climbs above "/") and repeated
// slashes merged ("//admin" is "/admin": nginx, the common backend and ingress-nginx's engine,
// merges them by default, so "//admin" must not escape an "/admin" route; Envoy's merge_slashes).
// "%2F" stays encoded (it is data, not a separator: Envoy's default too), and every escape kept
// gets upper-case hex digits ("%2f" is "%2F", §6.2.2.1). Returns false, without
// allocating, when the path is already normal (the common case); else writes the normal form.
// Without it, "/public/../admin" would match a "/public" route while a backend that normalises
// serves "/admin" under that route's policy.
// `path` must have valid percent-encoding (see HasInvalidPercentEncoding): a stray "%" could
// otherwise combine with a decoded character into a new escape ("/%%361dmin" → "/%61dmin"),
// which a backend decodes once more ("/admin") while routing saw another path.
bool NormalizePath(std::string_view path, std::string* out);

// Whether a "%" is not followed by two hex digits (RFC 3986 §2.1). Such a target is answered
// 400, as nginx does.
bool HasInvalidPercentEncoding(std::string_view path);

// The path as routing sees it when segments carry ";" parameters (RFC 3986 §3.3): each segment
// without them, then in normal form ("/admin;x" is "/admin", "/x/..;/admin" is "/admin"). Java
// servlet containers (Tomcat, Jetty, Spring) drop them before mapping, so routing on the path as
// sent would let "/admin;x" miss an "/admin" route while the backend serves "/admin". The
// forwarded path keeps its parameters (";jsessionid="). Returns false, without allocating, when
// the path has no ";".
bool RoutingPathWithoutParams(std::string_view path, std::string* out);

// Whether a "." or ".." segment carries ";" parameters ("/x/..;/admin", "/a/.;p/b", also
// %2E-spelled). Such a path means "/admin" to a servlet container and "/x/..;/admin" (a segment
// named "..;") to nginx, Go or Express: whichever way routing read it, a backend of the other
// kind would serve another path under the route's policy, so it is refused (400).
bool HasDotSegmentWithParams(std::string_view path);

// A Host field value (or absolute-form authority) as RFC 9110 §7.2 / RFC 3986 §3.2.2 allow:
// reg-name (unreserved, %XX, sub-delims), IPv4, or "[IPv6]", then an optional ":port" of
// digits; empty is allowed, a port without a host (":80", "[]:80") is not. Anything else
// ("a b", "a@b", "a/b", ":80") is answered 400
// (RFC 9112 §3.2: "a Host header field with an invalid field value").
bool ValidHost(std::string_view host);

bool PathPrefixMatches(std::string_view prefix_without_trailing_slash, std::string_view path);
bool HostMatches(const RouteMatch& m, std::string_view normalized_host);
// `normalized_host` must come from NormalizeHost(view.host).
bool RouteMatches(const RouteMatch& m, const RequestView& view, std::string_view normalized_host);

// The route of `listener` that wins for this request, or nullptr. Among the routes that match,
// the most specific *matching* host wins (Gateway API: "largest number of characters in a
// matching non-wildcard hostname", then in a matching hostname), then an Exact path, then the
// longer path, Prefix before RegularExpression (no path ranks as Prefix "/", unless after_paths),
// then Gateway API's order: a method match, more header matches, more query parameter matches
// (then more cookie matches), and then the controller's order (oldest object, declaration
// order): the same keys as the controller's RoutePrecedence after the host. A route that lists a long exact host and a wildcard thus
// wins for its exact host only, not for every name its wildcard covers.
// `skip_forwarded_https_fallbacks`: leave out redirect-only routes that a trusted proxy's
// X-Forwarded-Proto: https skips (an Ingress's https-redirect-h<k>: no backends), for a request
// such a proxy received over HTTPS, which then goes where it would over HTTPS.
const Route* SelectRoute(const Listener& listener, const RequestView& view, bool skip_forwarded_https_fallbacks = false);

// Whether `r` is such a route.
bool IsForwardedHttpsFallback(const Route& r);

// Value of cookie `name` in a Cookie header ("a=1; b=2"), if present.
std::optional<std::string_view> FindCookie(std::string_view cookie_header, std::string_view name);
// Value of query parameter `name` ("a=1&b=2"); a parameter without '=' has an empty value.
std::optional<std::string_view> FindQueryParam(std::string_view query, std::string_view name);

}  // namespace doorman::dataplane
