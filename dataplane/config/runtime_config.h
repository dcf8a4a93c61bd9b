// The dataplane's immutable, compiled routing state. Built by Compile() from one Snapshot, then
// shared read-only by every worker through std::shared_ptr<const RuntimeConfig>; an update builds
// a whole new RuntimeConfig and swaps the pointer (ConfigStore), so a connection or request that
// holds the old pointer finishes against consistent old state.
//
// Objects reference each other by raw pointer into the same RuntimeConfig (owned by it, stable
// addresses): Listener → Route → BackendSet → Endpoint. The only mutable parts are the
// schedulers' lock-free cursors.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dataplane/l7/filters.h"
#include "dataplane/l7/policy.h"
#include "dataplane/l7/router.h"
#include "dataplane/lb/endpoint_picker.h"

namespace doorman::dataplane {

using Millis = std::chrono::milliseconds;

// Defaults for proto fields left at 0.
inline constexpr Millis kDefaultL4IdleTimeout{350'000};
inline constexpr Millis kDefaultL7IdleTimeout{60'000};
inline constexpr Millis kDefaultConnectTimeout{5'000};
inline constexpr Millis kDefaultRequestTimeout{60'000};

enum class Protocol { kTcp, kUdp, kTls, kHttp, kHttps };

// The OpenSSL server contexts of one HTTPS listener in one config generation (defined by the I/O
// library, dataplane/l7/tls_context.h; the core only holds the pointer). Connections keep the
// generation they were accepted with alive, so a rotated certificate serves new handshakes only.
class TlsServerContext;

struct TlsCertificatePem {
  std::string name;  // TlsCertificate.name, for logs and warnings (never the PEM itself)
  std::string chain_pem;
  std::string key_pem;
};
std::string_view ProtocolName(Protocol p);

struct Endpoint {
  std::string address;  // IP literal (validated by Compile)
  uint16_t port = 0;
  bool ready = false;     // from the EndpointSlice: may receive new connections
  bool eligible = false;  // ready, and on this node when the set is local_only
  std::string key;        // "10.0.0.1:8080" / "[fd00::1]:8080": metrics label and pool key
};

struct BackendSet {
  std::string name;
  std::vector<Endpoint> endpoints;
  bool local_only = false;
};

struct WeightedBackendSet {
  const BackendSet* set = nullptr;
  uint32_t weight = 0;
  std::vector<const Endpoint*> eligible;  // in set order; what the picker indexes
};

enum class ForwardedForMode { kAppend, kReplace, kOff };

struct Route {
  std::string name;
  std::string listener;
  RouteMatch match;
  std::vector<WeightedBackendSet> backends;
  Millis connect_timeout = kDefaultConnectTimeout;
  Millis request_timeout = kDefaultRequestTimeout;  // L7: until the response header arrives
  Millis idle_timeout{0};  // 0 = the listener's idle timeout
  ForwardedForMode forwarded_for = ForwardedForMode::kAppend;
  std::vector<Cidr> trusted_proxies;  // clients whose X-Forwarded-* / X-Request-Id are believed
  RedirectFilter redirect;            // when enabled the route answers itself, no backend
  RewriteFilter rewrite;
  HeaderRules request_headers;   // applied to the request sent upstream
  HeaderRules response_headers;  // applied to the backend's response

  // The next endpoint by the route's scheduler (of the canary backends when `canary`), or nullptr
  // when none is eligible.
  const Endpoint* PickEndpoint(bool use_canary = false) const;
  std::size_t eligible_endpoints(bool use_canary = false) const {
    const auto& p = use_canary ? canary_picker : picker;
    return p ? p->eligible() : 0;
  }

  std::unique_ptr<lb::EndpointPicker> picker;

  // RoutePolicy.canary: traffic UseCanary() selects goes to `canary_backends`.
  CanaryPolicy canary;
  std::vector<WeightedBackendSet> canary_backends;
  std::unique_ptr<lb::EndpointPicker> canary_picker;

  // Stickiness COOKIE ("" = off): StickyHash(route, endpoint key) → eligible endpoint, per group.
  std::string sticky_cookie;
  Millis sticky_ttl{0};
  std::unordered_map<uint64_t, const Endpoint*> sticky_main, sticky_canary;

  // RateLimit (null = off): keyed by client IP, or by the header `rate_limit_header` (lowercase).
  std::shared_ptr<RateLimiter> rate_limiter;
  std::string rate_limit_header;

  // RetryPolicy: retries after the first try, for idempotent requests without a body.
  uint32_t retry_attempts = 0;
  RetryOn retry_on;
  Millis per_try_timeout{0};  // 0 = request_timeout
};

struct Listener {
  std::string name;  // "<protocol>-<port>"
  uint16_t port = 0;
  Protocol protocol = Protocol::kTcp;
  Millis idle_timeout = kDefaultL4IdleTimeout;
  std::vector<const Route*> routes;  // precedence order
  bool served = false;               // this build serves the protocol (TCP, HTTP, HTTPS)
  // HTTPS only: certificates in ListenerTls order (the first is the default) and the built contexts.
  std::vector<TlsCertificatePem> tls_certificates;
  std::string tls_min_version = "1.2";
  std::shared_ptr<const TlsServerContext> tls;

  bool is_l7() const { return protocol == Protocol::kHttp || protocol == Protocol::kHttps; }
};

struct RuntimeConfig {
  uint64_t version = 0;
  std::vector<std::unique_ptr<BackendSet>> backend_sets;
  std::vector<std::unique_ptr<Route>> routes;
  std::vector<std::unique_ptr<Listener>> listeners;  // snapshot order
  std::vector<std::string> warnings;                 // as sent in the ACK

  const Listener* FindListener(std::string_view name) const;
  const Route* FindRoute(std::string_view name) const;

  std::unordered_map<std::string_view, const Listener*> listener_index;
  std::unordered_map<std::string_view, const Route*> route_index;
};

}  // namespace doorman::dataplane
