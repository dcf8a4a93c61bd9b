// --manifests mode (TranslateOptions.check_known_fields): a translated object's unknown fields
// (controller/source/known_fields.h) as InvalidSpec problems of that object.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "controller/source/known_fields.h"
#include "controller/translate/json_fields.h"

namespace doorman::controller {

inline void CheckKnownFields(const std::string& kind, const nlohmann::json& o, FieldReader& r) {
  for (auto& u : FieldProblems(kind, o)) r.Invalid(u.path, std::move(u.message));
}

}  // namespace doorman::controller
