#include "dataplane/l7/router.h"

#include <re2/re2.h>

#include <algorithm>

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

bool PathPrefixMatches(std::string_view prefix, std::string_view path) {
  if (prefix.empty()) return true;  // "/"
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

bool HostMatches(const RouteMatch& m, std::string_view host) {
  if (m.any_host()) return true;
  for (const auto& h : m.exact_hosts) {
    if (h == host) return true;
  }
  for (const auto& suffix : m.wildcard_suffixes) {
    // At least one non-empty label before the suffix.
    if (host.size() > suffix.size() && host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        host[host.size() - suffix.size() - 1] != '.') {
      return true;
    }
  }
  return false;
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

bool RouteMatches(const RouteMatch& m, const RequestView& view, std::string_view host) {
  if (!HostMatches(m, host)) return false;
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
    const auto v = view.headers->Get(h.lower_name);
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
  if (!m.cookies.empty()) {
    const auto cookie_header = view.headers->Get("cookie");
    if (!cookie_header) return false;
    for (const auto& [name, value] : m.cookies) {
      const auto v = FindCookie(*cookie_header, name);
      if (!v || *v != value) return false;
    }
  }
  return true;
}

const Route* SelectRoute(const Listener& listener, const RequestView& view) {
  const std::string host = NormalizeHost(view.host);
  for (const Route* r : listener.routes) {
    if (RouteMatches(r->match, view, host)) return r;
  }
  return nullptr;
}

}  // namespace doorman::dataplane
