// The controller's view of input objects, whatever their source (manifest files today, the
// Kubernetes API later): each object is its JSON form plus where it came from. Pure types only.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

namespace doorman::controller {

// Kinds the controller knows. Others are reported and dropped by the sources.
inline constexpr const char* kKindLoadBalancer = "LoadBalancer";
inline constexpr const char* kKindService = "Service";
inline constexpr const char* kKindEndpointSlice = "EndpointSlice";
inline constexpr const char* kKindIngress = "Ingress";
inline constexpr const char* kKindIngressClass = "IngressClass";
inline constexpr const char* kKindSecret = "Secret";
inline constexpr const char* kDefaultNamespace = "default";

// Identifies an object: kind + namespace + name. Cluster-scoped kinds have an empty namespace.
struct ObjectKey {
  std::string kind;
  std::string ns;
  std::string name;

  auto operator<=>(const ObjectKey&) const = default;
  bool operator==(const ObjectKey&) const = default;
  // "LoadBalancer default/shop" (cluster-scoped: "IngressClass doorman").
  std::string ToString() const { return kind + " " + (ns.empty() ? name : ns + "/" + name); }
};

// Where an object was read from. `document` is the 0-based index of the YAML document in the
// file, `line` the 1-based line where that document starts (0 when unknown).
struct SourceLocation {
  std::string file;
  int document = 0;
  int line = 0;

  bool operator==(const SourceLocation&) const = default;
};

struct StoredObject {
  nlohmann::json object;
  SourceLocation source;
  // Non-empty when the source currently fails to parse and this is the last version that did
  // (the "last good" rule for files): the translator keeps serving it but reports why.
  std::string stale_reason;

  bool operator==(const StoredObject&) const = default;
};

// The whole input of the translator, deterministically ordered by key.
using ObjectStore = std::map<ObjectKey, StoredObject>;

// The lowercase plural resource name used in metrics labels ("loadbalancers", "endpointslices").
inline std::string ResourceName(const std::string& kind) {
  std::string out;
  for (char c : kind) out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
  if (!out.empty() && out.back() == 's') return out + "es";
  return out + "s";
}

}  // namespace doorman::controller
