// gRPC health probes (grpc.health.v1.Health/Check) for the health checker, behind a header
// without gRPC or Asio types: only grpc_probe.cc includes gRPC.
//
// Each probe is one unary Check call on a channel of its own (a new HTTP/2 connection, as the
// HTTP check opens a new TCP connection per probe), made with gRPC's callback API and a deadline
// of the check timeout. Its verdict (health::GrpcCheckPassed; kSkipped when this process could
// not open a socket, or the call failed for want of local resources: GrpcFailureIsLocal) goes
// back to the owner's thread
// through `post`, where `done` runs exactly once and the call's channel is released (gRPC must
// not release a channel on its own callback thread).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "dataplane/health/health_state.h"

namespace doorman::health {

class GrpcProbes {
 public:
  using Done = std::function<void(ProbeResult)>;
  // Runs `fn` on the owner's thread (e.g. posts it to its io_context). Called from gRPC threads.
  using Post = std::function<void(std::function<void()>&& fn)>;

  explicit GrpcProbes(Post post);
  ~GrpcProbes();  // Shutdown()
  GrpcProbes(const GrpcProbes&) = delete;
  GrpcProbes& operator=(const GrpcProbes&) = delete;

  // Starts one Check of `service` at address:port (an IP literal); `done` runs through `post`.
  // After Shutdown(), `done(kFailed)` is posted at once.
  void Start(const std::string& address, uint16_t port, const std::string& service,
             std::chrono::milliseconds timeout, Done done);

  // Cancels every call in flight and returns when each has handed its verdict to `post`; later
  // Start()s fail at once. Idempotent. Closures posted but never run release their call when
  // they are destroyed.
  void Shutdown();

 private:
  struct Call;
  void Finished(Call* call, ProbeResult result);

  std::mutex mu_;
  std::condition_variable idle_;
  // Guarded by mu_: the calls whose callback has not run, owned here (never released on a gRPC
  // thread: Finished() moves the reference into the closure it posts).
  std::map<Call*, std::shared_ptr<Call>> calls_;
  std::size_t pending_ = 0;  // guarded by mu_: calls not yet handed to post_
  Post post_;
  bool shut_down_ = false;  // guarded by mu_
};

}  // namespace doorman::health
