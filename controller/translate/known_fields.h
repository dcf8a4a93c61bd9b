// --manifests mode: the fields of the built-in kinds doorman routes (Service, Ingress) and of
// every object's metadata, as `kubectl apply`'s strict field validation (its default since
// Kubernetes 1.27) knows them. In a cluster the API server refuses or prunes an unknown field
// before doorman sees the object; from a file nobody does, and a misspelt field
// ("loadBalancerSourceRange", "externalTraficPolicy", "tsl") would otherwise be silently
// ignored: an allow-list typo would serve the port to every client. Pure.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "controller/translate/json_fields.h"

namespace doorman::controller {

// Reports each field of `o` (a whole object of `kind`: "Service", "Ingress", or any other kind
// for its metadata only) that the kind does not have, as
// InvalidSpec "unknown field", suggesting the nearest known name. Values are not checked here.
void CheckKnownFields(const std::string& kind, const nlohmann::json& o, FieldReader& r);

}  // namespace doorman::controller
