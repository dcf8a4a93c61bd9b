// Process-wide L4 forwarding options, from doorman-dataplane flags (see docs/l4.md). Set once in
// main() before any worker starts, read-only afterwards (so no synchronisation is needed).
#pragma once

#include <cstddef>

namespace doorman::dataplane {

struct L4Options {
  // --l4-splice: forward TCP/TLS bytes with splice(2) through a pipe per direction instead of
  // copying through a user-space buffer. kOff (default): always copy. kBulk: copy, and switch a
  // direction to splice once one of its reads fills the 16 KiB copy buffer (a bulk transfer; as
  // HAProxy's splice-auto). kAlways: splice from the first byte. See docs/benchmarks.md.
  enum class Splice { kOff, kBulk, kAlways };
  Splice splice = Splice::kOff;
  // --l4-splice-pipe-size: F_SETPIPE_SZ for those pipes, bytes (0 = the kernel default, 64 KiB).
  std::size_t splice_pipe_bytes = 0;
};

inline constexpr std::size_t kMinSplicePipeBytes = 4096;
inline constexpr std::size_t kMaxSplicePipeBytes = 1 << 20;  // /proc/sys/fs/pipe-max-size default

const L4Options& GetL4Options();
void SetL4Options(const L4Options& options);  // before workers start

}  // namespace doorman::dataplane
