#include "dataplane/config/compile.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <tuple>

#include "dataplane/l7/policy.h"
#include "doorman/v1/routing.pb.h"

namespace doorman::dataplane {
namespace {

v1::Snapshot Parse(const std::string& text) {
  v1::Snapshot s;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &s)) << text;
  return s;
}

// A valid snapshot in the controller's naming: one HTTP and one TCP listener.
const char* const kValid = R"pb(
  listeners { name: "http-18080" port: 18080 protocol: HTTP routes: "default/demo/api" routes: "default/demo/app" }
  listeners { name: "tcp-16379" port: 16379 protocol: TCP idle_timeout_ms: 1000 routes: "default/demo/cache" }
  routes {
    name: "default/demo/api" listener: "http-18080"
    match { hosts: "App.Local" path { type: PREFIX value: "/api/" } }
    backends { backend_set: "default/demo/api/0" weight: 1 }
    policy { timeouts { connect_ms: 250 } }
  }
  routes {
    name: "default/demo/app" listener: "http-18080"
    match { hosts: "*.local" }
    backends { backend_set: "default/demo/app/0" weight: 3 }
    backends { backend_set: "default/demo/api/0" weight: 1 }
  }
  routes { name: "default/demo/cache" listener: "tcp-16379" backends { backend_set: "default/demo/cache/0" weight: 1 } }
  backend_sets { name: "default/demo/api/0" endpoints { address: "127.0.0.1" port: 19001 ready: true } }
  backend_sets {
    name: "default/demo/app/0"
    endpoints { address: "127.0.0.1" port: 19002 ready: true }
    endpoints { address: "127.0.0.2" port: 19002 ready: false }
    endpoints { address: "::1" port: 19003 ready: true }
  }
  backend_sets { name: "default/demo/cache/0" endpoints { address: "127.0.0.1" port: 16380 ready: true } }
)pb";

TEST(CompileTest, ValidSnapshotCompiles) {
  const auto r = Compile(Parse(kValid), 42, {});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();
  const RuntimeConfig& c = *r.config;
  EXPECT_EQ(c.version, 42u);
  ASSERT_EQ(c.listeners.size(), 2u);

  const Listener* http = c.FindListener("http-18080");
  ASSERT_NE(http, nullptr);
  EXPECT_EQ(http->port, 18080);
  EXPECT_TRUE(http->is_l7());
  EXPECT_TRUE(http->served);
  EXPECT_EQ(http->idle_timeout, kDefaultL7IdleTimeout);
  ASSERT_EQ(http->routes.size(), 2u);
  EXPECT_EQ(http->routes[0]->name, "default/demo/api");  // listener order, not snapshot order
  EXPECT_EQ(http->routes[0]->connect_timeout, Millis(250));
  EXPECT_EQ(http->routes[1]->connect_timeout, kDefaultConnectTimeout);
  EXPECT_EQ(http->routes[0]->match.exact_hosts, std::vector<std::string>{"app.local"});
  EXPECT_EQ(http->routes[0]->match.path.value, "/api");
  EXPECT_EQ(http->routes[1]->match.wildcard_suffixes, std::vector<std::string>{".local"});

  const Listener* tcp = c.FindListener("tcp-16379");
  ASSERT_NE(tcp, nullptr);
  EXPECT_FALSE(tcp->is_l7());
  EXPECT_EQ(tcp->idle_timeout, Millis(1000));
  ASSERT_EQ(tcp->routes.size(), 1u);
  const Endpoint* e = tcp->routes[0]->PickEndpoint();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->key, "127.0.0.1:16380");
}

TEST(CompileTest, PickerSkipsUnreadyEndpointsAndHonoursSetWeights) {
  const auto r = Compile(Parse(kValid), 1, {});
  ASSERT_TRUE(r.ok()) << r.error;
  const Route* app = r.config->FindRoute("default/demo/app");
  ASSERT_NE(app, nullptr);
  EXPECT_EQ(app->eligible_endpoints(), 3u);  // 2 ready in set 0 + 1 in set 1
  std::map<std::string, int> counts;
  for (int i = 0; i < 8; ++i) counts[app->PickEndpoint()->key]++;
  // Weight 3:1 between sets; set 0 alternates its two ready endpoints.
  EXPECT_EQ(counts["127.0.0.1:19002"], 3);
  EXPECT_EQ(counts["[::1]:19003"], 3);
  EXPECT_EQ(counts["127.0.0.1:19001"], 2);
  EXPECT_EQ(counts.count("127.0.0.2:19002"), 0u);
}

TEST(CompileTest, LocalOnlyKeepsThisNodesEndpoints) {
  const auto r = Compile(Parse(R"pb(
    listeners { name: "tcp-1" port: 1 protocol: TCP routes: "r" }
    routes { name: "r" listener: "tcp-1" backends { backend_set: "s" weight: 1 } }
    backend_sets {
      name: "s" local_only: true
      endpoints { address: "10.0.0.1" port: 80 ready: true node_name: "n1" }
      endpoints { address: "10.0.0.2" port: 80 ready: true node_name: "n2" }
    }
  )pb"),
                         1, {.node_name = "n2", .tls_builder = nullptr, .backend_tls_builder = nullptr});
  ASSERT_TRUE(r.ok()) << r.error;
  const Route* route = r.config->FindRoute("r");
  EXPECT_EQ(route->eligible_endpoints(), 1u);
  EXPECT_EQ(route->PickEndpoint()->address, "10.0.0.2");
}

TEST(CompileTest, L4ConnectAttemptsFollowTheRetriesPolicy) {
  struct Case {
    const char* policy;
    uint32_t attempts;
  } cases[] = {{"", 3}, {"policy { retries { attempts: 0 } }", 1}, {"policy { retries { attempts: 4 on: \"connect-failure\" } }", 5},
               {"policy { retries { attempts: 9 } }", 10}, {"policy { retries { attempts: 10 } }", 11}};
  for (const auto& c : cases) {
    const auto r = Compile(Parse(std::string(R"pb(
      listeners { name: "tcp-1" port: 1 protocol: TCP routes: "r" }
      routes { name: "r" listener: "tcp-1" backends { backend_set: "s" weight: 1 } )pb") + c.policy + R"pb( }
      backend_sets { name: "s" endpoints { address: "10.0.0.1" port: 80 ready: true } }
    )pb"),
                           1, {});
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.config->FindRoute("r")->l4_connect_attempts, c.attempts) << c.policy;
    EXPECT_TRUE(r.warnings.empty()) << c.policy << ": " << (r.warnings.empty() ? "" : r.warnings[0]);
  }
  // Beyond the CRD's 10 (a snapshot not from the controller): capped, and said in the ACK.
  const auto r = Compile(Parse(R"pb(
    listeners { name: "http-1" port: 1 protocol: HTTP routes: "r" }
    routes { name: "r" listener: "http-1" backends { backend_set: "s" weight: 1 } policy { retries { attempts: 50 } } }
    backend_sets { name: "s" endpoints { address: "10.0.0.1" port: 80 ready: true } }
  )pb"),
                         1, {});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.config->FindRoute("r")->retry_attempts, 10u);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("attempts: 50 capped at 10"), std::string::npos) << r.warnings[0];
}

struct ErrorCase {
  const char* name;
  const char* snapshot;
  const char* error_substring;
};

class CompileErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(CompileErrorTest, IsRejectedWithANamedObject) {
  const auto r = Compile(Parse(GetParam().snapshot), 7, {});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.config, nullptr);
  EXPECT_NE(r.error.find(GetParam().error_substring), std::string::npos) << r.error;
}

INSTANTIATE_TEST_SUITE_P(
    Table, CompileErrorTest,
    testing::Values(
        ErrorCase{"UnknownListenerInRoute",
                  R"pb(routes { name: "r" listener: "http-1" })pb",
                  "route \"r\".listener: unknown listener \"http-1\""},
        ErrorCase{"UnknownRouteInListener",
                  R"pb(listeners { name: "http-1" port: 1 protocol: HTTP routes: "nope" })pb",
                  "listener \"http-1\".routes: unknown route \"nope\""},
        ErrorCase{"RouteOfAnotherListener",
                  R"pb(listeners { name: "http-1" port: 1 protocol: HTTP routes: "r" }
                       listeners { name: "http-2" port: 2 protocol: HTTP }
                       routes { name: "r" listener: "http-2" })pb",
                  "belongs to listener \"http-2\""},
        ErrorCase{"UnknownBackendSet",
                  R"pb(listeners { name: "http-1" port: 1 protocol: HTTP }
                       routes { name: "r" listener: "http-1" backends { backend_set: "missing" weight: 1 } })pb",
                  "route \"r\".backends: unknown backend set \"missing\""},
        ErrorCase{"DuplicatePort",
                  R"pb(listeners { name: "http-80" port: 80 protocol: HTTP }
                       listeners { name: "tcp-80" port: 80 protocol: TCP })pb",
                  "listener \"tcp-80\".port: 80 is already used by listener \"http-80\""},
        ErrorCase{"UnknownProtocol",
                  R"pb(listeners { name: "x-1" port: 1 })pb",
                  "listener \"x-1\".protocol: unknown or unspecified protocol"},
        ErrorCase{"PortOutOfRange",
                  R"pb(listeners { name: "tcp-70000" port: 70000 protocol: TCP })pb",
                  "listener \"tcp-70000\".port: 70000 out of range"},
        ErrorCase{"DuplicateListener",
                  R"pb(listeners { name: "a" port: 1 protocol: TCP } listeners { name: "a" port: 2 protocol: TCP })pb",
                  "listener \"a\": duplicate name"},
        ErrorCase{"BadRegex",
                  R"pb(listeners { name: "http-1" port: 1 protocol: HTTP }
                       routes { name: "r" listener: "http-1" match { path { type: REGULAR_EXPRESSION value: "/(a" } } })pb",
                  "route \"r\".match.path: invalid regular expression"},
        ErrorCase{"PrefixWithoutSlash",
                  R"pb(listeners { name: "http-1" port: 1 protocol: HTTP }
                       routes { name: "r" listener: "http-1" match { path { type: PREFIX value: "api" } } })pb",
                  "route \"r\".match.path: prefix \"api\" must start with '/'"},
        ErrorCase{"EndpointNotAnIp",
                  R"pb(backend_sets { name: "s" endpoints { address: "db.example.com" port: 5432 } })pb",
                  "backend set \"s\" endpoints[0].address: \"db.example.com\" is not an IP address"},
        ErrorCase{"CookiePathWithASemicolon",
                  R"pb(listeners { name: "http-1" port: 1 protocol: HTTP }
                       routes {
                         name: "r" listener: "http-1"
                         policy { stickiness { type: COOKIE cookie_path: "/a; Domain=x" } }
                       })pb",
                  "route \"r\".policy.stickiness.cookie_path: invalid cookie path \"/a; Domain=x\""},
        ErrorCase{"RelativeCookiePath",
                  R"pb(listeners { name: "http-1" port: 1 protocol: HTTP }
                       routes { name: "r" listener: "http-1" policy { stickiness { type: COOKIE cookie_path: "a" } } })pb",
                  "route \"r\".policy.stickiness.cookie_path: invalid cookie path \"a\""},
        ErrorCase{"EndpointPortZero",
                  R"pb(backend_sets { name: "s" endpoints { address: "10.0.0.1" } })pb",
                  "backend set \"s\" endpoints[0].port: 0 out of range"}),
    [](const testing::TestParamInfo<ErrorCase>& p) { return std::string(p.param.name); });

TEST(CompileTest, UdpAndTcpMayShareAPortNumber) {
  const auto r = Compile(Parse(R"pb(listeners { name: "tcp-53" port: 53 protocol: TCP }
                                  listeners { name: "udp-53" port: 53 protocol: UDP })pb"),
                         1, {});
  ASSERT_TRUE(r.ok()) << r.error;
}

bool HasWarning(const CompileResult& r, const std::string& needle) {
  for (const auto& w : r.warnings) {
    if (w.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST(CompileTest, UnprogrammedFeaturesAreWarnedOneLineEach) {
  const auto r = Compile(Parse(R"pb(
    listeners { name: "udp-53" port: 53 protocol: UDP }
    listeners { name: "https-443" port: 443 protocol: HTTPS }
    listeners { name: "tls-8443" port: 8443 protocol: TLS }
    listeners {
      name: "http-80" port: 80 protocol: HTTP routes: "ns/lb/web"
      proxy_protocol { accept: true send: PROXY_PROTOCOL_V1 } allowed_source_ranges: "10.0.0.0/8"
    }
    listeners { name: "tcp-9" port: 9 protocol: TCP routes: "ns/lb/a" routes: "ns/lb/b" }
    routes {
      name: "ns/lb/web" listener: "http-80"
      policy {
        scheduler: "bogus"
        stickiness { type: COOKIE cookie_name: "x" }
        retries { attempts: 2 }
        rate_limit { requests_per_second: 10 }
      }
      filters { redirect { enabled: true scheme: "https" } }
      backends { backend_set: "s" weight: 0 }
    }
    routes { name: "ns/lb/a" listener: "tcp-9" match { hosts: "x" } }
    routes { name: "ns/lb/b" listener: "tcp-9" }
    routes { name: "ns/lb/orphan" listener: "http-80" }
    backend_sets { name: "s" health_check { protocol: HTTP path: "/" } }
  )pb"),
                         1, {});
  ASSERT_TRUE(r.ok()) << r.error;
  for (const char* w : {"listener \"udp-53\": no routes",
                        "listener \"https-443\": protocol HTTPS is not served",
                        "listener \"tls-8443\": no routes",
                        "listener \"http-80\": PROXY protocol send is not implemented",
                        "route \"ns/lb/web\": unknown scheduler \"bogus\"",
                        "route \"ns/lb/web\": every backend has weight 0",
                        "route \"ns/lb/a\": HTTP match fields ignored",
                        "route \"ns/lb/b\" is not used",
                        "route \"ns/lb/orphan\": not listed"}) {
    EXPECT_TRUE(HasWarning(r, w)) << "missing warning: " << w;
  }
  EXPECT_EQ(r.warnings.size(), 9u) << ::testing::PrintToString(r.warnings);
  EXPECT_TRUE(r.config->FindListener("udp-53")->served);
  EXPECT_TRUE(r.config->FindListener("http-80")->served);
  EXPECT_TRUE(r.config->FindListener("http-80")->proxy_protocol_accept);  // the L7 proxy accepts
  EXPECT_EQ(r.config->FindRoute("ns/lb/web")->PickEndpoint(), nullptr);
}

// Two sets check one endpoint differently: both checks run, each deciding for its own set (no
// warning); the same check in two sets is one verdict.
TEST(CompileTest, DifferentChecksOfAnEndpointEachRunForTheirOwnSets) {
  const auto r = Compile(Parse(R"pb(
    backend_sets {
      name: "a" endpoints { address: "10.0.0.1" port: 80 ready: true }
      health_check { protocol: HTTP path: "/healthz" }
    }
    backend_sets {
      name: "b" endpoints { address: "10.0.0.1" port: 80 ready: true } endpoints { address: "10.0.0.2" port: 80 ready: true }
      health_check { protocol: TCP }
    }
    backend_sets {
      name: "c" endpoints { address: "10.0.0.1" port: 80 ready: true }
      health_check { protocol: HTTP path: "/healthz" }
    }
  )pb"),
                         1, {});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.warnings.empty()) << ::testing::PrintToString(r.warnings);
  const auto& sets = r.config->backend_sets;
  EXPECT_NE(sets[0]->endpoints[0].health, sets[1]->endpoints[0].health);
  EXPECT_EQ(sets[0]->endpoints[0].health, sets[2]->endpoints[0].health);
}

// A new snapshot must not hand every client a fresh burst: the same limits on the same route
// keep their token buckets; other limits or another key start over.
TEST(CompileTest, RateLimitBucketsSurviveASnapshotWithTheSameLimits) {
  auto snapshot = [](int rps, int burst, const char* key) {
    return Parse(std::string(R"pb(
      listeners { name: "http-80" port: 80 protocol: HTTP routes: "ns/lb/web" }
      routes { name: "ns/lb/web" listener: "http-80" backends { backend_set: "s" }
               policy { rate_limit { requests_per_second: )pb") + std::to_string(rps) + " burst: " +
                 std::to_string(burst) + " key: \"" + key + R"pb(" } } }
      backend_sets { name: "s" endpoints { address: "127.0.0.1" port: 1 ready: true } }
    )pb");
  };
  const auto first = Compile(snapshot(1, 2, "ClientIP"), 1, {});
  ASSERT_TRUE(first.ok()) << first.error;
  const auto limiter = first.config->FindRoute("ns/lb/web")->rate_limiter;
  ASSERT_NE(limiter, nullptr);
  uint32_t retry = 0;
  const SteadyTime t0{};
  EXPECT_TRUE(limiter->Allow("c", t0, &retry));
  EXPECT_TRUE(limiter->Allow("c", t0, &retry));
  EXPECT_FALSE(limiter->Allow("c", t0, &retry));

  CompileOptions opts;
  opts.previous = first.config.get();
  const auto same = Compile(snapshot(1, 2, "ClientIP"), 2, opts);
  ASSERT_TRUE(same.ok()) << same.error;
  EXPECT_EQ(same.config->FindRoute("ns/lb/web")->rate_limiter, limiter);
  EXPECT_FALSE(same.config->FindRoute("ns/lb/web")->rate_limiter->Allow("c", t0, &retry));  // still empty

  for (const auto& [rps, burst, key] : {std::tuple{2, 2, "ClientIP"}, std::tuple{1, 3, "ClientIP"},
                                        std::tuple{1, 2, "Header:X-User"}}) {
    const auto other = Compile(snapshot(rps, burst, key), 3, opts);
    ASSERT_TRUE(other.ok()) << other.error;
    EXPECT_NE(other.config->FindRoute("ns/lb/web")->rate_limiter, limiter) << rps << " " << burst << " " << key;
  }
}

// RateLimit.bucket: the routes naming one bucket (an Ingress's paths) share one limiter when
// their key and limits agree, keep it across snapshots, and another bucket or other limits get
// their own.
TEST(CompileTest, RoutesNamingOneRateLimitBucketShareIt) {
  auto snapshot = [](const char* bucket_b, int rps_c) {
    auto route = [](const std::string& name, const std::string& bucket, int rps) {
      return "routes { name: \"" + name + "\" listener: \"http-80\" backends { backend_set: \"s\" } " +
             "policy { rate_limit { requests_per_second: " + std::to_string(rps) + " burst: 1 key: \"ClientIP\" " +
             "bucket: \"" + bucket + "\" } } }\n";
    };
    return Parse(std::string(R"pb(
      listeners { name: "http-80" port: 80 protocol: HTTP routes: "ns/ingress:a/p0" routes: "ns/ingress:a/p1"
                  routes: "ns/ingress:a/p2" routes: "ns/ingress:b/p0" routes: "ns/lb/own" }
      backend_sets { name: "s" endpoints { address: "127.0.0.1" port: 1 ready: true } }
    )pb") + route("ns/ingress:a/p0", "ns/ingress:a", 1) + route("ns/ingress:a/p1", bucket_b, 1) +
                 route("ns/ingress:a/p2", "ns/ingress:a", rps_c) + route("ns/ingress:b/p0", "ns/ingress:b", 1) +
                 route("ns/lb/own", "", 1));
  };
  const auto first = Compile(snapshot("ns/ingress:a", 1), 1, {});
  ASSERT_TRUE(first.ok()) << first.error;
  auto limiter = [](const CompileResult& r, const char* route) { return r.config->FindRoute(route)->rate_limiter; };
  const auto a = limiter(first, "ns/ingress:a/p0");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(limiter(first, "ns/ingress:a/p1"), a);
  EXPECT_EQ(limiter(first, "ns/ingress:a/p2"), a);
  EXPECT_NE(limiter(first, "ns/ingress:b/p0"), a);
  EXPECT_NE(limiter(first, "ns/lb/own"), a);
  // One request through p0 empties the client's bucket for p1 too.
  uint32_t retry = 0;
  EXPECT_TRUE(limiter(first, "ns/ingress:a/p0")->Allow("c", SteadyTime{}, &retry));
  EXPECT_FALSE(limiter(first, "ns/ingress:a/p1")->Allow("c", SteadyTime{}, &retry));

  CompileOptions opts;
  opts.previous = first.config.get();
  const auto next = Compile(snapshot("other", 2), 2, opts);
  ASSERT_TRUE(next.ok()) << next.error;
  EXPECT_EQ(limiter(next, "ns/ingress:a/p0"), a);  // kept across snapshots
  EXPECT_NE(limiter(next, "ns/ingress:a/p1"), a);  // another bucket
  EXPECT_NE(limiter(next, "ns/ingress:a/p2"), a);  // other limits

  // A new path of the Ingress that compiles first (and the old ones renamed): the group keeps
  // its buckets, not only routes that existed by name.
  CompileOptions after_next;
  after_next.previous = next.config.get();
  const auto renamed = Compile(Parse(R"pb(
      listeners { name: "http-80" port: 80 protocol: HTTP routes: "ns/ingress:a/new" routes: "ns/ingress:a/q0" }
      routes { name: "ns/ingress:a/new" listener: "http-80" backends { backend_set: "s" }
               policy { rate_limit { requests_per_second: 1 burst: 1 key: "ClientIP" bucket: "ns/ingress:a" } } }
      routes { name: "ns/ingress:a/q0" listener: "http-80" backends { backend_set: "s" }
               policy { rate_limit { requests_per_second: 1 burst: 1 key: "ClientIP" bucket: "ns/ingress:a" } } }
      backend_sets { name: "s" endpoints { address: "127.0.0.1" port: 1 ready: true } }
    )pb"),
                               3, after_next);
  ASSERT_TRUE(renamed.ok()) << renamed.error;
  EXPECT_EQ(limiter(renamed, "ns/ingress:a/new"), a);
  EXPECT_EQ(limiter(renamed, "ns/ingress:a/q0"), a);
  EXPECT_FALSE(limiter(renamed, "ns/ingress:a/q0")->Allow("c", SteadyTime{}, &retry));  // still empty
}

TEST(CompileTest, FiltersAndForwardedHeaders) {
  const auto r = Compile(Parse(R"pb(
    listeners { name: "http-80" port: 80 protocol: HTTP routes: "r" }
    routes {
      name: "r" listener: "http-80"
      match { path { type: PREFIX value: "/api/" } }
      filters {
        redirect { enabled: true scheme: "HTTPS" port: 8443 status_code: 308 }
        rewrite { enabled: true path_prefix: "/" host: "internal" }
        request_headers { set { key: "x-env" value: "prod" } add { key: "x-b" value: "1" } remove: "x-debug" }
        response_headers { remove: "server" }
      }
      forwarded_headers { x_forwarded_for: REPLACE trusted_proxies: "10.0.0.0/8" trusted_proxies: "::1" }
    }
  )pb"),
                         1, {});
  ASSERT_TRUE(r.ok()) << r.error;
  const Route* route = r.config->FindRoute("r");
  EXPECT_TRUE(route->redirect.enabled);
  EXPECT_EQ(route->redirect.scheme, "https");
  EXPECT_EQ(route->redirect.port, 8443u);
  EXPECT_EQ(route->redirect.status, 308u);
  EXPECT_EQ(route->rewrite.path_prefix, "/");
  EXPECT_EQ(route->rewrite.host, "internal");
  ASSERT_EQ(route->request_headers.set.size(), 1u);
  EXPECT_EQ(route->request_headers.add.size(), 1u);
  EXPECT_EQ(route->request_headers.remove.size(), 1u);
  EXPECT_EQ(route->response_headers.remove.size(), 1u);
  EXPECT_EQ(route->forwarded_for, ForwardedForMode::kReplace);
  ASSERT_EQ(route->trusted_proxies.size(), 2u);
  EXPECT_TRUE(l4::AnyContains(route->trusted_proxies, "10.9.9.9"));
  EXPECT_TRUE(l4::AnyContains(route->trusted_proxies, "::1"));
  EXPECT_FALSE(l4::AnyContains(route->trusted_proxies, "127.0.0.1"));

  for (const char* bad : {
           R"pb(forwarded_headers { trusted_proxies: "10.0.0.0/99" })pb",
           R"pb(filters { request_headers { set { key: "x-a" value: "a\r\nInjected: 1" } } })pb",
           R"pb(filters { response_headers { remove: "bad name" } })pb",
           R"pb(filters { response_headers { set { key: "Content-Length" value: "0" } } })pb",
           R"pb(filters { request_headers { remove: "transfer-encoding" } })pb",
           R"pb(filters { request_headers { add { key: "Connection" value: "close" } } })pb",
           R"pb(filters { request_headers { remove: "Host" } })pb",
           R"pb(filters { request_headers { add { key: "host" value: "b" } } })pb",
           R"pb(filters { redirect { enabled: true status_code: 200 } })pb",
           R"pb(filters { redirect { enabled: true scheme: "ftp" } })pb",
           R"pb(match { path { type: REGULAR_EXPRESSION value: "/a.*" } } filters { rewrite { enabled: true path_prefix: "/" } })pb",
       }) {
    const auto bad_r = Compile(Parse(std::string(R"pb(
      listeners { name: "http-80" port: 80 protocol: HTTP routes: "r" }
      routes { name: "r" listener: "http-80" )pb") + bad + " }"),
                               1, {});
    EXPECT_FALSE(bad_r.ok()) << bad;
    EXPECT_NE(bad_r.error.find("route \"r\""), std::string::npos) << bad_r.error;
  }
}

// Stands in for TlsClientContext::Build (the core has no TLS): records each CA, refuses "BAD",
// and returns a pointer that is never dereferenced.
CompileOptions::BackendTlsBuilder FakeBackendTlsBuilder(std::vector<std::string>* seen) {
  auto owner = std::make_shared<int>(0);
  return [seen, owner](const std::string& ca_pem, std::string* error) -> std::shared_ptr<const TlsClientContext> {
    seen->push_back(ca_pem);
    if (ca_pem == "BAD") {
      *error = "no usable certificate in the CA bundle";
      return nullptr;
    }
    return {owner, reinterpret_cast<const TlsClientContext*>(owner.get())};
  };
}

// HTTPS backends: the builder (TlsClientContext::Build in the dataplane; a fake here, the core has
// no TLS) gets the CA of each HTTPS route; an unusable CA fails that route closed, with a warning.
TEST(CompileTest, HttpsBackendsBuildAClientContextPerRoute) {
  const std::string snapshot = R"pb(
    listeners { name: "http-80" port: 80 protocol: HTTP routes: "ns/i/verified" routes: "ns/i/plain" routes: "ns/i/stray" }
    routes {
      name: "ns/i/verified" listener: "http-80" match { hosts: "a.test" }
      policy { backend_protocol: "HTTPS" backend_tls { ca_pem: "CA" server_name: "backend.test" } }
    }
    routes {
      name: "ns/i/plain" listener: "http-80" match { hosts: "b.test" }
      policy { backend_protocol: "HTTPS" }
    }
    routes {
      name: "ns/i/stray" listener: "http-80" match { hosts: "c.test" }
      policy { backend_tls { server_name: "backend.test" } }
    }
  )pb";
  std::vector<std::string> seen;
  CompileOptions opts;
  opts.backend_tls_builder = FakeBackendTlsBuilder(&seen);
  const auto r = Compile(Parse(snapshot), 1, opts);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(seen, (std::vector<std::string>{"CA", ""}));
  const Route* verified = r.config->FindRoute("ns/i/verified");
  EXPECT_NE(verified->backend_tls, nullptr);
  EXPECT_EQ(verified->backend_tls_server_name, "backend.test");
  const Route* plain = r.config->FindRoute("ns/i/plain");
  EXPECT_NE(plain->backend_tls, nullptr);
  EXPECT_EQ(plain->backend_tls_server_name, "");  // the request's Host
  EXPECT_EQ(r.config->FindRoute("ns/i/stray")->backend_tls, nullptr);
  EXPECT_TRUE(HasWarning(r, "route \"ns/i/stray\": policy.backend_tls ignored: the backend protocol is not HTTPS"))
      << ::testing::PrintToString(r.warnings);
  EXPECT_EQ(r.warnings.size(), 1u) << ::testing::PrintToString(r.warnings);

  // An unusable CA never becomes unverified TLS: that route fails closed (answers 502) with a
  // warning naming the field, and the rest of the snapshot is applied.
  std::string bad = snapshot;
  bad.replace(bad.find("ca_pem: \"CA\""), 12, "ca_pem: \"BAD\"");
  const auto bad_r = Compile(Parse(bad), 2, opts);
  ASSERT_TRUE(bad_r.ok()) << bad_r.error;
  const Route* failed = bad_r.config->FindRoute("ns/i/verified");
  EXPECT_EQ(failed->backend_tls, nullptr);
  EXPECT_NE(failed->backend_tls_error.find("no usable certificate in the CA bundle"), std::string::npos);
  EXPECT_TRUE(HasWarning(bad_r, "route \"ns/i/verified\".policy.backend_tls.ca_pem: no usable certificate in the CA "
                                "bundle; the route answers 502"))
      << ::testing::PrintToString(bad_r.warnings);

  // Without a builder (a build without TLS to backends) HTTPS is warned and spoken as HTTP/1.1.
  const auto no_tls = Compile(Parse(snapshot), 3, {});
  ASSERT_TRUE(no_tls.ok()) << no_tls.error;
  EXPECT_EQ(no_tls.config->FindRoute("ns/i/verified")->backend_tls, nullptr);
  EXPECT_TRUE(HasWarning(no_tls, "route \"ns/i/verified\": backend protocol HTTPS is not implemented by this build"))
      << ::testing::PrintToString(no_tls.warnings);
  EXPECT_TRUE(HasWarning(no_tls, "route \"ns/i/plain\": backend protocol HTTPS is not implemented by this build"));
}

// HealthCheck.tls: the probes get a client context built like a route's (the same builder), and
// a check that cannot run as declared is warned and not run, so that plaintext probes never mark
// a TLS backend down. The CA and the name are part of what tells checks apart.
TEST(CompileTest, AHealthCheckOverTlsGetsItsContextOrIsNotRun) {
  const std::string snapshot = R"pb(
    backend_sets {
      name: "verified"
      endpoints { address: "10.0.0.1" port: 443 ready: true }
      health_check { protocol: HTTP path: "/healthz" tls { ca_pem: "CA" server_name: "backend.test" } }
    }
    backend_sets {
      name: "unverified"
      endpoints { address: "10.0.0.1" port: 443 ready: true }
      health_check { protocol: HTTP path: "/healthz" tls {} }
    }
    backend_sets {
      name: "plain"
      endpoints { address: "10.0.0.1" port: 443 ready: true }
      health_check { protocol: HTTP path: "/healthz" }
    }
    backend_sets {
      name: "tcp"
      endpoints { address: "10.0.0.1" port: 443 ready: true }
      health_check { protocol: TCP tls {} }
    }
    backend_sets {
      name: "grpc"
      endpoints { address: "10.0.0.1" port: 443 ready: true }
      health_check { protocol: GRPC tls {} }
    }
    backend_sets {
      name: "nameless"
      endpoints { address: "10.0.0.1" port: 443 ready: true }
      health_check { protocol: HTTP path: "/healthz" tls { ca_pem: "CA" } }
    }
    backend_sets {
      name: "bad-ca"
      endpoints { address: "10.0.0.1" port: 443 ready: true }
      health_check { protocol: HTTP path: "/healthz" tls { ca_pem: "BAD" server_name: "backend.test" } }
    }
  )pb";
  std::vector<std::string> seen;
  CompileOptions opts;
  opts.backend_tls_builder = FakeBackendTlsBuilder(&seen);
  const auto r = Compile(Parse(snapshot), 1, opts);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(seen, (std::vector<std::string>{"CA", "", "BAD"}));
  auto set = [&](const std::string& name) -> const BackendSet& {
    for (const auto& s : r.config->backend_sets) {
      if (s->name == name) return *s;
    }
    ADD_FAILURE() << name;
    return *r.config->backend_sets.front();
  };
  const BackendSet& verified = set("verified");
  EXPECT_NE(verified.health_tls, nullptr);
  EXPECT_EQ(verified.health_check.protocol, health::CheckProtocol::kHttp);
  EXPECT_EQ(verified.health_check.tls_server_name, "backend.test");
  EXPECT_EQ(set("unverified").health_check.tls_id, "unverified");
  EXPECT_NE(set("unverified").health_tls, nullptr);
  EXPECT_EQ(set("plain").health_tls, nullptr);
  EXPECT_EQ(set("plain").health_check.tls_id, "");
  // Same endpoint, different checks: separate verdicts.
  EXPECT_NE(verified.endpoints[0].health, set("unverified").endpoints[0].health);
  EXPECT_NE(verified.endpoints[0].health, set("plain").endpoints[0].health);
  // A TCP check only connects: it runs, the TLS part is warned.
  EXPECT_EQ(set("tcp").health_check.protocol, health::CheckProtocol::kTcp);
  EXPECT_TRUE(HasWarning(r, "backend set \"tcp\".health_check.tls ignored: a TCP check only connects"))
      << ::testing::PrintToString(r.warnings);
  for (const char* name : {"grpc", "nameless", "bad-ca"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(set(name).health_check.protocol, health::CheckProtocol::kNone);
    EXPECT_EQ(set(name).endpoints[0].health, nullptr);  // not actively checked: routed as ready
  }
  EXPECT_TRUE(HasWarning(r, "backend set \"grpc\".health_check.tls: only HTTP checks can probe over TLS; the set is "
                            "not actively checked"));
  EXPECT_TRUE(HasWarning(r, "backend set \"nameless\".health_check.tls: a CA without a server_name verifies no name; "
                            "the set is not actively checked"));
  EXPECT_TRUE(HasWarning(r, "backend set \"bad-ca\".health_check.tls.ca_pem: no usable certificate in the CA bundle; "
                            "the set is not actively checked"));
  EXPECT_EQ(r.warnings.size(), 4u) << ::testing::PrintToString(r.warnings);

  // Without a builder (a build without TLS) no TLS check runs: said, not probed in plaintext.
  const auto no_tls = Compile(Parse(snapshot), 2, {});
  ASSERT_TRUE(no_tls.ok()) << no_tls.error;
  EXPECT_TRUE(HasWarning(no_tls, "backend set \"verified\".health_check.tls: this build has no TLS; the set is not "
                                 "actively checked"))
      << ::testing::PrintToString(no_tls.warnings);
}

}  // namespace
}  // namespace doorman::dataplane
