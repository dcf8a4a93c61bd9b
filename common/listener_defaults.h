// Defaults of a listener's settings (API.md `listeners[]`; Listener fields left 0 or empty), in
// one place: the dataplane serves with them and the controller compares listeners that share a
// port with them applied (writing a default out is the same setting as leaving it unset).
#pragma once

#include <cstdint>
#include <string_view>

namespace doorman::listener_defaults {

inline constexpr uint32_t kL7IdleTimeoutMs = 60'000;  // HTTP and HTTPS listeners
inline constexpr std::string_view kTlsMinVersion = "1.2";

}  // namespace doorman::listener_defaults
