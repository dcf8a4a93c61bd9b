// Limits both ends of the routing stream agree on.
#pragma once

#include <cstddef>

namespace doorman {

// Largest StateUpdate a dataplane accepts (gRPC's default receive limit is 4 MiB, which a few
// hundred TLS certificates exceed). The controller logs an error for a snapshot above it.
inline constexpr std::size_t kMaxStateUpdateBytes = 64u << 20;

}  // namespace doorman
