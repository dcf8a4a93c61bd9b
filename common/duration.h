// Kubernetes/Go duration syntax: "500ms", "2s", "1h30m", "1.5s", "0". Units: ns us µs ms s m h.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace doorman {

// Parses a non-negative duration, rounded down to milliseconds. nullopt for malformed input,
// negative values, a number without a unit (except "0"), or overflow.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view s);
// The same, exact to the nanosecond (callers that refuse what milliseconds cannot hold).
std::optional<std::chrono::nanoseconds> ParseDurationNs(std::string_view s);
// Whether `s` is well-formed but beyond what ParseDurationNs takes (1e18 ns, about 31 years):
// a "too long" rather than a syntax error.
bool DurationTooLong(std::string_view s);

// `d` in whole milliseconds (doorman's timer resolution), or nullopt when it has a part below
// one millisecond ("500us", "1.5ms"), which a cast would silently cut.
inline std::optional<std::chrono::milliseconds> WholeMilliseconds(std::chrono::nanoseconds d) {
  if (d.count() % 1'000'000 != 0) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}
inline constexpr const char* kSubMillisecondProblem = "has a part below one millisecond, the resolution of doorman's timers";

// Shortest Go-style form: 1h30m, 2s, 500ms, 0s.
std::string FormatDuration(std::chrono::milliseconds d);

}  // namespace doorman
