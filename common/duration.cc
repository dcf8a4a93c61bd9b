#include "common/duration.h"

#include <cmath>
#include <cstdint>

namespace doorman {

namespace {
// ParseDurationNs, and whether a well-formed `s` failed only for being too long.
std::optional<std::chrono::nanoseconds> Parse(std::string_view s, bool* too_long) {
  *too_long = false;
  if (s.empty()) return std::nullopt;
  if (s == "0") return std::chrono::nanoseconds(0);
  // Accumulate in nanoseconds as long double to allow fractions ("1.5s").
  long double total_ns = 0;
  size_t i = 0;
  while (i < s.size()) {
    // number: digits [. digits]
    const size_t start = i;
    long double value = 0;
    bool digits = false;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      value = value * 10 + (s[i] - '0');
      ++i;
      digits = true;
    }
    if (i < s.size() && s[i] == '.') {
      ++i;
      long double scale = 0.1L;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        value += (s[i] - '0') * scale;
        scale /= 10;
        ++i;
        digits = true;
      }
    }
    if (!digits || i == start) return std::nullopt;
    // unit
    long double unit_ns = 0;
    auto take = [&](std::string_view u, long double ns) {
      if (s.substr(i, u.size()) == u) {
        i += u.size();
        unit_ns = ns;
        return true;
      }
      return false;
    };
    if (!(take("ns", 1) || take("us", 1e3L) || take("\xC2\xB5s", 1e3L) || take("ms", 1e6L) ||
          take("h", 3600e9L) || take("m", 60e9L) || take("s", 1e9L))) {
      return std::nullopt;
    }
    total_ns += value * unit_ns;
  }
  if (total_ns > 1e18L) {
    *too_long = true;
    return std::nullopt;
  }
  // Rounded to the nanosecond: "0.3s" is 300000000 ns, not 299999999.99...
  return std::chrono::nanoseconds(std::llround(total_ns));
}
}  // namespace

std::optional<std::chrono::nanoseconds> ParseDurationNs(std::string_view s) {
  bool too_long = false;
  return Parse(s, &too_long);
}

bool DurationTooLong(std::string_view s) {
  bool too_long = false;
  return !Parse(s, &too_long) && too_long;
}

std::optional<std::chrono::milliseconds> ParseDuration(std::string_view s) {
  const auto ns = ParseDurationNs(s);
  if (!ns) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(*ns);
}

std::string FormatDuration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms <= 0) return "0s";
  std::string out;
  const int64_t h = ms / 3600000;
  ms %= 3600000;
  const int64_t m = ms / 60000;
  ms %= 60000;
  const int64_t s = ms / 1000;
  ms %= 1000;
  if (h) out += std::to_string(h) + "h";
  if (m) out += std::to_string(m) + "m";
  if (s) out += std::to_string(s) + "s";
  if (ms) out += std::to_string(ms) + "ms";
  return out;
}

}  // namespace doorman
