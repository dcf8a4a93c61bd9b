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

namespace doorman::health {

using Millis = std::chrono::milliseconds;

inline constexpr Millis kDefaultInterval{5'000};
inline constexpr Millis kDefaultTimeout{2'000};
inline constexpr uint32_t kDefaultHealthyThreshold = 2;
inline constexpr uint32_t kDefaultUnhealthyThreshold = 3;
inline constexpr uint32_t kJitterPercent = 10;

enum class CheckProtocol { kNone, kTcp, kHttp };

// One check as configured (BackendSet.health_check), defaults applied.
struct CheckSpec {
  CheckProtocol protocol = CheckProtocol::kNone;
  std::string path = "/";
  Millis interval = kDefaultInterval;
  Millis timeout = kDefaultTimeout;
  uint32_t healthy_threshold = kDefaultHealthyThreshold;
  uint32_t unhealthy_threshold = kDefaultUnhealthyThreshold;
  std::vector<uint32_t> expected_statuses;  // empty = 200..399

  bool operator==(const CheckSpec&) const = default;
  bool StatusOk(uint32_t status) const;
};

class HealthState {
 public:
  explicit HealthState(const CheckSpec& spec) : spec_(spec) {}

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

// The status code of an HTTP/1.x response head ("HTTP/1.1 200 OK\r\n..."); nullopt when the
// bytes are not (yet) a complete, well-formed status line.
std::optional<uint32_t> ParseHttpStatus(std::string_view head);

}  // namespace doorman::health
