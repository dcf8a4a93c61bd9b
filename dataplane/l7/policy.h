// Pure per-request policy for the L7 proxy (no sockets; clocks and randomness are injected):
// canary selection, sticky-session cookies, the rate-limit token bucket, the retry budget and
// passive outlier detection. See docs/l7.md for the user-facing semantics.
#pragma once

#include <algorithm>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dataplane/lb/scheduler.h"

namespace doorman::dataplane {

using SteadyTime = std::chrono::steady_clock::time_point;

// RoutePolicy.canary (nginx-ingress semantics): the header, when present, decides — canary when
// its value is one of `header_values` (or "always" when none are listed), main for "never" or any
// other value; then the cookie ("always" → canary, "never" → main); otherwise `weight_percent`
// percent of requests, using `dice` in [0, 100) supplied by the caller.
struct CanaryPolicy {
  bool enabled = false;
  std::string header_lower;
  std::vector<std::string> header_values;
  std::string cookie;
  uint32_t weight_percent = 0;
};
bool UseCanary(const CanaryPolicy& c, std::optional<std::string_view> header_value,
               std::optional<std::string_view> cookie_value, uint32_t dice);
// What the request itself asks for (the header, then the cookie), or nullopt when neither decides
// and the weight would (UseCanary = this, else dice < weight_percent).
std::optional<bool> CanaryByRequest(const CanaryPolicy& c, std::optional<std::string_view> header_value,
                                    std::optional<std::string_view> cookie_value);

// Sticky sessions without shared state: the cookie carries a hash of the endpoint ("address:port";
// not keyed, so not secret: docs/operations.md), so any dataplane (or a restarted one) maps it
// back by hashing its current endpoints; an unknown value (endpoint gone) falls back to a fresh
// pick and a new cookie. No route in it: the cookie pins a client to its pod on every route under
// its Path that has the pod (Stickiness.cookie_path, default "/"; an Ingress path's own prefix, as
// ingress-nginx's session-cookie-path, so two paths of one host to different Services each keep
// their own cookie instead of overwriting one another's). 16 lowercase hex digits.
uint64_t StickyHash(std::string_view endpoint_key);
std::string StickyCookieValue(uint64_t hash);
std::optional<uint64_t> ParseStickyCookieValue(std::string_view value);
// "NAME=VALUE; Path=PATH; HttpOnly[; Max-Age=N][; Secure]"; ttl 0 = session cookie; "" path = "/".
// A __Secure- or __Host- name is always Secure, and a __Host- one's Path always "/" (RFC 6265bis).
std::string StickySetCookie(std::string_view name, std::string_view value, std::chrono::milliseconds ttl, bool secure,
                            std::string_view path = "/");

// Token bucket: `rate` tokens per second, capacity `burst` (at least 1). Starts full.
class TokenBucket {
 public:
  TokenBucket(double rate, double burst, SteadyTime now) : rate_(rate), burst_(burst), tokens_(burst), last_(now) {}
  // Takes one token if available. Otherwise returns false and sets *retry_after_s (>= 1).
  bool Take(SteadyTime now, uint32_t* retry_after_s);
  bool Full(SteadyTime now) const;

 private:
  void Refill(SteadyTime now);
  double rate_, burst_, tokens_;
  SteadyTime last_;
};

// Buckets by key (client IP or a header value) for one route. Thread-safe (one mutex; only
// rate-limited routes pay for it). Bounded in keys and in bytes: a key longer than
// kMaxRateLimitKeyBytes is stored as its first bytes and a hash of the whole (a client choosing
// 30 KB header values cannot make each bucket 30 KB); beyond `max_keys`, full (idle) buckets are
// dropped, and if none is, one in 16 buckets (hash order, not the attacker's) is evicted: those
// clients get a fresh bucket, the others keep theirs (never the whole table at once).
class RateLimiter {
 public:
  RateLimiter(uint32_t requests_per_second, uint32_t burst, std::size_t max_keys = 100'000);
  bool Allow(std::string_view key, SteadyTime now, uint32_t* retry_after_s);
  std::size_t keys() const;
  // Whether a limiter built from these arguments would behave the same: a new snapshot keeps
  // the buckets (clients do not get a fresh burst whenever any configuration changes).
  bool SameLimits(uint32_t requests_per_second, uint32_t burst) const;

 private:
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view k) const { return std::hash<std::string_view>{}(k); }
  };
  double rate_, burst_;
  std::size_t max_keys_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, TokenBucket, KeyHash, std::equal_to<>> buckets_;
};
inline constexpr std::size_t kMaxRateLimitKeyBytes = 64;

// Retries may only add 20% to the requests in flight (at least kMinRetries concurrently), so a
// failing backend is not hammered by a retry storm.
inline constexpr int64_t kMinConcurrentRetries = 3;
inline bool RetryBudgetAllows(int64_t active_requests, int64_t retries_in_flight) {
  const int64_t budget = std::max<int64_t>(kMinConcurrentRetries, active_requests / 5);
  return retries_in_flight < budget;
}

// Which failures a RetryPolicy.on list retries.
// RetryPolicy.on, as Envoy and HAProxy name the conditions: connect-failure, reset (the backend
// closed or reset before a complete response head), timeout (the per-try / request timeout),
// listed statuses ("503"), 5xx (any 500-599, timeouts included, like Envoy's), gateway-error
// (502, 503, 504 and timeouts), and non-idempotent (the route also retries POST/PATCH/...,
// whose bodies are then replayed from a copy of at most kMaxReplayBody bytes).
struct RetryOn {
  bool connect_failure = false, reset = false, timeout = false, any_5xx = false, non_idempotent = false;
  std::vector<uint16_t> statuses;
  bool Status(unsigned code) const {
    if (any_5xx && code >= 500 && code <= 599) return true;
    return std::find(statuses.begin(), statuses.end(), code) != statuses.end();
  }
  bool OnTimeout() const { return timeout || any_5xx || Status(504); }
};
inline constexpr std::size_t kMaxReplayBody = 64 * 1024;
bool IsIdempotentMethod(std::string_view method);

// Passive outlier detection: `consecutive_failures` failures in a row (5xx answers or connect
// failures) eject an endpoint for base_ejection × 2^(times ejected before), capped at
// max_ejection; a success resets the failure count, and an endpoint that stays healthy for
// max_ejection after its ejection ended has its ejection count reset. The state lives in the
// endpoint's lb::EndpointState (atomics): shared by all workers and kept across snapshots for
// the same endpoint, like its health. Thread-safe; two workers crossing the threshold at once
// eject it once.
class OutlierDetector {
 public:
  // The dataplane's detector (default Config), used by the L7 proxy (5xx and connect failures)
  // and the L4 proxy (connect failures): one verdict per endpoint whichever proxy saw it fail.
  static const OutlierDetector& Default();

  struct Config {
    uint32_t consecutive_failures = 5;
    std::chrono::milliseconds base_ejection{10'000};
    std::chrono::milliseconds max_ejection{300'000};
  };
  OutlierDetector() = default;
  explicit OutlierDetector(Config c) : config_(c) {}
  void OnSuccess(lb::EndpointState& endpoint) const;
  // Returns true when this failure ejects the endpoint.
  bool OnFailure(lb::EndpointState& endpoint, SteadyTime now) const;
  bool Ejected(const lb::EndpointState& endpoint, SteadyTime now) const;

 private:
  Config config_;
};

}  // namespace doorman::dataplane
