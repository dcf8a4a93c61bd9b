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

// These kinds carry no status, so their values are checked here too (a shape's string names the
// type a value must have; "[string]" a list of strings, "{string}" a map of strings): a
// `ready: "false"` would otherwise count as absent, which means ready.
constexpr const char* kEndpointSliceBody = R"({
  "addressType": "string",
  "endpoints": [{"addresses": "[string]",
                 "conditions": {"ready": "boolean", "serving": "boolean", "terminating": "boolean"},
                 "hostname": "string", "nodeName": "string", "zone": "string", "deprecatedTopology": "{string}",
                 "targetRef": {"kind": "string", "namespace": "string", "name": "string", "uid": "string",
                               "apiVersion": "string", "resourceVersion": "string", "fieldPath": "string"},
                 "hints": {"forZones": [{"name": "string"}], "forNodes": [{"name": "string"}]}}],
  "ports": [{"name": "string", "protocol": "string", "port": "integer", "appProtocol": "string"}]})";

constexpr const char* kSecretBody = R"({"data": "{string}", "stringData": "{string}", "type": "string",
  "immutable": "boolean"})";

constexpr const char* kIngressClassSpec = R"({
  "controller": "string",
  "parameters": {"apiGroup": "string", "kind": "string", "name": "string", "namespace": "string",
                 "scope": "string"}})";

json Shape(const char* text) { return json::parse(text); }

std::string Join(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }
std::string Index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

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
  static const json service = Object(json{{"spec", Shape(kServiceSpec)}, {"status", nullptr}});
  static const json ingress = [] {
    const json backend = Shape(kIngressBackend);
    json path = {{"path", nullptr}, {"pathType", nullptr}, {"backend", backend}};
    json rule = {{"host", nullptr}, {"http", {{"paths", json::array({path})}}}};
    json spec = {{"ingressClassName", nullptr},
                 {"defaultBackend", backend},
                 {"tls", json::array({{{"hosts", nullptr}, {"secretName", nullptr}}})},
                 {"rules", json::array({rule})}};
    return Object(json{{"spec", spec}, {"status", nullptr}});
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

// "" when `v` has the type `type` names; else the problem.
std::string TypeProblem(const json& v, const std::string& type) {
  bool ok = false;
  if (type == "string") ok = v.is_string();
  else if (type == "boolean") ok = v.is_boolean();
  else if (type == "integer") ok = v.is_number_integer() || v.is_number_unsigned();
  else if (type == "[string]") ok = v.is_array() && std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_string(); });
  else if (type == "{string}") ok = v.is_object() && std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_string(); });
  if (ok) return "";
  std::string want = type == "[string]" ? "a list of strings" : type == "{string}" ? "a map of strings" : type == "integer" ? "an integer" : "a " + type;
  std::string hint;
  if (type == "boolean" && v.is_string()) hint = " (write true or false, unquoted: YAML's yes and no are strings)";
  if (type == "integer" && v.is_string()) hint = " (write it unquoted)";
  if (type == "string" && !v.is_string() && !v.is_object() && !v.is_array()) hint = " (quote it)";
  const std::string got = (type == "[string]" && v.is_array()) || (type == "{string}" && v.is_object())
                              ? JsonTypeName(v) + " with a value that is not a string"
                              : JsonTypeName(v);
  return "must be " + want + ", not " + got + hint + ", which kubectl apply would refuse too";
}

// `typed`: the kind's values are checked here (not by a translator), lists and objects included.
void Check(const json& value, const json& shape, const std::string& path, bool typed, size_t max,
           std::vector<FieldProblem>* out) {
  if (shape.is_string()) {
    if (std::string problem = TypeProblem(value, shape.get<std::string>()); !problem.empty()) {
      out->push_back({path, std::move(problem)});
    }
    return;
  }
  if (shape.is_array()) {
    if (!value.is_array()) {
      if (typed) out->push_back({path, "must be a list, not " + JsonTypeName(value) + ", which kubectl apply would refuse too"});
      return;  // otherwise the value's type is the translator's business
    }
    for (size_t i = 0; i < value.size() && out->size() < max; ++i) Check(value[i], shape[0], Index(path, i), typed, max, out);
    return;
  }
  if (!shape.is_object()) return;
  if (!value.is_object()) {
    if (typed) out->push_back({path, "must be an object, not " + JsonTypeName(value) + ", which kubectl apply would refuse too"});
    return;
  }
  for (const auto& [k, v] : value.items()) {
    if (out->size() >= max) return;
    auto it = shape.find(k);
    if (it == shape.end()) {
      out->push_back({Join(path, k), UnknownMessage(k, shape) +
                                         ", which kubectl apply would refuse too (no API server validates a "
                                         "--manifests file)"});
      continue;
    }
    if (!v.is_null()) Check(v, *it, Join(path, k), typed, max, out);
  }
}

}  // namespace

std::string QuoteForMessage(const std::string& s) {
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

std::string JsonTypeName(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  return "an object";
}

std::string NearestName(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  // No field name is this long: a huge key costs no quadratic edit distance per known name.
  if (key.size() > 64) return best;
  size_t best_d = std::max<size_t>(2, key.size() / 3) + 1;
  for (const auto& k : known) {
    // A truncated name ("secret" for "secretName") counts as one edit away.
    const bool truncated = key.size() >= 4 && k.size() > key.size() && k.compare(0, key.size(), key) == 0;
    // Otherwise the distance is at least the difference in length.
    const size_t diff = k.size() > key.size() ? k.size() - key.size() : key.size() - k.size();
    if (!truncated && diff >= best_d) continue;
    const size_t d = truncated ? 1 : EditDistance(key, k);
    if (d < best_d) best_d = d, best = k;
  }
  return best;
}

std::string UnknownFieldMessage(const std::string& key, const std::vector<std::string>& known) {
  if (std::string best = NearestName(key, known); !best.empty()) return "unknown field (did you mean " + QuoteForMessage(best) + "?)";
  std::string all;
  for (const auto& k : known) all += (all.empty() ? "" : ", ") + k;
  return "unknown field (known fields: " + all + ")";
}

std::vector<FieldProblem> FieldProblems(const std::string& kind, const json& o, size_t max) {
  std::vector<FieldProblem> out;
  if (const json* shape = WholeShape(kind)) {
    const bool typed = kind == "EndpointSlice" || kind == "Secret" || kind == "IngressClass";
    Check(o, *shape, "", typed, max, &out);
  } else if (o.is_object() && o.contains("metadata")) {
    Check(o["metadata"], MetaShape(), "metadata", false, max, &out);
  }
  return out;
}

}  // namespace doorman::controller
