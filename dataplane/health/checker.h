// Active health checking, the I/O part: probes every endpoint of every BackendSet that has a
// health_check (TCP connect, HTTP GET path → expected status, plain or over TLS, or gRPC grpc.health.v1 Check →
// SERVING; see grpc_probe.h), on its own thread and io_context (probes never compete with the
// workers' event loops; gRPC calls run on gRPC's threads and post their verdicts back), feeding
// one HealthState per
// target. A transition is published lock-free to the data path through the endpoint's shared
// EndpointState::healthy (read by every scheduler's Pick) and to doorman_backend_up via
// `on_change`. Targets are keyed by endpoint and check, so an update that keeps both keeps the
// target, its streaks and its health; an update that changes the check of an endpoint starts a
// new target that inherits the endpoint's health (streaks start over); a target that disappears
// stops, and its endpoint (if it is still routed, now without a check) is marked healthy again.
// A probe that cannot run for want of local descriptors, buffers or memory is kSkipped: no
// verdict, neither threshold moves (the endpoint is not marked down for this process's shortage).
// Used by the L4 forwarder and the L7 proxy alike (they share EndpointState).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "dataplane/health/health_state.h"

namespace doorman::dataplane {
struct RuntimeConfig;
}

namespace doorman::health {

class HealthChecker {
 public:
  using OnChange = std::function<void(const std::string& endpoint_key, bool healthy)>;
  // Every probe's outcome (the checker's thread): doorman_health_probes_total{result}.
  using OnProbe = std::function<void(ProbeResult)>;
  explicit HealthChecker(OnChange on_change, OnProbe on_probe = {});
  ~HealthChecker();  // stops the probes and joins the thread
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Makes the probed targets match `config` (which must stay alive until the next Update).
  // Thread-safe; returns at once (the change is applied on the checker's thread).
  void Update(std::shared_ptr<const dataplane::RuntimeConfig> config);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace doorman::health
