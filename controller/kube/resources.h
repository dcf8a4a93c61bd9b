// The Kubernetes resources the controller reads and writes, and the API paths for them. Pure.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace doorman::controller::kube {

struct Resource {
  std::string group;       // "" = core
  std::string version;     // "v1"
  std::string plural;      // "services" (also the metrics label)
  std::string kind;        // "Service" (the ObjectKey kind)
  bool namespaced = true;
  std::string field_selector;  // list/watch filter, e.g. "type=kubernetes.io/tls"
  bool crd = false;            // served by a CustomResourceDefinition (which can be deleted)
  // --watch-namespace: list and watch a namespaced resource in this namespace only ("" = all).
  std::string scope_namespace{};
  std::string label_selector{};  // list/watch filter, e.g. "doorman.dev/edge=internal" ("" = none)

  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  // "/api/v1" or "/apis/<group>/<version>".
  std::string group_path() const;
  // The collection across all namespaces: "/apis/discovery.k8s.io/v1/endpointslices".
  std::string collection_path() const;
  // One object ("" namespace for cluster-scoped), optionally a subresource ("status").
  std::string object_path(const std::string& ns, const std::string& name, const std::string& subresource = "") const;
  // The collection in one namespace (for POST).
  std::string namespaced_collection_path(const std::string& ns) const;
  // What is listed and watched: the collection, in scope_namespace when that is set.
  std::string watch_collection_path() const { return namespaced_collection_path(scope_namespace); }
};

// What the controller watches (API.md §1): Services, EndpointSlices, Ingresses, IngressClasses,
// kubernetes.io/tls Secrets, LoadBalancers.
const std::vector<Resource>& WatchedResources();
// The watched resource for `kind` (nullptr when not watched).
const Resource* ResourceForKind(const std::string& kind);

const Resource& LeaseResource();  // coordination.k8s.io/v1 leases
const Resource& EventResource();  // core/v1 events

// Kubernetes Time ("2024-05-01T12:00:00Z") or MicroTime ("2024-05-01T12:00:00.123456Z"), UTC.
std::string FormatTime(std::chrono::system_clock::time_point t, bool micro = false);

// A Kubernetes qualified name (a label key, Service spec.loadBalancerClass): an optional
// DNS-1123 subdomain prefix and "/", then <= 63 of [A-Za-z0-9-_.], alphanumeric at both ends.
bool IsQualifiedName(std::string_view s);

// IngressClass spec.controller as the API server validates it (apimachinery's
// IsDomainPrefixedPath): a DNS-1123 subdomain, "/", then a non-empty path of
// [A-Za-z0-9/-._~%!$&'()*+,;=:]; <= 250 characters in all.
bool IsDomainPrefixedPath(std::string_view s);

// An equality-based label selector as kubectl's -l takes it: comma-separated "key", "!key",
// "key=value", "key==value" or "key!=value", keys and values as Kubernetes validates label names
// ("prefix.example.com/name", <= 63 characters of [A-Za-z0-9-_.] starting and ending
// alphanumeric). Set-based forms ("key in (a,b)") are not taken. Empty when valid, else why not.
std::string LabelSelectorProblem(std::string_view selector);

// Percent-encodes a query parameter value (RFC 3986 unreserved characters stay).
std::string QueryEscape(std::string_view s);

}  // namespace doorman::controller::kube
