// Completion handler for a coroutine that must run as long as its worker (deadline and pool
// sweeps, accept loops, the L4 session sweep, UDP listeners). With net::detached an exception
// escaping one (std::bad_alloc under memory pressure) would be dropped silently and leave the
// worker without timeouts, or a listener without accepts, while /readyz still says ready. It is
// logged instead, and the process aborts, so that its supervisor (the DaemonSet) restarts it.
#pragma once

#include <chrono>
#include <cstdlib>
#include <exception>
#include <string>

#include "common/log.h"

namespace doorman::dataplane {

inline auto EssentialLoop(const char* what) {
  // noexcept: under std::bad_alloc the logging below may throw too, which then terminates (the
  // same end) instead of escaping into the worker's run loop, which would keep it going.
  return [what](std::exception_ptr e) noexcept {
    if (!e) return;
    std::string error = "not a std::exception";
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      error = x.what();
    } catch (...) {
    }
    log::Error("worker", "an essential loop ended by an exception; aborting so that the process is restarted",
               {{"loop", what}, {"error", error}});
    log::StopAsync(std::chrono::milliseconds(500));  // the line above reaches stderr before the abort
    std::abort();
  };
}

}  // namespace doorman::dataplane
