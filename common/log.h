// Process-wide structured logging: one line per event on stderr, text or JSON.
// Never pass secrets (private keys, tokens) as fields: there is no redaction layer behind this.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
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
// object with ts, level, component, msg and the fields. Thread-safe; whole lines. Synchronous (one
// write(2) per line) until StartAsync.
void Write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields = {});
// The same with `count` fields from `fields` (a list built at run time).
void Write(Level level, std::string_view component, std::string_view message, const Field* fields,
           std::size_t count);

// From here on lines go to a queue of at most `max_queued_bytes` that one writer thread empties
// into `fd`, so a thread that logs never waits for a stalled stderr reader (a container
// runtime's log pipe): lines beyond the bound are dropped, counted, and reported in a WARN line
// once the output takes lines again. Call once, before other threads log. What is queued is
// written at exit (at most 1 s) or by StopAsync.
void StartAsync(std::size_t max_queued_bytes = std::size_t{1} << 20, int fd = 2);
// Writes what is queued, waiting at most `max` for a stalled output, and returns to synchronous
// writes (before abort(), so that the last lines are not lost).
void StopAsync(std::chrono::milliseconds max);
// Lines dropped so far because the queue was full.
uint64_t Dropped();

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
