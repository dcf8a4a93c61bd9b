#include "dataplane/l7/filters.h"

#include "dataplane/l7/router.h"

#include <cctype>

#include <arpa/inet.h>

#include <cstring>

namespace doorman::dataplane {
namespace {

std::string_view HostWithoutPort(std::string_view host, std::string_view* port) {
  *port = {};
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return host;
    if (close + 1 < host.size() && host[close + 1] == ':') *port = host.substr(close + 2);
    return host.substr(0, close + 1);
  }
  const auto colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(':') == colon) {
    *port = host.substr(colon + 1);
    return host.substr(0, colon);
  }
  return host;
}

}  // namespace

std::string RedirectLocation(const RedirectFilter& r, std::string_view request_scheme, std::string_view host_header,
                             uint16_t listener_port, std::string_view path, std::string_view query) {
  std::string_view req_port;
  const std::string_view req_host = HostWithoutPort(host_header, &req_port);
  const std::string_view scheme = r.scheme.empty() ? request_scheme : std::string_view(r.scheme);
  std::string out(scheme);
  out += "://";
  if (r.host.empty()) {
    out += req_host;
  } else if (r.host.find(':') != std::string::npos && r.host.front() != '[') {
    out += "[" + r.host + "]";  // an IPv6 literal is bracketed in a URL (RFC 3986 IP-literal)
  } else {
    out += r.host;
  }
  // Gateway API HTTPRequestRedirectFilter.port: given; else the scheme's well-known port when a
  // scheme is given; else the listener's port. The well-known port of the scheme is not written.
  const uint32_t port = r.port != 0 ? r.port : r.scheme.empty() ? listener_port : 0;
  const bool default_port = (scheme == "http" && port == 80) || (scheme == "https" && port == 443);
  if (port != 0 && !default_port) out += ":" + std::to_string(port);
  out += r.path.empty() ? path : std::string_view(r.path);
  if (!query.empty()) {
    out += "?";
    out += query;
  }
  return out;
}

bool ForwardedProtoIsHttps(std::string_view value) {
  value = value.substr(0, value.find(','));
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.size() != 5) return false;
  for (std::size_t i = 0; i < 5; ++i) {
    if (std::tolower(static_cast<unsigned char>(value[i])) != "https"[i]) return false;
  }
  return true;
}

namespace {
// `replacement` followed by `rest` (what follows the matched part), with one "/" between them.
std::string JoinRewrite(std::string_view replacement, std::string_view rest) {
  std::string out(replacement);
  if (!out.empty() && out.back() == '/' && !rest.empty() && rest.front() == '/') rest.remove_prefix(1);
  if (!out.empty() && out.back() != '/' && !rest.empty() && rest.front() != '/') out += '/';
  out += rest;
  if (out.empty() || out.front() != '/') out.insert(out.begin(), '/');
  return out;
}
}  // namespace

std::string RewritePathPrefix(std::string_view path, std::string_view matched_prefix, std::string_view replacement) {
  return JoinRewrite(replacement, path.substr(std::min(matched_prefix.size(), path.size())));
}

std::string RewritePathPrefixKeepingParams(std::string_view raw_path, std::string_view routed_path,
                                           std::string_view matched_prefix, std::string_view replacement) {
  if (raw_path == routed_path) return RewritePathPrefix(routed_path, matched_prefix, replacement);
  // The matched prefix, segment-wise: "/api/" and "/api" cover the same segments, "/" none.
  std::string_view m = matched_prefix;
  while (!m.empty() && m.back() == '/') m.remove_suffix(1);
  // Walk the raw path's segments, each without its ";" parameters, until they spell `m`.
  std::string seen;
  std::size_t pos = 0;
  while (seen.size() < m.size() && pos < raw_path.size() && raw_path[pos] == '/') {
    const std::size_t next = std::min(raw_path.find('/', pos + 1), raw_path.size());
    const std::string_view seg = raw_path.substr(pos, next - pos);
    seen.append(seg.substr(0, seg.find(';')));
    pos = next;
  }
  // A path whose segments did not line up (a parameter-only segment the routing path folded
  // away): rewritten as routed, without its parameters.
  if (seen != m) return RewritePathPrefix(routed_path, matched_prefix, replacement);
  // The parameters of the matched segments go with them; those after the prefix are kept.
  return JoinRewrite(replacement, raw_path.substr(pos));
}

uint64_t RequestIdGenerator::Mix() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string RequestIdGenerator::Next() {
  std::string out;
  NextInto(&out);
  return out;
}

void RequestIdGenerator::NextInto(std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->resize(32);
  char* p = out->data();
  for (int half = 0; half < 2; ++half) {
    uint64_t v = Mix();
    for (int i = 0; i < 16; ++i) {
      p[half * 16 + i] = kHex[v & 0xf];
      v >>= 4;
    }
  }
}

std::size_t SelectCertificate(const std::vector<std::vector<std::string>>& names, std::string_view sni,
                              const HostOwnership* owners, const std::vector<std::string>* namespaces) {
  if (sni.empty()) return 0;
  std::string host(sni);
  for (char& c : host) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (!host.empty() && host.back() == '.') host.pop_back();
  const std::string_view owner =
      owners != nullptr && namespaces != nullptr && namespaces->size() == names.size() ? owners->OwnerOf(host) : "";
  auto candidate = [&](std::size_t i) { return owner.empty() || (*namespaces)[i] == owner; };
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!candidate(i)) continue;
    for (const auto& n : names[i]) {
      if (n == host) return i;
    }
  }
  const auto dot = host.find('.');
  if (dot == std::string::npos || dot == 0) return 0;
  const std::string_view parent = std::string_view(host).substr(dot);  // ".example.com"
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!candidate(i)) continue;
    for (const auto& n : names[i]) {
      if (n.size() > 2 && n[0] == '*' && n[1] == '.' && std::string_view(n).substr(1) == parent) return i;
    }
  }
  return 0;
}

bool ValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

}  // namespace doorman::dataplane
