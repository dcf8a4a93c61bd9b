// --manifests mode: the fields of the built-in kinds doorman reads (Service, Ingress,
// EndpointSlice, Secret, IngressClass) and of every object's metadata, as `kubectl apply`'s
// strict field validation (its default since Kubernetes 1.27) knows them. In a cluster the API
// server refuses or prunes an unknown field before doorman sees the object; from a file nobody
// does, and a misspelt field ("loadBalancerSourceRange", "tsl", an endpoint's "conditions.redy")
// would otherwise be silently ignored: an allow-list typo would serve the port to every client.
// For the kinds without a status (EndpointSlice, Secret, IngressClass) value types are checked
// too. Pure (nlohmann-json only).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace doorman::controller {

struct FieldProblem {
  std::string path;     // "spec.loadBalancerSourceRange"
  std::string message;  // "unknown field (did you mean \"loadBalancerSourceRanges\"?), which kubectl ..."
};

// Each field of `o` (a whole object of `kind`; for a kind not listed above, its metadata only)
// that the kind does not have, with the nearest known name; at most `max` problems. The values
// of EndpointSlice, Secret and IngressClass (kinds with no status, which no translator reads
// strictly) must also have their field's type ("must be a boolean, not a string"); the other
// kinds' values are the translator's to check.
std::vector<FieldProblem> FieldProblems(const std::string& kind, const nlohmann::json& o, size_t max = 20);

// `s` in double quotes for a message: '"' and '\\' escaped, control characters as '?'.
std::string QuoteForMessage(const std::string& s);

// "a string", "an integer", "a list", "an object", "null"… for messages.
std::string JsonTypeName(const nlohmann::json& v);

// The name in `known` nearest to `key` (case-insensitive edit distance within about a third of
// its length, or `key` cut short of one), or "" when none is that close.
std::string NearestName(const std::string& key, const std::vector<std::string>& known);

// "unknown field (did you mean \"ports\"?)", or with no near name "unknown field (known fields: a, b)".
std::string UnknownFieldMessage(const std::string& key, const std::vector<std::string>& known);

}  // namespace doorman::controller
