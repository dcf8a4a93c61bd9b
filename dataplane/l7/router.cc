#include "dataplane/l7/router.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <vector>

#include "dataplane/config/runtime_config.h"

namespace doorman::dataplane {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool FullMatch(const re2::RE2& re, std::string_view s) {
  return re2::RE2::FullMatch(re2::StringPiece(s.data(), s.size()), re);
}

}  // namespace

std::string NormalizeHost(std::string_view host) {
  std::string_view h = host;
  if (!h.empty() && h.front() == '[') {
    const auto close = h.find(']');
    h = close == std::string_view::npos ? h.substr(1) : h.substr(1, close - 1);
  } else if (const auto colon = h.rfind(':'); colon != std::string_view::npos &&
                                               h.find(':') == colon) {  // one colon: host:port
    h = h.substr(0, colon);
  }
  if (!h.empty() && h.back() == '.') h.remove_suffix(1);
  std::string out(h);
  std::transform(out.begin(), out.end(), out.begin(), Lower);
  return out;
}

void SplitTarget(std::string_view target, std::string_view* path, std::string_view* query,
                 std::string_view* authority) {
  std::string_view t = target;
  auto starts_with_ci = [](std::string_view s, std::string_view p) {
    if (s.size() < p.size()) return false;
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (Lower(s[i]) != p[i]) return false;
    }
    return true;
  };
  std::size_t scheme = 0;
  if (starts_with_ci(t, "http://")) scheme = 7;
  if (starts_with_ci(t, "https://")) scheme = 8;
  if (scheme != 0) {
    t.remove_prefix(scheme);
    const auto end = t.find_first_of("/?");
    *authority = t.substr(0, end);
    t = end == std::string_view::npos ? std::string_view("/") : t.substr(end);
    if (!t.empty() && t.front() == '?') {
      *path = "/";
      *query = t.substr(1);
      return;
    }
  }
  const auto q = t.find('?');
  *path = t.substr(0, q);
  *query = q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

bool HasDotSegmentWithParams(std::string_view path) {
  if (path.find(';') == std::string_view::npos) return false;
  for (std::size_t i = 0; i < path.size();) {
    const std::size_t end = std::min(path.find('/', i), path.size());
    const std::string_view seg = path.substr(i, end - i);
    const std::size_t semi = seg.find(';');
    if (semi != std::string_view::npos) {
      // The segment's name, %2E/%2e decoded: "." or ".." only.
      std::string name;
      const std::string_view raw = seg.substr(0, semi);
      for (std::size_t k = 0; k < raw.size(); ++k) {
        if (raw[k] == '%' && k + 2 < raw.size() && raw[k + 1] == '2' && (raw[k + 2] == 'e' || raw[k + 2] == 'E')) {
          name.push_back('.');
          k += 2;
        } else {
          name.push_back(raw[k]);
        }
      }
      if (name == "." || name == "..") return true;
    }
    i = end + 1;
  }
  return false;
}

bool RoutingPathWithoutParams(std::string_view path, std::string* out) {
  if (path.find(';') == std::string_view::npos) return false;
  std::string stripped;
  stripped.reserve(path.size());
  for (std::size_t i = 0; i < path.size();) {
    const std::size_t semi = path.find(';', i);
    if (semi == std::string_view::npos) {
      stripped.append(path.substr(i));
      break;
    }
    stripped.append(path.substr(i, semi - i));
    const std::size_t next = path.find('/', semi);
    if (next == std::string_view::npos) break;
    i = next;
  }
  if (stripped.empty() || stripped.front() != '/') stripped.insert(stripped.begin(), '/');
  if (!NormalizePath(stripped, out)) *out = std::move(stripped);
  return true;
}

namespace {
// The value of a hex digit, or -1.
int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

bool NormalizePath(std::string_view path, std::string* out) {
  // Fast check: nothing to do without a "%", a "//" or a "." segment.
  bool work = path.find('%') != std::string_view::npos || path.find("//") != std::string_view::npos;
  for (std::size_t i = path.find("/."); !work && i != std::string_view::npos; i = path.find("/.", i + 1)) {
    const std::string_view rest = path.substr(i + 2);
    work = rest.empty() || rest.front() == '/' || (rest.front() == '.' && (rest.size() == 1 || rest[1] == '/'));
  }
  if (!work) return false;
  std::string decoded;
  decoded.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && i + 2 < path.size() && HexDigit(path[i + 1]) >= 0 && HexDigit(path[i + 2]) >= 0) {
      const char c = static_cast<char>(HexDigit(path[i + 1]) * 16 + HexDigit(path[i + 2]));
      const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                              c == '-' || c == '.' || c == '_' || c == '~';
      if (unreserved) {
        decoded.push_back(c);
        i += 2;
        continue;
      }
      // Any other escape keeps its encoding, with upper-case hex digits (§6.2.2.1): "%2f" and
      // "%2F" are the same URI, so they route alike.
      decoded.push_back('%');
      decoded.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(path[i + 1]))));
      decoded.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(path[i + 2]))));
      i += 2;
      continue;
    }
    decoded.push_back(path[i]);
  }
  // remove_dot_segments over "/"-separated segments (the path starts with "/").
  std::vector<std::string_view> segments;
  std::string_view in(decoded);
  bool trailing_slash = false;
  std::size_t pos = 1;
  while (pos <= in.size()) {
    const std::size_t end = std::min(in.find('/', pos), in.size());
    const std::string_view seg = in.substr(pos, end - pos);
    const bool last = end == in.size();
    if (seg.empty()) {
      trailing_slash = last;  // "//" merged; "/a/" keeps its trailing slash
    } else if (seg == ".") {
      trailing_slash = last;
    } else if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
      trailing_slash = last;
    } else {
      segments.push_back(seg);
      trailing_slash = false;
    }
    pos = end + 1;
  }
  std::string result;
  result.reserve(decoded.size());
  for (const auto seg : segments) result.append("/").append(seg);
  if (result.empty() || trailing_slash) result.push_back('/');
  if (result == path) return false;
  *out = std::move(result);
  return true;
}

bool HasInvalidPercentEncoding(std::string_view path) {
  for (std::size_t i = path.find('%'); i != std::string_view::npos; i = path.find('%', i + 1)) {
    if (i + 2 >= path.size() || HexDigit(path[i + 1]) < 0 || HexDigit(path[i + 2]) < 0) return true;
  }
  return false;
}

bool ValidHost(std::string_view host) {
  std::string_view name = host;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos || close == 1) return false;  // "[]": no address
    for (const char c : host.substr(1, close - 1)) {
      const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
      if (!ok) return false;
    }
    const std::string_view rest = host.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    port = rest.empty() ? rest : rest.substr(1);
    name = {};
  } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
    name = host.substr(0, colon);
    port = host.substr(colon + 1);
    // ":8080" names a port of no host (RFC 9110 §4.2.1: an http URI with an empty host is
    // invalid); "" alone is allowed (an HTTP/1.0 client, or an authority-less target).
    if (name.empty()) return false;
  }
  for (const char c : port) {
    if (c < '0' || c > '9') return false;
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("-._~!$&'()*+,;=%").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool PathPrefixMatches(std::string_view prefix, std::string_view path) {
  if (prefix.empty()) return !path.empty() && path.front() == '/';  // "/": not the "*" of OPTIONS *
  if (path.size() < prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

bool PathMatcher::Matches(std::string_view path) const {
  switch (type) {
    case Type::kAny:
      return true;
    case Type::kPrefix:
      return PathPrefixMatches(value, path);
    case Type::kExact:
      return path == value;
    case Type::kRegex:
      return regex != nullptr && FullMatch(*regex, path);
  }
  return false;
}

namespace {

// Whether "*" + `suffix` covers `host`: at least one non-empty label before the suffix, and with
// `one_label` exactly one.
bool WildcardCovers(std::string_view suffix, std::string_view host, bool one_label) {
  if (host.size() <= suffix.size() || host.compare(host.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  const std::string_view labels = host.substr(0, host.size() - suffix.size());
  if (labels.back() == '.') return false;
  return !one_label || labels.find('.') == std::string_view::npos;
}

}  // namespace

bool HostMatches(const RouteMatch& m, std::string_view host) { return MatchedHostRank(m, host).has_value(); }

bool HostOwnership::Add(std::string_view host, std::string_view ns, bool wildcard_one_label) {
  if (host.empty() || ns.empty() || host == "*" || host == "*.") return false;
  bool fresh = true;
  if (host.size() > 2 && host[0] == '*' && host[1] == '.') {
    std::string suffix(host.substr(1));
    for (char& c : suffix) c = Lower(c);
    auto [it, added] = wildcards_.try_emplace(std::move(suffix), Wildcard{std::string(ns), wildcard_one_label});
    fresh = added || it->second.ns == ns;
    if (!added && it->second.ns == ns) it->second.one_label = it->second.one_label && wildcard_one_label;
  } else {
    auto [it, added] = exact_.try_emplace(NormalizeHost(host), std::string(ns));
    fresh = added || it->second == ns;
  }
  if (fresh) namespaces_.emplace(ns);
  return fresh;
}

std::string_view HostOwnership::OwnerOf(std::string_view host) const {
  if (auto it = exact_.find(host); it != exact_.end()) return it->second;
  if (wildcards_.empty()) return {};
  // The longest suffix first: the most specific wildcard. Its labels before the suffix must be
  // non-empty (WildcardCovers), and only one for a one-label wildcard.
  const std::size_t first_dot = host.find('.');
  for (std::size_t dot = first_dot; dot != std::string_view::npos; dot = host.find('.', dot + 1)) {
    if (dot == 0 || host[dot - 1] == '.') continue;
    auto it = wildcards_.find(host.substr(dot));
    if (it != wildcards_.end() && (!it->second.one_label || dot == first_dot)) return it->second.ns;
  }
  return {};
}

std::vector<HostOwnership::Entry> HostOwnership::Entries() const {
  std::vector<Entry> out;
  for (const auto& [host, ns] : exact_) out.push_back({host, ns, false});
  for (const auto& [suffix, w] : wildcards_) out.push_back({"*" + suffix, w.ns, w.one_label});
  return out;
}

bool HostOwnership::HasOwnerOtherThan(std::string_view ns) const {
  return namespaces_.size() > 1 || (namespaces_.size() == 1 && *namespaces_.begin() != ns);
}

std::optional<std::string_view> RequestHeaders::Cookie(std::string_view name) const {
  const auto header = Get("cookie");
  return header ? FindCookie(*header, name) : std::nullopt;
}

std::optional<std::string_view> FindCookie(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    const auto semi = header.find(';');
    std::string_view pair = Trim(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    if (Trim(pair.substr(0, eq)) == name) {
      std::string_view v = Trim(pair.substr(eq + 1));
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return v;
    }
  }
  return std::nullopt;
}

std::optional<std::string_view> FindQueryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
  }
  return std::nullopt;
}

namespace {

// Every field of `m` but the host matches `view`.
bool MatchesExceptHost(const RouteMatch& m, const RequestView& view) {
  if (!m.path.Matches(view.path)) return false;
  if (!m.methods.empty() && std::find(m.methods.begin(), m.methods.end(), view.method) == m.methods.end()) {
    return false;
  }
  for (const auto& [name, value] : m.query_params) {
    const auto v = FindQueryParam(view.query, name);
    if (!v || *v != value) return false;
  }
  if (!m.needs_headers()) return true;
  if (view.headers == nullptr) return false;
  for (const auto& h : m.headers) {
    // "host" is the authority the request is routed and forwarded with (an absolute-form
    // target's, which replaces the Host field), as Envoy's header match on :authority.
    const auto v = h.lower_name == "host" ? (view.host.empty() ? std::nullopt : std::optional<std::string_view>(view.host))
                                          : view.headers->Get(h.lower_name);
    if (!v) return false;
    switch (h.type) {
      case HeaderMatcher::Type::kPresent:
        break;
      case HeaderMatcher::Type::kExact:
        if (*v != h.value) return false;
        break;
      case HeaderMatcher::Type::kRegex:
        if (h.regex == nullptr || !FullMatch(*h.regex, *v)) return false;
        break;
    }
  }
  for (const auto& [name, value] : m.cookies) {
    const auto v = view.headers->Cookie(name);
    if (!v || *v != value) return false;
  }
  return true;
}

}  // namespace

bool RouteMatches(const RouteMatch& m, const RequestView& view, std::string_view host) {
  return HostMatches(m, host) && MatchesExceptHost(m, view);
}

void FinishRouteMatch(RouteMatch* m) {
  m->best_host = HostRank{};
  for (const auto& h : m->exact_hosts) m->best_host = std::min(m->best_host, HostRank{0, -static_cast<int64_t>(h.size())});
  for (const auto& s : m->wildcard_suffixes) {
    m->best_host = std::min(m->best_host, HostRank{1, -static_cast<int64_t>(s.size())});
  }
}

std::optional<HostRank> MatchedHostRank(const RouteMatch& m, std::string_view host) {
  if (m.any_host()) return HostRank{};
  for (const auto& h : m.exact_hosts) {
    if (h == host) return HostRank{0, -static_cast<int64_t>(h.size())};
  }
  std::optional<HostRank> best;
  for (const auto& suffix : m.wildcard_suffixes) {
    if (WildcardCovers(suffix, host, m.wildcard_one_label)) {
      const HostRank r{1, -static_cast<int64_t>(suffix.size())};
      if (!best || r < *best) best = r;
    }
  }
  return best;
}

bool SortedByBestHost(const std::vector<const Route*>& routes) {
  for (std::size_t i = 1; i < routes.size(); ++i) {
    if (routes[i]->match.best_host < routes[i - 1]->match.best_host) return false;
  }
  return true;
}

namespace {

// What ranks two routes that match with equally specific hosts (lower first): the controller's
// RoutePrecedence keys after the host (controller/translate/translate.cc), kept in step.
struct RestRank {
  bool not_exact;  // an Exact path first (Gateway API; nginx's "location ="), whatever its length
  int64_t neg_path_len;
  int path_kind;  // Exact, Prefix (or no path: Prefix "/"), RegularExpression, no path after_paths
  bool no_method;
  int64_t neg_headers;
  int64_t neg_query;
  int64_t neg_cookies;
  auto operator<=>(const RestRank&) const = default;
};

RestRank RankRest(const RouteMatch& m) {
  int kind = 1;
  switch (m.path.type) {
    case PathMatcher::Type::kExact: kind = 0; break;
    case PathMatcher::Type::kPrefix: break;
    case PathMatcher::Type::kAny: kind = m.after_paths ? 3 : 1; break;  // Prefix "/"; a host's default last
    case PathMatcher::Type::kRegex: kind = 2; break;
  }
  return {kind != 0, -static_cast<int64_t>(m.path.declared_len), kind, m.methods.empty(),
          -static_cast<int64_t>(m.headers.size()), -static_cast<int64_t>(m.query_params.size()),
          -static_cast<int64_t>(m.cookies.size())};
}

}  // namespace

bool IsForwardedHttpsFallback(const Route& r) {
  return r.redirect.enabled && r.redirect.unless_forwarded_https && r.backends.empty() && r.canary_backends.empty();
}

const Route* SelectRoute(const Listener& listener, const RequestView& view, bool skip_forwarded_https_fallbacks) {
  const std::string host = NormalizeHost(view.host);
  const Route* best = nullptr;
  HostRank best_host;
  RestRank best_rest{};
  std::optional<std::string_view> owner;  // of `host`, looked up once when a route needs it
  for (const Route* r : listener.routes) {
    if (skip_forwarded_https_fallbacks && IsForwardedHttpsFallback(*r)) continue;
    const RouteMatch& m = r->match;
    // In the controller's order (sorted by best_host), no later route can match with a host
    // more specific than its own best one.
    if (best != nullptr && listener.routes_sorted_by_host && best_host < m.best_host) break;
    const auto host_rank = MatchedHostRank(m, host);
    if (!host_rank || (best != nullptr && best_host < *host_rank)) continue;
    if (r->check_host_owner && listener.host_owners) {
      // Another namespace's host is not this route's, though its wildcard or any-host match
      // covers it (HostOwnership).
      if (!owner) owner = listener.host_owners->OwnerOf(host);
      if (!owner->empty() && *owner != r->ns) continue;
    }
    if (!MatchesExceptHost(m, view)) continue;  // the host matched above
    const RestRank rest = RankRest(m);
    if (best == nullptr || *host_rank < best_host || rest < best_rest) {  // ties: the earlier route
      best = r;
      best_host = *host_rank;
      best_rest = rest;
    }
  }
  return best;
}

}  // namespace doorman::dataplane
