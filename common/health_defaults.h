// Defaults of a backend set's active health check (API.md `healthCheck`; BackendSet.health_check
// fields left 0), in one place: the dataplane runs checks with them and the controller compares
// checks with them applied (two checks of one endpoint that differ only in spelling a default
// are the same check).
#pragma once

#include <cstdint>

namespace doorman::health_defaults {

inline constexpr uint32_t kIntervalMs = 5'000;
inline constexpr uint32_t kMinIntervalMs = 100;  // a floor the controller enforces (typos like "5ms")
inline constexpr uint32_t kTimeoutMs = 2'000;
inline constexpr uint32_t kHealthyThreshold = 2;
inline constexpr uint32_t kUnhealthyThreshold = 3;

}  // namespace doorman::health_defaults
