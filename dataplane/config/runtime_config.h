// The dataplane's immutable, compiled routing state. Built by Compile() from one Snapshot, then
// shared read-only by every worker through std::shared_ptr<const RuntimeConfig>; an update builds
// a whole new RuntimeConfig and swaps the pointer (ConfigStore), so a connection or request that
// holds the old pointer finishes against consistent old state.
//
// Objects reference each other by raw pointer into the same RuntimeConfig (owned by it, stable
// addresses): Listener → Route → BackendSet → Endpoint. The only mutable parts are the
// schedulers' lock-free cursors.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/listener_defaults.h"
#include "dataplane/l7/filters.h"
#include "dataplane/l7/policy.h"
#include "dataplane/health/health_state.h"
#include "dataplane/l4/cidr.h"
#include "dataplane/l4/sni.h"
#include "dataplane/l7/router.h"
#include "dataplane/lb/endpoint_picker.h"
#include "dataplane/lb/sticky_table.h"

namespace doorman::dataplane {

using Millis = std::chrono::milliseconds;

// Defaults for proto fields left at 0.
inline constexpr Millis kDefaultL4IdleTimeout{350'000};
inline constexpr Millis kDefaultL7IdleTimeout{listener_defaults::kL7IdleTimeoutMs};
inline constexpr Millis kDefaultUdpIdleTimeout{30'000};  // UDP flow expiry (conntrack/IPVS-like)
inline constexpr std::size_t kDefaultUdpMaxFlowsPerWorker = 16384;  // per worker and UDP listener
inline constexpr Millis kDefaultConnectTimeout{5'000};
inline constexpr Millis kDefaultRequestTimeout{60'000};
// L4 TCP keepalive on both legs (Linux defaults are 2 h): probe after 60 s idle, every 10 s, 6 times.
inline constexpr int kTcpKeepaliveIdleS = 60;
inline constexpr int kTcpKeepaliveIntervalS = 10;
inline constexpr int kTcpKeepaliveCount = 6;

enum class Protocol { kTcp, kUdp, kTls, kHttp, kHttps };

// The OpenSSL server contexts of one HTTPS listener in one config generation (defined by the I/O
// library, dataplane/l7/tls_context.h; the core only holds the pointer). Connections keep the
// generation they were accepted with alive, so a rotated certificate serves new handshakes only.
class TlsServerContext;
class TlsClientContext;  // dataplane/l7/tls_context.h: SSL_CTX for TLS to backends

struct TlsCertificatePem {
  std::string name;  // TlsCertificate.name, for logs and warnings (never the PEM itself)
  std::string chain_pem;
  std::string key_pem;
};
// An HTTPS listener's usable certificate and the end of its validity (X.509 notAfter, Unix
// seconds): doorman_tls_certificate_expiry_timestamp_seconds{listener,certificate}.
struct CertificateExpiry {
  std::string name;  // TlsCertificate.name
  int64_t not_after = 0;
};
std::string_view ProtocolName(Protocol p);

struct Endpoint {
  std::string address;  // IP literal (validated by Compile)
  uint16_t port = 0;
  bool ready = false;     // from the EndpointSlice: may receive new connections
  bool eligible = false;  // ready, and on this node when the set is local_only
  std::string key;        // "10.0.0.1:8080" / "[fd00::1]:8080": metrics label and pool key
  // Open-connection count, passive-ejection and drain state, shared with the schedulers and
  // carried over to the next snapshot for the same key (so an update resets neither). Never
  // null after Compile().
  lb::EndpointStatePtr state;
  // The verdict of this set's active check of the endpoint (null = the set has none): shared by
  // the sets that declare the same check, carried over for the same endpoint and check.
  lb::HealthSlotPtr health;
};

// Whether the endpoint may take new traffic (lb::Available with its set's check).
inline bool Available(const Endpoint& e) { return lb::Available(*e.state, e.health.get()); }

// Steady-clock ms when an endpoint left a listener's routes (0 = still in them).
using DrainFlag = std::shared_ptr<std::atomic<int64_t>>;

struct BackendSet {
  std::string name;
  std::vector<Endpoint> endpoints;
  bool local_only = false;
  health::CheckSpec health_check;  // protocol kNone = not actively checked
  std::shared_ptr<const TlsClientContext> health_tls;  // health_check.tls_id != "": the probes' TLS
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
  std::string ns;  // Route.owner.namespace
  // L7: a host this route's wildcard or any-host match covers may belong to another namespace
  // (Listener.host_owners), so SelectRoute asks whose it is.
  bool check_host_owner = false;
  std::vector<WeightedBackendSet> backends;
  Millis connect_timeout = kDefaultConnectTimeout;
  Millis request_timeout = kDefaultRequestTimeout;  // L7: until the response header arrives
  Millis idle_timeout{0};  // 0 = the listener's idle timeout
  ForwardedForMode forwarded_for = ForwardedForMode::kAppend;
  std::vector<l4::Cidr> trusted_proxies;  // clients whose X-Forwarded-* / X-Request-Id are believed
  RedirectFilter redirect;            // when enabled the route answers itself, no backend
  RewriteFilter rewrite;
  HeaderRules request_headers;   // applied to the request sent upstream
  HeaderRules response_headers;  // applied to the backend's response
  // backend_protocol HTTPS: TLS to the endpoints (null = plain HTTP/1.1). The context holds the
  // CA to verify with (none = no verification); `backend_tls_server_name` "" = the request's
  // Host without port, used as SNI and, when verifying, as the name checked.
  std::shared_ptr<const TlsClientContext> backend_tls;
  std::string backend_tls_server_name;
  std::string backend_tls_error;  // non-empty: HTTPS backends whose CA is unusable → every request 502

  // The next endpoint by the route's scheduler (of the canary backends when `use_canary`), or
  // nullptr when none is eligible. `ctx.hash` = HashKey of the client address for source-hash /
  // maglev / source-IP stickiness.
  const Endpoint* PickEndpoint(const lb::PickContext& ctx, bool use_canary = false) const;
  const Endpoint* PickEndpoint(bool use_canary = false) const { return PickEndpoint(lb::PickContext{}, use_canary); }
  // The fallback when the scheduler keeps answering endpoints already tried (least-connections
  // prefers an idle endpoint, which a dead one is): the first eligible endpoint (sets with
  // weight > 0, in order) not in `tried` that is available (healthy, not ejected), else the first
  // healthy one not in `tried` (panic mode: an ejected endpoint rather than failing the client),
  // else nullptr.
  const Endpoint* FirstUntried(bool use_canary, const std::vector<const Endpoint*>& tried) const;
  std::size_t eligible_endpoints(bool use_canary = false) const {
    const auto& p = use_canary ? canary_picker : picker;
    return p ? p->eligible() : 0;
  }

  std::unique_ptr<lb::EndpointPicker> picker;
  lb::SchedulerKind scheduler = lb::SchedulerKind::kRoundRobin;

  // RoutePolicy.canary: traffic UseCanary() selects goes to `canary_backends`.
  CanaryPolicy canary;
  std::vector<WeightedBackendSet> canary_backends;
  std::unique_ptr<lb::EndpointPicker> canary_picker;

  // Stickiness COOKIE ("" = off): StickyHash(endpoint key) → eligible endpoint, per group.
  std::string sticky_cookie;
  std::string sticky_cookie_path = "/";  // its Path attribute
  Millis sticky_ttl{0};
  std::unordered_map<uint64_t, const Endpoint*> sticky_main, sticky_canary;

  // RateLimit (null = off): keyed by client IP, or by the header `rate_limit_header` (lowercase).
  std::shared_ptr<RateLimiter> rate_limiter;
  std::string rate_limit_header;
  std::string rate_limit_bucket;  // RateLimit.bucket: routes naming it share `rate_limiter`

  // RetryPolicy: retries after the first try, for idempotent requests without a body.
  uint32_t retry_attempts = 0;
  // L4 (TCP, TLS passthrough): distinct endpoints a connection tries when connects fail:
  // 1 + policy.retries.attempts (capped at 5 retries), 3 without a retries policy.
  uint32_t l4_connect_attempts = 3;
  RetryOn retry_on;
  Millis per_try_timeout{0};  // 0 = request_timeout

  l4::SniMatcher sni;  // TLS passthrough listeners: empty = the default route (no/unknown SNI)

  // Stickiness SOURCE_IP: shared by all workers; carried over to the next snapshot for a route of
  // the same name and TTL (so an update does not forget clients). Null = no stickiness.
  std::shared_ptr<lb::StickyTable> sticky;
  // PickEndpoint honouring `sticky` (ctx.hash = client IP hash): the remembered endpoint when it
  // is still eligible and healthy, else a fresh pick that is then remembered.
  // `remember` = false: the caller remembers the endpoint it really used (RememberSticky), e.g.
  // only once a connection to it succeeded, so a refused pick is not remembered.
  const Endpoint* PickSticky(const lb::PickContext& ctx, int64_t now_ms, bool remember = true) const;
  void RememberSticky(uint64_t client_hash, const Endpoint& e, int64_t now_ms) const {
    if (sticky) sticky->Remember(client_hash, e.key, now_ms);
  }
  // For an L4 connection or UDP flow to `e`: its client stays pinned while it lives.
  lb::StickyHold HoldSticky(uint64_t client_hash, const Endpoint& e) const {
    if (!sticky) return {};
    return {sticky, client_hash, sticky->Hold(client_hash, e.key)};
  }
};

struct Listener {
  std::string name;  // "<protocol>-<port>"
  uint16_t port = 0;
  Protocol protocol = Protocol::kTcp;
  Millis idle_timeout = kDefaultL4IdleTimeout;
  std::vector<const Route*> routes;  // precedence order
  bool routes_sorted_by_host = false;  // routes ascend in match.best_host (SelectRoute stops early)
  // L7: Snapshot.host_owners (null or empty = every host is anyone's). Shared with the TLS
  // contexts, which outlive the config.
  std::shared_ptr<const HostOwnership> host_owners;
  bool served = false;               // this build serves the protocol
  // HTTPS only: certificates in ListenerTls order (the first is the default) and the built contexts.
  std::vector<TlsCertificatePem> tls_certificates;
  std::string tls_min_version = "1.2";
  bool tls_default_self_signed = false;  // ListenerTls.default_self_signed
  std::shared_ptr<const TlsServerContext> tls;
  std::vector<CertificateExpiry> tls_expiry;  // set by the tls_builder: the usable certificates (not the self-signed default)
  std::vector<l4::Cidr> allowed_source_ranges;  // empty = everyone; enforced at accept (TCP) and when a UDP flow opens
  int proxy_protocol_send = 0;        // 0 = none, 1 = v1, 2 = v2 header sent to backends (L4)
  bool proxy_protocol_accept = false;  // expect a PROXY v1/v2 header from downstream (TCP, TLS, HTTP, HTTPS)
  // L4 drain: per endpoint key of the listener's routes (every endpoint of their backend sets,
  // canary included), carried over to the next snapshot for the same listener name and key.
  // Connections and flows drain by it, so removing an address from this listener's route drains
  // them even while another listener or object still routes to the address (whose EndpointState —
  // health, load, ejection — stays shared). Edits that keep the address on the listener (set
  // renames, a canary set added in front, a renamed route) do not drain.
  std::unordered_map<std::string, DrainFlag> drain_flags;
  DrainFlag DrainFlagFor(const std::string& endpoint_key) const {
    auto it = drain_flags.find(endpoint_key);
    return it == drain_flags.end() ? nullptr : it->second;
  }

  bool is_l7() const { return protocol == Protocol::kHttp || protocol == Protocol::kHttps; }
};

struct RuntimeConfig {
  uint64_t version = 0;
  std::vector<std::unique_ptr<BackendSet>> backend_sets;
  std::vector<std::unique_ptr<Route>> routes;
  std::vector<std::unique_ptr<Listener>> listeners;  // snapshot order
  std::vector<std::string> warnings;                 // as sent in the ACK
  std::shared_ptr<const HostOwnership> host_owners;  // Snapshot.host_owners (null: none); the L7 listeners share it

  const Listener* FindListener(std::string_view name) const;
  const Route* FindRoute(std::string_view name) const;

  std::unordered_map<std::string_view, const Listener*> listener_index;
  std::unordered_map<std::string_view, const Route*> route_index;
  // RateLimit.bucket + key + limits → the limiter its routes share (the next snapshot's routes
  // naming the same group keep it, whichever of them are new).
  std::map<std::string, std::shared_ptr<RateLimiter>> rate_limit_groups;
};

}  // namespace doorman::dataplane
