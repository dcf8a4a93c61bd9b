// Process-wide structured logging: one line per event on stderr, text or JSON.
// Never pass secrets (private keys, tokens) as fields: there is no redaction layer behind this.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace doorman::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class Format { kText, kJson };

// Configure once at start-up (before threads log). Returns false for an unknown format/level name.
bool Configure(std::string_view format, std::string_view level);
void SetFormat(Format f);
void SetLevel(Level l);
bool Enabled(Level l);

using Field = std::pair<std::string_view, std::string>;

// Emits: `2026-11-26T13:00:00.123Z INFO component: message key=value ...` (text) or a JSON
// object with ts, level, component, msg and the fields. Thread-safe; one write(2) per line.
void Write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields = {});

inline void Debug(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, c, m, f);
}
inline void Info(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kInfo, c, m, f);
}
inline void Warn(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kWarn, c, m, f);
}
inline void Error(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kError, c, m, f);
}

}  // namespace doorman::log
