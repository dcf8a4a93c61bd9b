#include "controller/kube/resources.h"

#include <cstdio>
#include <ctime>

#include "common/address.h"
#include "controller/model/object.h"

namespace doorman::controller::kube {

namespace {

// A label value, or a key's name part: <= 63 of [A-Za-z0-9-_.], alphanumeric at both ends.
bool IsLabelName(std::string_view s) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (s.empty() || s.size() > 63 || !alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s) {
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// The selector lexer's whitespace.
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

bool IsQualifiedName(std::string_view s) {
  const auto slash = s.find('/');
  if (slash == std::string_view::npos) return IsLabelName(s);
  return IsObjectName(s.substr(0, slash)) && IsLabelName(s.substr(slash + 1));
}

bool IsDomainPrefixedPath(std::string_view s) {
  const auto slash = s.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == s.size() || s.size() > 250) return false;
  if (!IsObjectName(s.substr(0, slash))) return false;
  // apimachinery's httpPathFmt: [A-Za-z0-9/\-._~%!$&'()*+,;=:]+
  static constexpr std::string_view kPathPunct = "/-._~%!$&'()*+,;=:";
  for (char c : s.substr(slash + 1)) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && kPathPunct.find(c) == std::string_view::npos) return false;
  }
  return true;
}

std::string LabelSelectorProblem(std::string_view selector) {
  if (Trim(selector).empty()) return "it is empty";
  size_t start = 0;
  while (true) {
    const size_t comma = selector.find(',', start);
    const std::string_view req =
        Trim(selector.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    const std::string quoted = "\"" + std::string(req) + "\"";
    if (req.empty()) return "an empty requirement";
    if (req.find('(') != std::string_view::npos) return quoted + ": set-based requirements (in, notin) are not taken";
    std::string_view key = req, value;
    bool has_value = false;
    if (const size_t op = req.find_first_of("!="); op != std::string_view::npos && !(op == 0 && req[0] == '!')) {
      size_t value_at = op + 1;
      if (req[op] == '!' || (req[op] == '=' && op + 1 < req.size() && req[op + 1] == '=')) {
        if (req[op] == '!' && (op + 1 >= req.size() || req[op + 1] != '=')) return quoted + ": want key!=value";
        value_at = op + 2;
      }
      key = Trim(req.substr(0, op));
      value = Trim(req.substr(value_at));
      has_value = true;
    } else if (req[0] == '!') {
      key = Trim(req.substr(1));
    }
    if (!IsQualifiedName(key)) return quoted + ": \"" + std::string(key) + "\" is not a label key";
    // Keywords of the selector grammar: the API server refuses them as keys.
    if (key == "in" || key == "notin") return quoted + ": \"" + std::string(key) + "\" is a keyword, not a key";
    if (has_value && !value.empty() && !IsLabelName(value)) {
      return quoted + ": \"" + std::string(value) + "\" is not a label value";
    }
    if (comma == std::string_view::npos) return "";
    start = comma + 1;
  }
}

std::string Resource::group_path() const {
  return group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
}

std::string Resource::collection_path() const { return group_path() + "/" + plural; }

std::string Resource::namespaced_collection_path(const std::string& ns) const {
  if (!namespaced || ns.empty()) return collection_path();
  return group_path() + "/namespaces/" + ns + "/" + plural;
}

std::string Resource::object_path(const std::string& ns, const std::string& name,
                                  const std::string& subresource) const {
  std::string p = namespaced_collection_path(ns) + "/" + name;
  if (!subresource.empty()) p += "/" + subresource;
  return p;
}

const std::vector<Resource>& WatchedResources() {
  static const std::vector<Resource> kResources = {
      {"", "v1", "services", kKindService, true, ""},
      {"discovery.k8s.io", "v1", "endpointslices", kKindEndpointSlice, true, ""},
      {"networking.k8s.io", "v1", "ingresses", kKindIngress, true, ""},
      {"networking.k8s.io", "v1", "ingressclasses", kKindIngressClass, false, ""},
      // Only TLS Secrets: the controller never needs (nor should hold) any other kind.
      {"", "v1", "secrets", kKindSecret, true, "type=kubernetes.io/tls"},
      {"doorman.dev", "v1alpha1", "loadbalancers", kKindLoadBalancer, true, "", true},
  };
  return kResources;
}

const Resource* ResourceForKind(const std::string& kind) {
  for (const auto& r : WatchedResources()) {
    if (r.kind == kind) return &r;
  }
  return nullptr;
}

const Resource& LeaseResource() {
  static const Resource kLease{"coordination.k8s.io", "v1", "leases", "Lease", true, ""};
  return kLease;
}

const Resource& EventResource() {
  static const Resource kEvent{"", "v1", "events", "Event", true, ""};
  return kEvent;
}

std::string FormatTime(std::chrono::system_clock::time_point t, bool micro) {
  const auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  const std::time_t tt = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[48];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = buf;
  if (micro) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t - secs).count();
    char frac[24];
    std::snprintf(frac, sizeof(frac), ".%06lld", static_cast<long long>(us));
    out += frac;
  }
  return out + "Z";
}

std::string QueryEscape(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace doorman::controller::kube
