#include "controller/source/known_fields.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace doorman::controller {
namespace {

using json = nlohmann::json;

// A shape: an object whose keys are the known fields, each null (any value: a scalar, a list of
// scalars, or a free map such as labels or selector), an object (a nested shape) or a one-element
// array (a list of that shape). Kubernetes core/v1, discovery/v1 and networking/v1 as of 1.31.
constexpr const char* kObjectMeta = R"({
  "name": null, "generateName": null, "namespace": null, "selfLink": null, "uid": null,
  "resourceVersion": null, "generation": null, "creationTimestamp": null, "deletionTimestamp": null,
  "deletionGracePeriodSeconds": null, "labels": null, "annotations": null, "ownerReferences": null,
  "finalizers": null, "managedFields": null})";

constexpr const char* kServiceSpec = R"({
  "ports": [{"name": null, "protocol": null, "appProtocol": null, "port": null, "targetPort": null,
             "nodePort": null}],
  "selector": null, "clusterIP": null, "clusterIPs": null, "type": null, "externalIPs": null,
  "sessionAffinity": null, "loadBalancerIP": null, "loadBalancerSourceRanges": null,
  "externalName": null, "externalTrafficPolicy": null, "healthCheckNodePort": null,
  "publishNotReadyAddresses": null, "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": null}},
  "ipFamilies": null, "ipFamilyPolicy": null, "allocateLoadBalancerNodePorts": null,
  "loadBalancerClass": null, "internalTrafficPolicy": null, "trafficDistribution": null})";

constexpr const char* kIngressBackend = R"({
  "service": {"name": null, "port": {"name": null, "number": null}},
  "resource": {"apiGroup": null, "kind": null, "name": null}})";

constexpr const char* kEndpointSliceBody = R"({
  "addressType": null,
  "endpoints": [{"addresses": null, "conditions": {"ready": null, "serving": null, "terminating": null},
                 "hostname": null, "nodeName": null, "zone": null, "deprecatedTopology": null,
                 "targetRef": {"kind": null, "namespace": null, "name": null, "uid": null, "apiVersion": null,
                               "resourceVersion": null, "fieldPath": null},
                 "hints": {"forZones": [{"name": null}], "forNodes": [{"name": null}]}}],
  "ports": [{"name": null, "protocol": null, "port": null, "appProtocol": null}]})";

constexpr const char* kSecretBody = R"({"data": null, "stringData": null, "type": null, "immutable": null})";

constexpr const char* kIngressClassSpec = R"({
  "controller": null,
  "parameters": {"apiGroup": null, "kind": null, "name": null, "namespace": null, "scope": null}})";

json Shape(const char* text) { return json::parse(text); }

std::string Join(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }
std::string Index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20) {
      out += "?";
      continue;
    }
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

const json& MetaShape() {
  static const json meta = Shape(kObjectMeta);
  return meta;
}

// A whole object: apiVersion, kind, metadata, and `body`'s top-level fields.
json Object(json body) {
  body["apiVersion"] = nullptr;
  body["kind"] = nullptr;
  body["metadata"] = MetaShape();
  return body;
}

// The shape of a whole object of `kind`, or nullptr for a kind whose metadata only is checked.
const json* WholeShape(const std::string& kind) {
  static const json endpoint_slice = Object(Shape(kEndpointSliceBody));
  static const json secret = Object(Shape(kSecretBody));
  static const json ingress_class = Object(json{{"spec", Shape(kIngressClassSpec)}});
  static const json service = [] {
    json s = {{"apiVersion", nullptr}, {"kind", nullptr}, {"metadata", MetaShape()}, {"status", nullptr}};
    s["spec"] = Shape(kServiceSpec);
    return s;
  }();
  static const json ingress = [] {
    const json backend = Shape(kIngressBackend);
    json path = {{"path", nullptr}, {"pathType", nullptr}, {"backend", backend}};
    json rule = {{"host", nullptr}, {"http", {{"paths", json::array({path})}}}};
    json spec = {{"ingressClassName", nullptr},
                 {"defaultBackend", backend},
                 {"tls", json::array({{{"hosts", nullptr}, {"secretName", nullptr}}})},
                 {"rules", json::array({rule})}};
    return json{{"apiVersion", nullptr}, {"kind", nullptr}, {"metadata", MetaShape()}, {"spec", spec},
                {"status", nullptr}};
  }();
  if (kind == "Service") return &service;
  if (kind == "Ingress") return &ingress;
  if (kind == "EndpointSlice") return &endpoint_slice;
  if (kind == "Secret") return &secret;
  if (kind == "IngressClass") return &ingress_class;
  return nullptr;
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) == std::tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (same ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string UnknownMessage(const std::string& key, const json& shape) {
  if ((key == "serviceName" || key == "servicePort") && shape.contains("service")) {
    return "unknown field (that is networking.k8s.io/v1beta1, removed in Kubernetes 1.22: v1 writes "
           "backend: {service: {name: ..., port: {number: ...}}})";
  }
  std::vector<std::string> known;
  for (const auto& [k, _] : shape.items()) known.push_back(k);
  return UnknownFieldMessage(key, known);
}

void Check(const json& value, const json& shape, const std::string& path, size_t max,
           std::vector<UnknownField>* out) {
  if (shape.is_array()) {
    if (!value.is_array()) return;  // the value's type is the translator's business
    for (size_t i = 0; i < value.size(); ++i) Check(value[i], shape[0], Index(path, i), max, out);
    return;
  }
  if (!shape.is_object() || !value.is_object()) return;
  for (const auto& [k, v] : value.items()) {
    if (out->size() >= max) return;
    auto it = shape.find(k);
    if (it == shape.end()) {
      out->push_back({Join(path, k), UnknownMessage(k, shape) +
                                         ", which kubectl apply would refuse too (no API server validates a "
                                         "--manifests file)"});
      continue;
    }
    if (!v.is_null()) Check(v, *it, Join(path, k), max, out);
  }
}

}  // namespace

std::string NearestName(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = std::max<size_t>(2, key.size() / 3) + 1;
  for (const auto& k : known) {
    // A truncated name ("secret" for "secretName") counts as one edit away.
    const bool truncated = key.size() >= 4 && k.size() > key.size() && k.compare(0, key.size(), key) == 0;
    const size_t d = truncated ? 1 : EditDistance(key, k);
    if (d < best_d) best_d = d, best = k;
  }
  return best;
}

std::string UnknownFieldMessage(const std::string& key, const std::vector<std::string>& known) {
  if (std::string best = NearestName(key, known); !best.empty()) return "unknown field (did you mean " + Quote(best) + "?)";
  std::string all;
  for (const auto& k : known) all += (all.empty() ? "" : ", ") + k;
  return "unknown field (known fields: " + all + ")";
}

std::vector<UnknownField> UnknownFields(const std::string& kind, const json& o, size_t max) {
  std::vector<UnknownField> out;
  if (const json* shape = WholeShape(kind)) {
    Check(o, *shape, "", max, &out);
  } else if (o.is_object() && o.contains("metadata")) {
    Check(o["metadata"], MetaShape(), "metadata", max, &out);
  }
  return out;
}

}  // namespace doorman::controller
