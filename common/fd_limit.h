// The open-files limit. A proxy holds two descriptors per proxied connection and the controller
// one per dataplane stream, so the usual soft limit of 1024 is far too low; the hard limit is
// what the operator granted (LimitNOFILE, the container runtime's default), so both binaries
// raise the soft limit to it at start-up, as HAProxy and Envoy deployments do.
#pragma once

#include <cerrno>
#include <cstdint>

namespace doorman {

// errno values that mean this process is out of descriptors, buffers or memory: a failure of its
// own, not of the peer it was reaching (no ejection, no health verdict).
inline constexpr int kLocalResourceErrnos[] = {EMFILE, ENFILE, ENOBUFS, ENOMEM};
inline bool IsLocalResourceErrno(int err) {
  for (const int e : kLocalResourceErrnos) {
    if (e == err) return true;
  }
  return false;
}

// Raises RLIMIT_NOFILE's soft limit to its hard limit (capped at 1,048,576). Returns the soft
// limit in force afterwards (0 if it cannot be read).
uint64_t RaiseOpenFileLimit();

}  // namespace doorman
