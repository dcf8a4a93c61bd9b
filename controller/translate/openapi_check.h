// The OpenAPI v3 validation a Kubernetes API server applies to a custom resource with a
// structural schema, for the keywords the doorman CRDs use: type, properties, required, items,
// additionalProperties (a schema), enum, pattern, minLength/maxLength (in characters),
// minimum/maximum, minItems/maxItems, maxProperties. Not CEL (x-kubernetes-validations): the
// translator checks those rules itself. Unknown fields are not this check's business either (the
// API server prunes them; the translator refuses them).
//
// Used in --manifests mode, where no API server stands between the files and the controller:
// the LoadBalancer CRD's own schema (crds/) is applied, so a manifest the CRD would refuse (65
// listeners, a 2000-character path, 2,000,000 requests per second) is refused here too. Pure.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace doorman::controller {

struct SchemaViolation {
  std::string field;    // "spec.listeners[0].name" ("" = the value itself)
  std::string message;  // "may not be longer than 63 characters"
};

// Checks `value` against `schema` (an openAPIV3Schema node); `path` names `value` in messages.
// At most `max` violations are returned.
std::vector<SchemaViolation> CheckOpenApi(const nlohmann::json& schema, const nlohmann::json& value,
                                          const std::string& path, size_t max = 20);

// The openAPIV3Schema of the first served version of a CustomResourceDefinition (as JSON), or
// null when `crd` is not one.
nlohmann::json CrdSchema(const nlohmann::json& crd);

}  // namespace doorman::controller
