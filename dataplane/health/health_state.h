// Active health checking, the pure part: one HealthState per (endpoint, check) fed with probe
// results; it flips after `unhealthy_threshold` consecutive failures / `healthy_threshold`
// consecutive successes (ALB/NLB semantics), and says when the next probe is due (interval plus
// up to 10% jitter, from injected randomness, so N dataplanes do not probe in lock-step).
// No clock and no I/O here: the caller passes `now` and `random` (unit-tested with both).
//
// A new target starts healthy: an endpoint the controller says is ready takes traffic at once,
// and is taken out after `unhealthy_threshold` failed probes (a new pod is not black-holed for
// healthy_threshold * interval; a dead one is out within unhealthy_threshold * interval).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/health_defaults.h"

namespace doorman::health {

using Millis = std::chrono::milliseconds;

inline constexpr Millis kDefaultInterval{health_defaults::kIntervalMs};
inline constexpr Millis kDefaultTimeout{health_defaults::kTimeoutMs};
inline constexpr uint32_t kDefaultHealthyThreshold = health_defaults::kHealthyThreshold;
inline constexpr uint32_t kDefaultUnhealthyThreshold = health_defaults::kUnhealthyThreshold;
inline constexpr uint32_t kJitterPercent = 10;

enum class CheckProtocol { kNone, kTcp, kHttp, kGrpc };

// What one probe found. kSkipped: it could not run here (this process is out of descriptors,
// buffers or memory), which is no verdict about the endpoint either way.
enum class ProbeResult { kPassed, kFailed, kSkipped };

// "passed", "failed", "skipped" (the doorman_health_probes_total result label).
std::string_view ProbeResultName(ProbeResult r);

// "tcp", "http", "grpc" (logs); "none" for kNone.
std::string_view CheckProtocolName(CheckProtocol p);

// One check as configured (BackendSet.health_check), defaults applied.
struct CheckSpec {
  CheckProtocol protocol = CheckProtocol::kNone;
  std::string path = "/";          // HTTP: the GET target
  std::string grpc_service;        // gRPC: HealthCheckRequest.service ("" = the whole server)
  Millis interval = kDefaultInterval;
  Millis timeout = kDefaultTimeout;
  uint32_t healthy_threshold = kDefaultHealthyThreshold;
  uint32_t unhealthy_threshold = kDefaultUnhealthyThreshold;
  std::vector<uint32_t> expected_statuses;  // empty = 200..399
  // HTTP over TLS (HealthCheck.tls): which client context the probe uses ("" = plaintext, else
  // its TlsClientContext::pool_id(), so a snapshot with the same CA keeps the target) and the
  // name sent as SNI and Host and, when verifying, checked ("" = no SNI, Host address:port).
  // The context itself is BackendSet::health_tls.
  std::string tls_id;
  std::string tls_server_name;

  bool operator==(const CheckSpec&) const = default;
  bool StatusOk(uint32_t status) const;
};

class HealthState {
 public:
  explicit HealthState(const CheckSpec& spec) : spec_(spec) {}
  // A state that continues another's verdict (the check of the same endpoint was changed): the
  // streaks start over, the health does not.
  HealthState(const CheckSpec& spec, bool healthy) : spec_(spec), healthy_(healthy) {}

  // Records one probe result. Returns the new health when this result flipped it.
  std::optional<bool> OnResult(bool success);
  bool healthy() const { return healthy_; }

  // When the probe after one that started at `now` is due. `random` is any 64-bit value.
  Millis NextProbeAt(Millis now, uint64_t random) const;

 private:
  CheckSpec spec_;
  bool healthy_ = true;
  uint32_t successes_ = 0;  // consecutive
  uint32_t failures_ = 0;   // consecutive
};

// gRPC checks (grpc.health.v1.Health/Check). The verdict of one call: healthy only when the RPC
// ended OK (status code 0) and the reply says SERVING (1). Any other status (UNAVAILABLE: not a
// gRPC server or not reachable; DEADLINE_EXCEEDED: slower than the check timeout; NOT_FOUND:
// unknown service; UNIMPLEMENTED: no health service) or serving status (UNKNOWN, NOT_SERVING,
// SERVICE_UNKNOWN) is a failure.
inline constexpr int kGrpcStatusOk = 0;
inline constexpr int kGrpcServing = 1;
bool GrpcCheckPassed(int rpc_status_code, int serving_status);

// Whether a failed gRPC check's error message says this process ran out of local resources
// (descriptors, buffers, memory: EMFILE, ENFILE, ENOBUFS, ENOMEM, as strerror(3) words them, which
// is how gRPC's socket errors read). Such a failure is not the endpoint's: the probe gives no
// verdict, as an HTTP/TCP probe whose socket(2) fails does.
bool GrpcFailureIsLocal(std::string_view error_message);

// The gRPC channel target for an IP literal: "ipv4:10.0.0.1:50051" / "ipv6:[fd00::1]:50051" (no
// name resolution, no proxy).
std::string GrpcTarget(std::string_view ip_literal, uint16_t port);

// A service name the checker sends: at most 256 bytes of printable ASCII without spaces ("" is
// valid: the server as a whole).
bool ValidGrpcServiceName(std::string_view name);

// The status code of an HTTP/1.x response head ("HTTP/1.1 200 OK\r\n...", or a bare LF as the
// proxy takes it); nullopt when the bytes are not (yet) a complete, well-formed status line.
std::optional<uint32_t> ParseHttpStatus(std::string_view head);

// The final status of the HTTP reply that `reply` begins: interim heads (1xx other than 101)
// are skipped, as RFC 9110 §15.2 asks of a client and as the proxy does. kNeedMore until a
// final head is complete (CRLF or bare-LF line ends); kInvalid for a head without a status line.
struct ReplyStatus {
  enum State { kNeedMore, kInvalid, kFinal } state = kNeedMore;
  uint32_t code = 0;
};
ReplyStatus FinalReplyStatus(std::string_view reply);

}  // namespace doorman::health
