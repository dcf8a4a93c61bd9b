// A log line produced by a pure component and emitted by the caller (so tests can assert on
// exactly which lines a change produces, and pure code does not decide where logs go).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/log.h"

namespace doorman::controller {

struct Diagnostic {
  log::Level level = log::Level::kInfo;
  std::string component;
  std::string message;
  std::vector<std::pair<std::string, std::string>> fields;

  // Value of field `key`, or "" when absent (for tests).
  std::string Field(const std::string& key) const {
    for (const auto& [k, v] : fields) {
      if (k == key) return v;
    }
    return "";
  }
};

// Writes one line through common/log, every field escaped as a field (they used to be folded,
// unescaped, into the message beyond the fifth).
inline void Emit(const Diagnostic& d) {
  if (!log::Enabled(d.level)) return;
  std::vector<log::Field> fields;
  fields.reserve(d.fields.size());
  for (const auto& [k, v] : d.fields) fields.emplace_back(k, v);
  log::Write(d.level, d.component, d.message, fields.data(), fields.size());
}

inline void EmitAll(const std::vector<Diagnostic>& ds) {
  for (const auto& d : ds) Emit(d);
}

}  // namespace doorman::controller
