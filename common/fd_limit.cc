#include "common/fd_limit.h"

#include <sys/resource.h>

#include <algorithm>

namespace doorman {

uint64_t RaiseOpenFileLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  constexpr rlim_t kCap = 1 << 20;
  const rlim_t want = rl.rlim_max == RLIM_INFINITY ? kCap : std::min<rlim_t>(rl.rlim_max, kCap);
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    rlimit raised = rl;
    raised.rlim_cur = want;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  return rl.rlim_cur == RLIM_INFINITY ? kCap : static_cast<uint64_t>(rl.rlim_cur);
}

}  // namespace doorman
