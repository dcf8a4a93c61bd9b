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

// Writes one line through common/log. log::Write takes an initializer_list, so the field count
// is dispatched here; more than six fields are folded into the message.
inline void Emit(const Diagnostic& d) {
  const auto& f = d.fields;
  auto F = [&f](size_t i) { return log::Field{f[i].first, f[i].second}; };
  const auto l = d.level;
  if (!log::Enabled(l)) return;
  switch (f.size()) {
    case 0: log::Write(l, d.component, d.message); return;
    case 1: log::Write(l, d.component, d.message, {F(0)}); return;
    case 2: log::Write(l, d.component, d.message, {F(0), F(1)}); return;
    case 3: log::Write(l, d.component, d.message, {F(0), F(1), F(2)}); return;
    case 4: log::Write(l, d.component, d.message, {F(0), F(1), F(2), F(3)}); return;
    case 5: log::Write(l, d.component, d.message, {F(0), F(1), F(2), F(3), F(4)}); return;
    default: {
      std::string msg = d.message;
      for (size_t i = 5; i < f.size(); ++i) msg += " " + f[i].first + "=" + f[i].second;
      log::Write(l, d.component, msg, {F(0), F(1), F(2), F(3), F(4)});
      return;
    }
  }
}

inline void EmitAll(const std::vector<Diagnostic>& ds) {
  for (const auto& d : ds) Emit(d);
}

}  // namespace doorman::controller
