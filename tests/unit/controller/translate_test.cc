#include "controller/translate/translate.h"
#include "tests/unit/controller/translate_test_util.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "controller/source/manifest.h"

namespace doorman::controller {
namespace {

namespace v1 = doorman::v1;
using namespace doorman::controller::testing;  // NOLINT(build/namespaces): shared test helpers

// Builds an object store from YAML files: {path, text}.
ObjectStore Store(const std::vector<std::pair<std::string, std::string>>& files) {
  ManifestSet set;
  for (const auto& [path, text] : files) {
    auto parsed = ParseManifests(text, path);
    EXPECT_TRUE(parsed.errors.empty()) << path << ": " << parsed.errors[0].ToString();
    set.ApplyFile(path, std::move(parsed), nullptr);
  }
  return set.objects();
}
ObjectStore Store(const std::string& text) { return Store({{"/m/test.yaml", text}}); }

// A LoadBalancer "default/<name>" with the given spec body (indented by two spaces).
std::string Lb(const std::string& spec, const std::string& name = "shop", const std::string& created = "") {
  return "apiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata:\n  name: " + name +
         "\n  namespace: default\n" + (created.empty() ? "" : "  creationTimestamp: \"" + created + "\"\n") +
         "spec:\n" + spec;
}

std::string Text(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::TextFormat::PrintToString(m, &out);
  return out;
}

const ObjectStatus* StatusOf(const TranslateResult& r, const std::string& name) {
  for (const auto& st : r.statuses) {
    if (st.key.name == name) return &st;
  }
  return nullptr;
}

std::vector<std::string> ListenerRoutes(const v1::Snapshot& s, const std::string& listener) {
  for (const auto& l : s.listeners()) {
    if (l.name() == listener) return {l.routes().begin(), l.routes().end()};
  }
  return {"<no listener " + listener + ">"};
}

constexpr const char* kBasic = R"(  listeners:
    - {name: web, port: 8080, protocol: HTTP}
    - {name: cache, port: 6379, protocol: TCP}
  routes:
    - name: app
      listener: web
      backends: [{endpoints: [{address: 127.0.0.1, port: 9001}]}]
    - name: redis
      listener: cache
      backends: [{endpoints: [{address: 127.0.0.1, port: 6380}]}]
)";

// ---- golden: every field -----------------------------------------------------------------------

TEST(Translate, FullObjectMatchesGolden) {
  const std::string dir = DOORMAN_CONTROLLER_TESTDATA;
  Translator t;
  auto r = t.Translate(Store({{dir + "/full.yaml", ReadFile(dir + "/full.yaml")}}));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_NE(st, nullptr);
  EXPECT_TRUE(st->accepted) << st->message;
  EXPECT_EQ(st->generation, 3);
  ASSERT_EQ(st->listeners.size(), 3u);
  EXPECT_EQ(st->listeners[0].name, "web");
  EXPECT_EQ(st->listeners[0].attached_routes, 3u);
  EXPECT_EQ(st->listeners[1].attached_routes, 1u);
  // Service api-v2 does not exist. (Route "old" has no backends but redirects: no warning.)
  // The UDP listener's backends are not health-checked.
  ASSERT_EQ(st->warnings.size(), 2u);
  EXPECT_EQ(st->warnings[0].reason, "BackendNotFound");
  EXPECT_EQ(st->warnings[0].field, "spec.routes[0].backends[1].service");
  EXPECT_EQ(st->warnings[1].reason, "HealthCheckNotRun");
  EXPECT_EQ(st->warnings[1].field, "spec.healthCheck");

  const std::string golden_path = dir + "/full.snapshot.txtpb";
  const std::string actual = Text(r.snapshot);
  if (std::getenv("DOORMAN_UPDATE_GOLDEN")) {
    std::ofstream(golden_path) << actual;
  }
  EXPECT_EQ(actual, ReadFile(golden_path)) << "run with DOORMAN_UPDATE_GOLDEN=1 to update " << golden_path;
}

TEST(Translate, NamingRules) {
  Translator t;
  auto r = t.Translate(Store(Lb(kBasic)));
  ASSERT_EQ(r.snapshot.listeners_size(), 2);
  EXPECT_EQ(r.snapshot.listeners(0).name(), "http-8080");
  EXPECT_EQ(r.snapshot.listeners(1).name(), "tcp-6379");
  EXPECT_EQ(r.snapshot.routes(0).name(), "default/shop/app");
  EXPECT_EQ(r.snapshot.routes(0).listener(), "http-8080");
  EXPECT_EQ(r.snapshot.backend_sets(0).name(), "default/shop/app/0");
  EXPECT_EQ(r.snapshot.routes(0).backends(0).backend_set(), "default/shop/app/0");
  EXPECT_EQ(r.snapshot.routes(0).backends(0).weight(), 1u);
  EXPECT_EQ(r.snapshot.listeners(0).owners(0).name(), "shop");
  EXPECT_TRUE(r.diagnostics.empty());
}

// ---- invalid objects: exact reason and field -------------------------------------------------------

struct InvalidCase {
  const char* name;
  const char* spec;
  const char* reason;
  const char* field;
  const char* message;  // substring of the status message
};

const InvalidCase kInvalid[] = {
    {"path type", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - {name: a, listener: web, match: {path: {type: Glob, value: /x}}}
)",
     "UnsupportedValue", "spec.routes[0].match.path.type",
     "unknown path type \"Glob\" (want Exact, Prefix or RegularExpression)"},
    {"listener name", "  listeners: [{name: Web, port: 80, protocol: HTTP}]\n", "InvalidSpec", "spec.listeners[0].name",
     "not a DNS-1123 label"},
    {"duplicate listener name", "  listeners: [{name: web, port: 80, protocol: HTTP}, {name: web, port: 81, protocol: HTTP}]\n",
     "InvalidSpec", "spec.listeners[1].name", "duplicate listener name \"web\" (also spec.listeners[0])"},
    {"duplicate port", "  listeners: [{name: a, port: 80, protocol: HTTP}, {name: b, port: 80, protocol: TCP}]\n",
     "InvalidSpec", "spec.listeners[1].port", "port 80 is already used by spec.listeners[0]"},
    {"protocol", "  listeners: [{name: a, port: 80, protocol: SCTP}]\n", "UnsupportedValue", "spec.listeners[0].protocol",
     "unknown protocol \"SCTP\""},
    {"port range", "  listeners: [{name: a, port: 70000, protocol: TCP}]\n", "InvalidSpec", "spec.listeners[0].port",
     "70000 is out of range (1..65535)"},
    {"port as string", "  listeners: [{name: a, port: \"80\", protocol: TCP}]\n", "InvalidSpec", "spec.listeners[0].port",
     "must be an integer, not a string"},
    {"unknown listener", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: api}]
)",
     "InvalidSpec", "spec.routes[0].listener", "no listener named \"api\""},
    {"header type", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {headers: [{name: x, type: Prefix, value: y}]}}]
)",
     "UnsupportedValue", "spec.routes[0].match.headers[0].type", "unknown header match type \"Prefix\""},
    {"duration", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {timeouts: {connect: 5 s}}}]
)",
     "InvalidSpec", "spec.routes[0].policy.timeouts.connect", "invalid duration \"5 s\""},
    {"retries on UDP", R"(  listeners: [{name: dns, port: 53, protocol: UDP}]
  routes: [{name: a, listener: dns, policy: {retries: {attempts: 2}}}]
)",
     "UnsupportedValue", "spec.routes[0].policy.retries", "a UDP listener has no connect to retry"},
    // "true" is how kubectl (YAML 1.1) delivers an unquoted on: key; both at once is refused.
    {"retries on and true", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {retries: {"on": [reset], "true": ["503"]}}}]
)",
     "InvalidSpec", "spec.routes[0].policy.retries.true", "both \"on\" and \"true\""},
    {"connect timeout on UDP", R"(  listeners: [{name: dns, port: 53, protocol: UDP}]
  routes: [{name: a, listener: dns, policy: {timeouts: {connect: 2s}}}]
)",
     "UnsupportedValue", "spec.routes[0].policy.timeouts.connect", "a UDP listener does not connect"},
    {"expected status as a string", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  healthCheck: {protocol: HTTP, expectedStatuses: ["200"]}
)",
     "InvalidSpec", "spec.healthCheck.expectedStatuses[0]", "must be an integer HTTP status code, not a string \"200\""},
    {"expected status out of range", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  healthCheck: {protocol: HTTP, expectedStatuses: [700]}
)",
     "InvalidSpec", "spec.healthCheck.expectedStatuses[0]", "700 is not an HTTP status code (100..599)"},
    {"duration over the maximum", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {stickiness: {type: Cookie, ttl: 8760h}}}]
)",
     "InvalidSpec", "spec.routes[0].policy.stickiness.ttl", "is too long (at most 1193h, about 49 days)"},
    {"duration below a millisecond", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {timeouts: {connect: 1500us}}}]
)",
     "InvalidSpec", "spec.routes[0].policy.timeouts.connect", "has a part below one millisecond"},
    {"duration in microseconds", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {timeouts: {connect: "500\u00b5s"}}}]
)",
     "InvalidSpec", "spec.routes[0].policy.timeouts.connect", "has a part below one millisecond"},
    {"duration without a unit", R"(  listeners: [{name: web, port: 80, protocol: HTTP, idleTimeout: "0"}]
)",
     "InvalidSpec", "spec.listeners[0].idleTimeout", "invalid duration \"0\" (a unit is required, e.g. 500ms"},
    {"scheduler", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {scheduler: random}}]
)",
     "UnsupportedValue", "spec.routes[0].policy.scheduler", "unknown scheduler \"random\""},
    {"weight", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, backends: [{endpoints: [{address: 10.0.0.1, port: 1}], weight: -1}]}]
)",
     "InvalidSpec", "spec.routes[0].backends[0].weight", "-1 is out of range"},
    {"regex", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {path: {type: RegularExpression, value: "/(x"}}}]
)",
     "InvalidSpec", "spec.routes[0].match.path.value", "invalid regular expression \"/(x\""},
    {"https without certificates", "  listeners: [{name: web, port: 443, protocol: HTTPS}]\n", "InvalidSpec",
     "spec.listeners[0].tls.certificates", "an HTTPS listener needs at least one certificate"},
    {"missing secret", "  listeners: [{name: web, port: 443, protocol: HTTPS, tls: {certificates: [{secretName: nope}]}}]\n",
     "InvalidCertificateRef", "spec.listeners[0].tls.certificates[0].secretName", "Secret default/nope not found"},
    {"stickiness type", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {stickiness: {type: Header}}}]
)",
     "UnsupportedValue", "spec.routes[0].policy.stickiness.type", "unknown stickiness type \"Header\""},
    {"cookie path with a semicolon", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {stickiness: {type: Cookie, path: "/a;Domain=x"}}}]
)",
     "InvalidSpec", "spec.routes[0].policy.stickiness.path", "cookie path \"/a;Domain=x\" must not contain ';'"},
    {"cookie path with an attribute after a space", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {stickiness: {type: Cookie, path: "/a; Domain=x"}}}]
)",
     "InvalidSpec", "spec.routes[0].policy.stickiness.path", "cookie path \"/a; Domain=x\" must not contain ';'"},
    {"relative cookie path", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {stickiness: {type: Cookie, path: api}}}]
)",
     "InvalidSpec", "spec.routes[0].policy.stickiness.path", "must start with \"/\""},
    {"cookie path on SourceIP", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {stickiness: {type: SourceIP, path: /api}}}]
)",
     "InvalidSpec", "spec.routes[0].policy.stickiness.path", "only Cookie stickiness takes a path"},
    {"unknown field", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, matches: {}}]
)",
     "InvalidSpec", "spec.routes[0].matches", "unknown field (did you mean \"match\"?)"},
    {"unknown field nowhere near a known one", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, zzzzzzzzzz: {}}]
)",
     "InvalidSpec", "spec.routes[0].zzzzzzzzzz", "unknown field (known fields: name, listener, "},
    {"misspelt policy field", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {stickyness: {type: SourceIP}}}]
)",
     "InvalidSpec", "spec.routes[0].policy.stickyness", "unknown field (did you mean \"stickiness\"?)"},
    {"second route on a TCP listener", R"(  listeners: [{name: db, port: 5432, protocol: TCP}]
  routes: [{name: a, listener: db, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}, {name: b, listener: db, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}]
)",
     "InvalidSpec", "spec.routes[1].listener", "TCP and UDP listeners take exactly one route"},
    {"second default route on a TLS listener", R"(  listeners: [{name: tls, port: 443, protocol: TLS}]
  routes: [{name: a, listener: tls, match: {sni: [a.example.com]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}, {name: b, listener: tls, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]},
           {name: c, listener: tls, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}]
)",
     "InvalidSpec", "spec.routes[2].match.sni", "already has a default route without match.sni (spec.routes[1])"},
    {"zero idle timeout", "  listeners: [{name: db, port: 5432, protocol: TCP, idleTimeout: 0s}]\n", "InvalidSpec",
     "spec.listeners[0].idleTimeout", "must be greater than 0 (omit the field for the default)"},
    {"zero connect timeout", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {timeouts: {connect: 0ms}}}]
)",
     "InvalidSpec", "spec.routes[0].policy.timeouts.connect", "must be greater than 0"},
    {"weight over the limit", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, backends: [{endpoints: [{address: 10.0.0.1, port: 1}], weight: 1001}]}]
)",
     "InvalidSpec", "spec.routes[0].backends[0].weight", "1001 is out of range"},
    {"path on a TCP listener", R"(  listeners: [{name: db, port: 5432, protocol: TCP}]
  routes: [{name: a, listener: db, match: {path: {value: /}}}]
)",
     "UnsupportedValue", "spec.routes[0].match.path", "not supported on a TCP listener"},
    {"cidr", "  listeners: [{name: a, port: 80, protocol: HTTP, allowedSourceRanges: [10.0.0.0/33]}]\n", "InvalidSpec",
     "spec.listeners[0].allowedSourceRanges[0]", "invalid CIDR \"10.0.0.0/33\""},
    {"endpoint address", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, backends: [{endpoints: [{address: backend.local, port: 1}]}]}]
)",
     "InvalidSpec", "spec.routes[0].backends[0].endpoints[0].address", "is not an IP address"},
    {"both service and endpoints", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, backends: [{service: x, port: 80, endpoints: [{address: 10.0.0.1, port: 1}]}]}]
)",
     "InvalidSpec", "spec.routes[0].backends[0]", "exactly one of service"},
    {"health check protocol", "  healthCheck: {protocol: ICMP}\n", "UnsupportedValue", "spec.healthCheck.protocol",
     "unknown health-check protocol \"ICMP\""},
    {"path on a GRPC health check", "  healthCheck: {protocol: GRPC, path: /grpc.health.v1.Health/Check}\n",
     "UnsupportedValue", "spec.healthCheck.path", "a GRPC health check has no path"},
    // The CRD's bounds (crds/: thresholds 1..10, at most 16 statuses), so standalone mode refuses
    // what a cluster refuses.
    {"healthy threshold", "  healthCheck: {protocol: TCP, healthyThreshold: 50}\n", "InvalidSpec",
     "spec.healthCheck.healthyThreshold", "50 is out of range (1..10)"},
    {"unhealthy threshold", "  healthCheck: {protocol: TCP, unhealthyThreshold: 11}\n", "InvalidSpec",
     "spec.healthCheck.unhealthyThreshold", "11 is out of range (1..10)"},
    // A zero timeout would be taken for "unset" (the 2s default); a cluster checks timeout <=
    // interval after defaulting, so an interval under the default timeout needs a timeout too.
    {"zero health-check timeout", "  healthCheck: {protocol: TCP, timeout: 0s}\n", "InvalidSpec",
     "spec.healthCheck.timeout", "must be greater than 0"},
    // A floor: "5ms" for "5s" would probe every endpoint 200 times a second (helper-97).
    {"health-check interval under the floor", "  healthCheck: {protocol: TCP, interval: 5ms, timeout: 1ms}\n",
     "InvalidSpec", "spec.healthCheck.interval", "must be at least 100ms"},
    {"zero health-check interval", "  healthCheck: {protocol: TCP, interval: 0s, timeout: 1s}\n", "InvalidSpec",
     "spec.healthCheck.interval", "must be at least 100ms"},
    {"interval under the default timeout", "  healthCheck: {protocol: TCP, interval: 1s}\n", "InvalidSpec",
     "spec.healthCheck.timeout", "the default timeout (2s) must not be longer than interval"},
    {"expected statuses", "  healthCheck: {protocol: HTTP, expectedStatuses: [200, 201, 202, 203, 204, 205, 206, 207, "
                          "208, 226, 300, 301, 302, 303, 304, 307, 308]}\n",
     "InvalidSpec", "spec.healthCheck.expectedStatuses", "must list at most 16 statuses, not 17"},
    {"forwarded headers", "  forwardedHeaders: {xForwardedFor: Prepend}\n", "UnsupportedValue",
     "spec.forwardedHeaders.xForwardedFor", "unknown mode \"Prepend\""},
    {"min version as a number", R"(  listeners: [{name: web, port: 443, protocol: HTTPS, tls: {minVersion: 1.2, certificates: [{secretName: s}]}}]
)",
     "InvalidSpec", "spec.listeners[0].tls.minVersion", "must be a string, not a number (quote it: \"1.2\")"},
    {"method", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {methods: [get]}}]
)",
     "UnsupportedValue", "spec.routes[0].match.methods[0]", "unknown HTTP method \"get\""},
    {"host", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {hosts: [Example.COM]}}]
)",
     "InvalidSpec", "spec.routes[0].match.hosts[0]", "invalid host \"Example.COM\""},
    {"sni on HTTP", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {sni: [a.example.com]}}]
)",
     "UnsupportedValue", "spec.routes[0].match.sni", "sni matches TLS passthrough listeners only"},
    {"proxy protocol send on HTTP", "  listeners: [{name: web, port: 80, protocol: HTTP, proxyProtocol: {send: v2}}]\n",
     "UnsupportedValue", "spec.listeners[0].proxyProtocol.send", "only TCP and TLS listeners send"},
    {"redirect and rewrite", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {redirect: {scheme: https}, rewrite: {pathPrefix: /}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.rewrite", "cannot both redirect and rewrite"},
    {"header rule on a framing field", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {responseHeaders: {set: {Content-Length: "0"}}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.responseHeaders.set.Content-Length", "frames the message"},
    {"header rule removing transfer-encoding", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {requestHeaders: {remove: [transfer-encoding]}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.requestHeaders.remove[0]", "frames the message"},
    {"header set twice in another case", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {requestHeaders: {set: {X-A: "1", x-a: "2"}}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.requestHeaders.set.x-a", "is also set as \"X-A\""},
    {"header rule removing host", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {requestHeaders: {remove: [Host]}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.requestHeaders.remove[0]", "Host header may only be set"},
    {"header rule adding a second host", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {requestHeaders: {add: {host: b.example}}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.requestHeaders.add.host", "Host header may only be set"},
    {"source-ip stickiness with a zero ttl", R"(  listeners: [{name: db, port: 5432, protocol: TCP}]
  routes: [{name: a, listener: db, policy: {stickiness: {type: SourceIP, ttl: 0s}}}]
)",
     "InvalidSpec", "spec.routes[0].policy.stickiness.ttl", "must be greater than 0"},
    {"header rule setting a host with a space", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {requestHeaders: {set: {Host: "bad host"}}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.requestHeaders.set.Host", "invalid Host \"bad host\""},
    {"header rule setting an empty host", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {requestHeaders: {set: {host: ""}}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.requestHeaders.set.host", "invalid Host \"\""},
    {"rewrite host with a space", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {rewrite: {host: "a b"}}, backends: [{endpoints: [{address: 127.0.0.1, port: 1}]}]}]
)",
     "InvalidSpec", "spec.routes[0].filters.rewrite.host", "invalid host \"a b\""},
    {"header rule setting a host with userinfo", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {requestHeaders: {set: {host: "a@evil.test"}}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.requestHeaders.set.host", "invalid Host"},
    // Values the proxy writes onto a request line or into a field: no CR/LF, spaces, query.
    {"rewrite path with CR LF", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {rewrite: {pathPrefix: "/x\r\nX-Inj: 1\r\n"}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.rewrite.pathPrefix", "must not contain control characters"},
    {"rewrite path with a space", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {rewrite: {pathPrefix: "/x HTTP/1.1"}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.rewrite.pathPrefix", "must not contain spaces"},
    {"rewrite path with a query", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {rewrite: {pathPrefix: "/x?y=1"}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.rewrite.pathPrefix", "must not contain a query"},
    {"redirect path with CR LF", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {redirect: {path: "/l\r\nSet-Cookie: evil=1"}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.redirect.path", "must not contain control characters"},
    {"redirect path with a bad escape", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {redirect: {path: "/l%zz"}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.redirect.path", "malformed %-escape"},
    {"header value with CR LF", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {requestHeaders: {set: {x-ok: "a\r\nInjected: 1"}}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.requestHeaders.set.x-ok", "must not contain control characters"},
    {"response header value with NUL", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {responseHeaders: {add: {x-ok: "a\0b"}}}}]
)",
     "InvalidSpec", "spec.routes[0].filters.responseHeaders.add.x-ok", "must not contain control characters"},
    {"path with dot segment", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {path: {type: Exact, value: /a/../b}}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.path.value", "contains \"/../\": requests are matched with dot segments removed"},
    {"path with double slash", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {path: {type: Prefix, value: //dbl}}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.path.value", "contains \"//\""},
    {"path ending in dot", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {path: {type: Prefix, value: /a/.}}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.path.value", "ends in \"/.\""},
    {"path with encoded slash", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {path: {type: Prefix, value: /a%2fb}}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.path.value", "contains an encoded '/' (%2f)"},
    {"path with escaped unreserved", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {path: {type: Prefix, value: /%7Euser}}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.path.value", "contains %7E, an escaped unreserved character: requests are matched with it decoded, so write \"~\""},
    {"path with lower-case hex", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {path: {type: Prefix, value: /caf%c3%a9}}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.path.value", "contains %c3: requests are matched with upper-case hex digits, so write %C3"},
    {"path with a parameter", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {path: {type: Exact, value: /semi;x}}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.path.value", "contains ';': requests are matched without ';' path parameters"},
    {"path with a query", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {path: {type: Prefix, value: "/a?b=1"}}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.path.value", "must not contain a query"},
    {"header matched twice", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {headers: [{name: x, value: a}, {name: X, value: b}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.headers[1].name", "header \"X\" is also matched by spec.routes[0].match.headers[0]"},
    {"query name with a space", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {queryParams: [{name: "a b", value: "1"}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.queryParams[0].name", "contains a space or control character"},
    {"query value with &", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {queryParams: [{name: a, value: "1&b=2"}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.queryParams[0].value", "contains '&', which delimits the query"},
    {"query matched twice", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {queryParams: [{name: a, value: "1"}, {name: a, value: "2"}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.queryParams[1].name", "is also matched by spec.routes[0].match.queryParams[0]"},
    {"cookie name not a token", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {cookies: [{name: "a b", value: "1"}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.cookies[0].name", "invalid cookie name"},
    {"cookie value with a trailing space", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {cookies: [{name: c, value: "ab "}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.cookies[0].value", "has a leading or trailing space"},
    {"cookie value with ;", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {cookies: [{name: a, value: "1;b"}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].match.cookies[0].value", "contains ';', which ends a cookie"},
    {"response header added twice", R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, filters: {responseHeaders: {add: {x-a: "1", X-A: "2"}}}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)",
     "InvalidSpec", "spec.routes[0].filters.responseHeaders.add.x-a", "is also added as"},
    {"missing spec", "", "InvalidSpec", "spec", "is required"},
};

// Health is per backend set's check (the dataplane runs each distinct check of an endpoint and
// applies its verdict to the sets that declare it): two objects checking one endpoint
// differently are both accepted without a warning, and neither decides for the other.
TEST(Translate, DifferentChecksOfASharedEndpointAreBothKept) {
  auto lb = [](const std::string& name, uint32_t port, const std::string& check) {
    return Lb("  listeners: [{name: t, port: " + std::to_string(port) + ", protocol: TCP}]\n"
              "  routes: [{name: r, listener: t, backends: [{endpoints: [{address: 127.0.0.1, port: 9001}]}]}]\n"
              "  healthCheck: " + check + "\n", name);
  };
  Translator t;
  const auto r = t.Translate(Store(lb("a", 7001, "{protocol: TCP}") + "---\n" +
                                   lb("b", 7002, "{protocol: HTTP, path: /healthz}")));
  for (const char* name : {"a", "b"}) {
    const ObjectStatus* st = StatusOf(r, name);
    ASSERT_NE(st, nullptr);
    EXPECT_TRUE(st->accepted) << st->message;
    EXPECT_TRUE(st->warnings.empty()) << name << ": " << st->warnings[0].message;
  }
  int checks = 0;
  for (const auto& set : r.snapshot.backend_sets()) checks += set.health_check().protocol() != v1::HealthCheck::NONE;
  EXPECT_EQ(checks, 2);
}

// A TLS Secret the dataplane could not serve is reported on the object that references it, with
// the reason, never with the key's bytes.
// A key of another certificate.
const std::string kOtherKeyPem = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+iykKJs+U2FEeGnz
VjVOsiHtH8t/2mEj5NfKS1PQkPahRANCAAQSUkrepPLhqhDVnq1PaR4nPfh8MwCR
R+v8oBpEaY/vGQi7cGXJ7a0GPzYOQewZsKlySBAT1wl+Tvz+QSMgAuTg
-----END PRIVATE KEY-----
)";

// Two more pairs (EC P-256, CN and SAN api.example.com, valid until 2126): a certificate and its
// renewal. Test-only.
const std::string kApiCertPem = R"(-----BEGIN CERTIFICATE-----
MIIBpzCCAU2gAwIBAgIUIHTrZZwNsDW8RV2/AfzUanxIPmQwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPYXBpLmV4YW1wbGUuY29tMCAXDTI2MTEyNzIxNTUyNloYDzIx
MjYxMTAzMjE1NTI2WjAaMRgwFgYDVQQDDA9hcGkuZXhhbXBsZS5jb20wWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAATWCn3Jaz9W6SZT8zXWqw+t1a8hvXFmIZIqfDmt
+/gISQL0xdr6+/zWQSEyTMAUoAh8krLLvx7/3QDVY8OV+P75o28wbTAdBgNVHQ4E
FgQUveec06X8D75auuQTjL0Y1KW6PGIwHwYDVR0jBBgwFoAUveec06X8D75auuQT
jL0Y1KW6PGIwDwYDVR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgg9hcGkuZXhhbXBs
ZS5jb20wCgYIKoZIzj0EAwIDSAAwRQIgZ2+14UDuMnyRcgMmPpy1ndcHvECYBMtP
xbErGIRr8vECIQC+2NM9cGofXXcd/IUE6GijHWWUIKCIBVuGDNbY3JRCkQ==
-----END CERTIFICATE-----
)";
const std::string kApiKeyPem = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYiHavLXhKVgZJCof
ZhNvfO9DS/67a2iNltYg7uvy6nihRANCAATWCn3Jaz9W6SZT8zXWqw+t1a8hvXFm
IZIqfDmt+/gISQL0xdr6+/zWQSEyTMAUoAh8krLLvx7/3QDVY8OV+P75
-----END PRIVATE KEY-----
)";
const std::string kApiRenewedCertPem = R"(-----BEGIN CERTIFICATE-----
MIIBpjCCAU2gAwIBAgIUYKWKso5OFydEBnMCBo+wArYKFaowCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPYXBpLmV4YW1wbGUuY29tMCAXDTI2MTEyNzIxNTU0MFoYDzIx
MjYxMTAzMjE1NTQwWjAaMRgwFgYDVQQDDA9hcGkuZXhhbXBsZS5jb20wWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAQGo/2260gu6vyewFvqhbAYjx4qHZYHD5tiH72F
iJJT8RGwZf7l9wLgGJ6bpdSCeI9xkJjTy+TWhyygk/ToA+jXo28wbTAdBgNVHQ4E
FgQUK8iJoA9xswTyp1pqyVFUYELo90kwHwYDVR0jBBgwFoAUK8iJoA9xswTyp1pq
yVFUYELo90kwDwYDVR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgg9hcGkuZXhhbXBs
ZS5jb20wCgYIKoZIzj0EAwIDRwAwRAIgXteqeRkaUekE9W6Cx7rOuQ2z7JoJTuDz
RVfu+vbFw8ECIDSPJkIWrBGfdgB0iZTbJFvT8oZE3yE1lxD9CDXrz015
-----END CERTIFICATE-----
)";
const std::string kApiRenewedKeyPem = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgC7PG3GVX0rbkYQEI
S+NZiBt+cw3a7TYb2/R2AG0nj+ehRANCAAQGo/2260gu6vyewFvqhbAYjx4qHZYH
D5tiH72FiJJT8RGwZf7l9wLgGJ6bpdSCeI9xkJjTy+TWhyygk/ToA+jX
-----END PRIVATE KEY-----
)";

// A kubernetes.io/tls Secret "default/<name>" with these PEM texts.
std::string TlsSecretNamed(const std::string& name, const std::string& crt, const std::string& key) {
  std::string out = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: " + name +
                    ", namespace: default}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n";
  std::istringstream c(crt), k(key);
  for (std::string line; std::getline(c, line);) out += "    " + line + "\n";
  out += "  tls.key: |\n";
  for (std::string line; std::getline(k, line);) out += "    " + line + "\n";
  return out;
}

// The same, named "s".
std::string TlsSecret(const std::string& crt, const std::string& key) { return TlsSecretNamed("s", crt, key); }

TEST(Translate, AKeyKeptInTlsCrtNeverReachesTheChain) {
  // tls.crt holding the certificate and the key (one PEM file): served, and only the certificate
  // goes into the chain, which /debug/snapshot shows unredacted.
  Translator t;
  const auto r = t.Translate(Store(Lb("  listeners: [{name: web, port: 443, protocol: HTTPS, tls: {certificates: [{secretName: s}]}}]\n"
                                      "  routes: [{name: a, listener: web, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}]\n") +
                                   TlsSecret(std::string(kTestCertPem) + kTestKeyPem, kTestKeyPem)));
  ASSERT_TRUE(StatusOf(r, "shop")->accepted) << StatusOf(r, "shop")->message;
  ASSERT_EQ(r.snapshot.certificates_size(), 1);
  const std::string& chain = r.snapshot.certificates(0).certificate_chain_pem();
  EXPECT_NE(chain.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ(chain.find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(chain.find(kTestKeyBytes), std::string::npos);
}

// The API server takes object names whose labels are longer than a hostname's 63 characters;
// such a LoadBalancer and such a Secret route like any other.
TEST(Translate, ObjectNamesTakeLabelsLongerThanAHostnames) {
  Translator t;
  const std::string secret(70, 's'), lb = std::string(64, 'l') + ".v2";
  const auto r = t.Translate(Store(Lb("  listeners: [{name: web, port: 443, protocol: HTTPS, tls: {certificates: [{secretName: " +
                                          secret + "}]}}]\n"
                                          "  routes: [{name: a, listener: web, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}]\n",
                                      lb) +
                                   TlsSecretNamed(secret, kTestCertPem, kTestKeyPem)));
  ASSERT_NE(StatusOf(r, lb), nullptr);
  EXPECT_TRUE(StatusOf(r, lb)->accepted) << StatusOf(r, lb)->message;
  EXPECT_EQ(r.snapshot.certificates_size(), 1);
}

// In a cluster a LoadBalancer may not point its endpoints at the node itself (the dataplane
// shares the node's network: its admin port, a cloud metadata service); --manifests mode and
// --allow-node-local-endpoints take them.
TEST(Translate, NodeLocalEndpointsAreRefusedInAClusterUnlessAllowed) {
  const std::string yaml = Lb("  listeners: [{name: web, port: 80, protocol: HTTP}]\n"
                              "  routes: [{name: a, listener: web, backends: [{endpoints: [{address: 10.0.0.1, port: 80}, "
                              "{address: \"169.254.169.254\", port: 80}]}]}]\n");
  TranslateOptions cluster;
  cluster.refuse_node_local_endpoints = true;
  Translator t(cluster);
  auto r = t.Translate(Store(yaml));
  ASSERT_FALSE(StatusOf(r, "shop")->accepted);
  EXPECT_EQ(StatusOf(r, "shop")->reason, "InvalidSpec");
  EXPECT_NE(StatusOf(r, "shop")->message.find("spec.routes[0].backends[0].endpoints[1].address: \"169.254.169.254\" is in the "
                                              "link-local range"),
            std::string::npos)
      << StatusOf(r, "shop")->message;
  Translator standalone;
  r = standalone.Translate(Store(yaml));
  EXPECT_TRUE(StatusOf(r, "shop")->accepted) << StatusOf(r, "shop")->message;
}

TEST(Translate, UnusableCertificatePairsAreReportedOnTheObject) {
  const std::string& other_key = kOtherKeyPem;
  const auto& secret = TlsSecret;
  std::string broken_cert = kTestCertPem;
  broken_cert.replace(broken_cert.find("MII") + 10, 8, "AAAAAAAA");
  const struct {
    const char* name;
    std::string secret;
    const char* message;
  } cases[] = {
      {"key of another certificate", secret(kTestCertPem, other_key), "tls.key does not match the certificate in tls.crt"},
      {"certificate that does not parse", secret(broken_cert, kTestKeyPem), "tls.crt is not a PEM certificate"},
      {"key that does not parse", secret(kTestCertPem, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
       "tls.key is not an unencrypted PEM private key"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Translator t;
    const auto r = t.Translate(Store(Lb("  listeners: [{name: web, port: 443, protocol: HTTPS, tls: {certificates: [{secretName: s}]}}]\n") +
                                     c.secret));
    const ObjectStatus* st = StatusOf(r, "shop");
    ASSERT_NE(st, nullptr);
    EXPECT_FALSE(st->accepted);
    EXPECT_EQ(st->reason, "InvalidCertificateRef");
    EXPECT_NE(st->message.find(c.message), std::string::npos) << st->message;
    EXPECT_EQ(st->message.find(kTestKeyBytes), std::string::npos);
    EXPECT_EQ(r.snapshot.certificates_size(), 0);
  }
}

// A rotation gone wrong (a key that does not match, a deleted Secret) makes the object invalid,
// but it keeps routing its last good version with the certificate it was accepted with: its
// listeners stay open, HTTP and HTTPS alike.
TEST(Translate, ABrokenSecretKeepsTheLastGoodCertificate) {
  const std::string spec = R"(  listeners:
    - {name: secure, port: 8443, protocol: HTTPS, tls: {certificates: [{secretName: s}]}}
    - {name: web, port: 8080, protocol: HTTP}
  routes:
    - {name: a, listener: secure, backends: [{endpoints: [{address: 127.0.0.1, port: 9001}]}]}
    - {name: b, listener: web, backends: [{endpoints: [{address: 127.0.0.1, port: 9001}]}]}
)";
  const std::string good_secret = TlsSecret(kTestCertPem, kTestKeyPem);
  const std::string wrong_key = TlsSecret(kTestCertPem, kOtherKeyPem);  // the same certificate, another key
  Translator t;
  auto r1 = t.Translate(Store(Lb(spec) + good_secret));
  ASSERT_TRUE(StatusOf(r1, "shop")->accepted) << StatusOf(r1, "shop")->message;
  ASSERT_EQ(r1.snapshot.certificates_size(), 1);
  const std::string served_key = r1.snapshot.certificates(0).private_key_pem();

  for (const std::string& broken : {wrong_key, std::string()}) {  // a bad key, then no Secret at all
    SCOPED_TRACE(broken.empty() ? "deleted" : "wrong key");
    auto r2 = t.Translate(Store(Lb(spec) + broken));
    const ObjectStatus* st = StatusOf(r2, "shop");
    ASSERT_NE(st, nullptr);
    EXPECT_FALSE(st->accepted);
    EXPECT_EQ(st->reason, "InvalidCertificateRef") << st->message;
    EXPECT_TRUE(st->serving_last_good);
    EXPECT_EQ(r2.snapshot.listeners_size(), 2);
    ASSERT_EQ(r2.snapshot.certificates_size(), 1);
    EXPECT_EQ(r2.snapshot.certificates(0).private_key_pem(), served_key);
  }
  // Fixed: accepted again, from the current Secret.
  EXPECT_TRUE(StatusOf(t.Translate(Store(Lb(spec) + good_secret)), "shop")->accepted);
}

// While one of an object's Secrets is broken (the object serves its last good version), a valid
// renewal of another of its Secrets is served: only the broken one stands in from the accepted
// version, so a certificate near expiry is not held back by an unrelated mistake.
TEST(Translate, ARenewalIsServedWhileAnotherSecretOfTheObjectIsBroken) {
  const std::string spec = R"(  listeners:
    - {name: secure, port: 8443, protocol: HTTPS, tls: {certificates: [{secretName: s}, {secretName: api}]}}
  routes:
    - {name: a, listener: secure, backends: [{endpoints: [{address: 127.0.0.1, port: 9001}]}]}
)";
  auto key_of = [](const TranslateResult& r, const std::string& secret) {
    for (const auto& c : r.snapshot.certificates()) {
      if (c.name() == "default/" + secret) return c.private_key_pem();
    }
    return std::string("(none)");
  };
  Translator t;
  auto r1 = t.Translate(Store(Lb(spec) + TlsSecret(kTestCertPem, kTestKeyPem) + TlsSecretNamed("api", kApiCertPem, kApiKeyPem)));
  ASSERT_TRUE(StatusOf(r1, "shop")->accepted) << StatusOf(r1, "shop")->message;
  const std::string s_key = key_of(r1, "s");
  ASSERT_NE(s_key, "(none)");
  ASSERT_NE(key_of(r1, "api"), "(none)");

  // s gets a key that does not match; api is renewed at the same time.
  auto r2 = t.Translate(Store(Lb(spec) + TlsSecret(kTestCertPem, kOtherKeyPem) +
                              TlsSecretNamed("api", kApiRenewedCertPem, kApiRenewedKeyPem)));
  const ObjectStatus* st = StatusOf(r2, "shop");
  ASSERT_NE(st, nullptr);
  EXPECT_FALSE(st->accepted);
  EXPECT_TRUE(st->serving_last_good);
  EXPECT_EQ(key_of(r2, "s"), s_key);  // the accepted certificate stands in for the broken one
  EXPECT_EQ(key_of(r2, "api"), kApiRenewedKeyPem);
  for (const auto& c : r2.snapshot.certificates()) {
    if (c.name() == "default/api") {
      EXPECT_EQ(c.certificate_chain_pem(), kApiRenewedCertPem);
    }
  }
}

TEST(Translate, InvalidObjectsReportReasonAndField) {
  const std::string secret =
      "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\n" + TlsStringData();
  for (const auto& c : kInvalid) {
    SCOPED_TRACE(c.name);
    Translator t;
    const std::string spec = c.spec[0] ? c.spec : "";
    std::string yaml = spec.empty() ? "apiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: bad}\n"
                                    : Lb(spec, "bad");
    // A valid neighbour must be unaffected.
    auto r = t.Translate(Store(yaml + "---\n" + Lb(kBasic, "good") + secret));
    const ObjectStatus* st = StatusOf(r, "bad");
    ASSERT_NE(st, nullptr);
    EXPECT_FALSE(st->accepted);
    EXPECT_FALSE(st->serving_last_good);
    EXPECT_EQ(st->reason, c.reason) << st->message;
    EXPECT_EQ(st->field, c.field) << st->message;
    EXPECT_NE(st->message.find(c.message), std::string::npos) << st->message;
    EXPECT_TRUE(StatusOf(r, "good")->accepted);
    Translator alone;
    EXPECT_EQ(SerializeSnapshot(r.snapshot), SerializeSnapshot(alone.Translate(Store(Lb(kBasic, "good") + secret)).snapshot));
    // Exactly one log line, naming file, object and field.
    ASSERT_EQ(r.diagnostics.size(), 1u);
    EXPECT_EQ(r.diagnostics[0].message, "invalid object, not routed");
    EXPECT_EQ(r.diagnostics[0].Field("file"), "/m/test.yaml");
    EXPECT_EQ(r.diagnostics[0].Field("object"), "LoadBalancer default/bad");
    EXPECT_EQ(r.diagnostics[0].Field("field"), c.field);
    // error= carries the first problem whole, even when it quotes a value holding "; ".
    EXPECT_NE(r.diagnostics[0].Field("error").find(c.message), std::string::npos) << r.diagnostics[0].Field("error");
  }
}

TEST(Translate, ForwardedHeadersWithoutAnHttpListenerAreWarned) {
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners: [{name: db, port: 5432, protocol: TCP}]
  routes: [{name: a, listener: db, backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}]
  forwardedHeaders: {xForwardedFor: Replace}
)")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "FieldIgnored");
  EXPECT_EQ(st->warnings[0].field, "spec.forwardedHeaders");
  Translator t2;  // with an HTTP listener beside it: used, no warning
  auto r2 = t2.Translate(Store(Lb(std::string(kBasic) + "  forwardedHeaders: {xForwardedFor: Replace}\n")));
  EXPECT_TRUE(StatusOf(r2, "shop")->warnings.empty());
}

TEST(Translate, UdpBackendsAreNotHealthCheckedAndThatIsSaid) {
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners: [{name: dns, port: 53, protocol: UDP}, {name: db, port: 5432, protocol: TCP}]
  routes:
    - {name: dns, listener: dns, backends: [{endpoints: [{address: 127.0.0.1, port: 5353}]}]}
    - {name: db, listener: db, backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}
  healthCheck: {protocol: TCP}
)")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "HealthCheckNotRun");
  EXPECT_EQ(st->warnings[0].field, "spec.healthCheck");
  int checked = 0, unchecked = 0;
  for (const auto& set : r.snapshot.backend_sets()) {
    const bool udp = set.name().find("/dns/") != std::string::npos;
    EXPECT_EQ(set.health_check().protocol() == v1::HealthCheck::NONE, udp) << set.name();
    (udp ? unchecked : checked)++;
  }
  EXPECT_EQ(checked, 1);
  EXPECT_EQ(unchecked, 1);
}

TEST(Translate, L4RetriesWithoutAttemptsKeepTheDefaultTries) {
  for (const auto& [policy, attempts] : {std::pair{"retries: {on: [connect-failure]}", 2u},
                                         std::pair{"retries: {attempts: 0}", 0u},
                                         std::pair{"retries: {attempts: 4}", 4u}}) {
    Translator t;
    auto r = t.Translate(Store(Lb(std::string(R"(  listeners: [{name: db, port: 5432, protocol: TCP}]
  routes: [{name: a, listener: db, policy: {)") + policy + R"(}, backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}]
)")));
    ASSERT_TRUE(StatusOf(r, "shop")->accepted) << StatusOf(r, "shop")->message;
    bool seen = false;
    for (const auto& route : r.snapshot.routes()) {
      if (route.name() != "default/shop/a") continue;
      seen = true;
      EXPECT_EQ(route.policy().retries().attempts(), attempts) << policy;
    }
    EXPECT_TRUE(seen);
  }
}

// "true" (kubectl's YAML 1.1 reading of an unquoted on:) is named as stored in messages, and a
// clash with "on" is one problem, not also an unknown field (helper-144).
TEST(Translate, RetriesTrueIsNamedAsStored) {
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {retries: {"on": [reset], "true": ["503"]}}, backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}]
)")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_FALSE(st->accepted);
  EXPECT_EQ(st->problem_count, 1u) << st->message;
  EXPECT_EQ(st->message.find("unknown field"), std::string::npos) << st->message;
  Translator t2;
  r = t2.Translate(Store(Lb(R"(  listeners: [{name: db, port: 5432, protocol: TCP}]
  routes: [{name: a, listener: db, policy: {retries: {"true": [reset]}}, backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}]
)")));
  st = StatusOf(r, "shop");
  ASSERT_FALSE(st->accepted);
  EXPECT_EQ(st->field, "spec.routes[0].policy.retries.true[0]") << st->message;
}

// L7 retries without `on` retry on the connection errors (Gateway API), so `attempts` or
// `perTryTimeout` alone is not silently a no-op; `on: []` says "nothing" and is kept.
TEST(Translate, L7RetriesWithoutOnRetryConnectionErrors) {
  struct Case {
    const char* policy;
    uint32_t attempts;
    const char* on;       // joined with ','
    const char* ignored;  // the field of the FieldIgnored warning, or ""
  };
  for (const auto& c : {Case{"retries: {attempts: 2}", 2, "connect-failure,reset,timeout", ""},
                        Case{"retries: {perTryTimeout: 2s}", 1, "connect-failure,reset,timeout", ""},
                        Case{"retries: {attempts: 2, on: []}", 2, "", "spec.routes[0].policy.retries.on"},
                        Case{"retries: {perTryTimeout: 2s, on: []}", 0, "", "spec.routes[0].policy.retries.on"},
                        Case{"retries: {attempts: 0, perTryTimeout: 2s}", 0, "connect-failure,reset,timeout",
                             "spec.routes[0].policy.retries.perTryTimeout"},
                        Case{"retries: {on: [\"503\"]}", 1, "503", ""},
                        Case{"retries: {attempts: 0}", 0, "connect-failure,reset,timeout", ""},
                        // non-idempotent is no condition: alone, it gets the default ones (helper-97).
                        Case{"retries: {attempts: 2, on: [non-idempotent]}", 2,
                             "non-idempotent,connect-failure,reset,timeout", ""},
                        Case{"retries: {on: [non-idempotent, \"503\"]}", 1, "non-idempotent,503", ""},
                        // An unquoted on: as kubectl's YAML 1.1 stores it (API.md §1.3 writes it so).
                        Case{"retries: {\"true\": [\"503\"]}", 1, "503", ""},
                        Case{"retries: {attempts: 2, \"true\": []}", 2, "", "spec.routes[0].policy.retries.true"}}) {
    Translator t;
    auto r = t.Translate(Store(Lb(std::string(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {)") + c.policy + R"(}, backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}]
)")));
    ASSERT_TRUE(StatusOf(r, "shop")->accepted) << StatusOf(r, "shop")->message;
    ASSERT_EQ(r.snapshot.routes_size(), 1);
    const auto& rt = r.snapshot.routes(0).policy().retries();
    EXPECT_EQ(rt.attempts(), c.attempts) << c.policy;
    std::string on;
    for (const auto& o : rt.on()) on += (on.empty() ? "" : ",") + o;
    EXPECT_EQ(on, c.on) << c.policy;
    std::string ignored;
    for (const auto& w : StatusOf(r, "shop")->warnings) {
      if (w.reason == "FieldIgnored") ignored = w.field;
    }
    EXPECT_EQ(ignored, c.ignored) << c.policy;
  }
}

TEST(Translate, StickyCookiePathIsTheDeclaredOneOrEmpty) {
  for (const auto& [stickiness, path] : {std::pair{"{type: Cookie, cookieName: S, path: /api}", "/api"},
                                         std::pair{"{type: Cookie, path: \"/a/b%20c\"}", "/a/b%20c"},
                                         std::pair{"{type: Cookie}", ""}}) {
    Translator t;
    auto r = t.Translate(Store(Lb(std::string(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {stickiness: )") + stickiness + R"(}, backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}]
)")));
    ASSERT_TRUE(StatusOf(r, "shop")->accepted) << StatusOf(r, "shop")->message;
    ASSERT_EQ(r.snapshot.routes_size(), 1);
    EXPECT_EQ(r.snapshot.routes(0).policy().stickiness().type(), v1::Stickiness::COOKIE);
    EXPECT_EQ(r.snapshot.routes(0).policy().stickiness().cookie_path(), path) << stickiness;
    EXPECT_TRUE(StatusOf(r, "shop")->warnings.empty()) << stickiness;
  }
  // Browsers take a __Host- cookie only with Path=/, which the dataplane sends: another is said.
  for (const auto& [stickiness, warned] : {std::pair{"{type: Cookie, cookieName: __Host-s, path: /api}", true},
                                           std::pair{"{type: Cookie, cookieName: __HOST-s, path: /api}", true},
                                           std::pair{"{type: Cookie, cookieName: __Host-s, path: /}", false},
                                           std::pair{"{type: Cookie, cookieName: __Secure-s, path: /api}", false}}) {
    Translator t;
    auto r = t.Translate(Store(Lb(std::string(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, policy: {stickiness: )") + stickiness + R"(}, backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}]
)")));
    ASSERT_TRUE(StatusOf(r, "shop")->accepted) << StatusOf(r, "shop")->message;
    const auto& w = StatusOf(r, "shop")->warnings;
    ASSERT_EQ(w.size(), warned ? 1u : 0u) << stickiness;
    if (warned) {
      EXPECT_EQ(w[0].reason, "FieldIgnored");
      EXPECT_EQ(w[0].field, "spec.routes[0].policy.stickiness.path");
    }
  }
}

// An IPv6 literal redirect host is sent bracketed (a URL needs it), written either way; fields a
// redirecting route cannot use are warned (helper-132).
TEST(Translate, RedirectHostsAndFieldsARedirectDoesNotUse) {
  for (const auto& [host, want] : std::vector<std::pair<std::string, std::string>>{
           {"2001:db8::1", "[2001:db8::1]"}, {"\"[2001:db8::1]\"", "[2001:db8::1]"}, {"a.example", "a.example"},
           {"192.0.2.1", "192.0.2.1"}}) {
    Translator t;
    auto r = t.Translate(Store(Lb("  listeners: [{name: web, port: 80, protocol: HTTP}]\n"
                                  "  routes: [{name: a, listener: web, filters: {redirect: {host: " + host + "}}}]\n")));
    ASSERT_TRUE(StatusOf(r, "shop")->accepted) << host << ": " << StatusOf(r, "shop")->message;
    EXPECT_EQ(r.snapshot.routes(0).filters().redirect().host(), want) << host;
  }
  for (const char* bad : {"\"[a.example]\"", "\"[]\"", "\"[2001:db8::1\""}) {
    Translator t;
    auto r = t.Translate(Store(Lb(std::string("  listeners: [{name: web, port: 80, protocol: HTTP}]\n"
                                              "  routes: [{name: a, listener: web, filters: {redirect: {host: ") +
                                  bad + "}}}]\n")));
    EXPECT_FALSE(StatusOf(r, "shop")->accepted) << bad;
  }
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - name: a
      listener: web
      backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]
      policy: {rateLimit: {requestsPerSecond: 1, burst: 1}}
      filters: {redirect: {scheme: https}, requestHeaders: {set: {x-a: "1"}}, responseHeaders: {set: {x-b: "1"}}}
)")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  std::vector<std::string> fields;
  for (const auto& w : st->warnings) {
    if (w.reason == "FieldIgnored") fields.push_back(w.field);
  }
  EXPECT_EQ(fields, (std::vector<std::string>{"spec.routes[0].backends", "spec.routes[0].policy",
                                              "spec.routes[0].filters.requestHeaders",
                                              "spec.routes[0].filters.responseHeaders"}));
  // Over HTTPS a redirect carries the route's Strict-Transport-Security: not warned (helper-134).
  Translator tls;
  auto s = tls.Translate(Store(TlsSecretNamed("cert", kTestCertPem, kTestKeyPem) + "---\n" + Lb(R"(  listeners: [{name: web, port: 443, protocol: HTTPS, tls: {certificates: [{secretName: cert}]}}]
  routes:
    - name: a
      listener: web
      filters: {redirect: {host: example.com}, responseHeaders: {set: {Strict-Transport-Security: "max-age=63072000"}}}
)")));
  ASSERT_TRUE(StatusOf(s, "shop")->accepted) << StatusOf(s, "shop")->message;
  EXPECT_TRUE(StatusOf(s, "shop")->warnings.empty()) << StatusOf(s, "shop")->warnings[0].message;
}

// An Exact header value no request carries (a control character): the route never matches;
// warned, not refused, so an object accepted before keeps its other routes (helper-134).
TEST(Translate, AHeaderValueNoRequestCarriesIsWarned) {
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - {name: a, listener: web, match: {headers: [{name: x-a, value: "a\nb"}]}, backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}
    - {name: b, listener: web, backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}
)")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "NeverMatches");
  EXPECT_EQ(st->warnings[0].field, "spec.routes[0].match.headers[0].value");
  EXPECT_EQ(r.snapshot.routes_size(), 2);
}

// A LoadBalancer reads no annotation, but drops none silently: an ingress-nginx access rule
// (not enforced) and a doorman.dev/ key are warned, and the object is still routed (helper-131).
TEST(Translate, AnnotationsOnALoadBalancerAreWarned) {
  Translator t;
  std::string lb = Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}]
)");
  lb.replace(lb.find("  namespace: default\n"), 0,
             "  annotations: {nginx.ingress.kubernetes.io/whitelist-source-range: 10.0.0.0/8, "
             "doorman.dev/scheduler: maglev, example.com/other: x}\n");
  auto r = t.Translate(Store(lb));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 2u);
  EXPECT_EQ(st->warnings[0].reason, "UnknownAnnotation");
  EXPECT_EQ(st->warnings[0].field, "metadata.annotations[doorman.dev/scheduler]");
  EXPECT_NE(st->warnings[0].message.find("takes no doorman.dev annotations"), std::string::npos) << st->warnings[0].message;
  EXPECT_EQ(st->warnings[1].reason, "AnnotationIgnored");
  EXPECT_NE(st->warnings[1].message.find("whitelist-source-range"), std::string::npos);
  EXPECT_EQ(r.snapshot.routes_size(), 1);
}

// A redirect whose Location is the request's own URL is accepted (Gateway API allows it) but
// warned: a client that follows it loops.
TEST(Translate, ARedirectToTheSameUrlIsWarned) {
  struct Case {
    const char* redirect;
    const char* match;
    bool warned;
    const char* port = "80";  // the listener's
  };
  for (const auto& c : {Case{"{}", "{}", true}, Case{"{scheme: http}", "{}", true},
                        Case{"{scheme: http, port: 80}", "{}", true}, Case{"{scheme: https}", "{}", false},
                        Case{"{port: 8080}", "{}", false}, Case{"{path: /new}", "{}", false},
                        Case{"{host: other.example}", "{}", false},
                        // Set to the only host / the Exact path the route matches: still its own URL.
                        Case{"{path: /a}", "{path: {type: Exact, value: /a}}", true},
                        // Not said: another, more specific route may serve the target
                        // (helper-128: /docs -> /docs/index.html, *.example.com -> www).
                        Case{"{path: /a/index.html}", "{path: {type: Prefix, value: /a}}", false},
                        Case{"{path: /maintenance}", "{path: {type: Prefix, value: /}}", false},
                        Case{"{path: /b}", "{path: {type: Exact, value: /a}}", false},
                        Case{"{host: l3.example}", "{hosts: [l3.example]}", true},
                        Case{"{host: l3.example}", "{hosts: [l3.example, m.example]}", false},
                        Case{"{host: www.example}", "{hosts: [\"*.example\"]}", false},
                        Case{"{host: l3.example, path: /a}", "{hosts: [l3.example], path: {type: Exact, value: /a}}", true},
                        // Post/Redirect/Get: the follow-up GET does not match a POST-only route.
                        Case{"{statusCode: 303}", "{methods: [POST]}", false},
                        Case{"{statusCode: 303}", "{methods: [POST, GET]}", true},
                        // Port 0 with a scheme is that scheme's port: http://host/ from :8080 is not a loop.
                        Case{"{scheme: http}", "{}", false, "8080"}, Case{"{}", "{}", true, "8080"},
                        Case{"{scheme: http, port: 8080}", "{}", true, "8080"}}) {
    Translator t;
    auto r = t.Translate(Store(Lb(std::string("  listeners: [{name: web, port: ") + c.port + R"(, protocol: HTTP}]
  routes: [{name: a, listener: web, match: )" + c.match + ", filters: {redirect: " + c.redirect + "}}]\n")));
    const ObjectStatus* st = StatusOf(r, "shop");
    ASSERT_TRUE(st->accepted) << c.redirect << ": " << st->message;
    const bool has = std::any_of(st->warnings.begin(), st->warnings.end(), [](const StatusWarning& w) {
      return w.reason == "RedirectLoop" && w.field == "spec.routes[0].filters.redirect";
    });
    EXPECT_EQ(has, c.warned) << c.redirect << " " << c.match << " on port " << c.port;
  }
}

// responseHeaders.remove Date: accepted (it was before) and kept, but warned: the dataplane adds
// its own Date after the rules, as a response needs one. add Date: warned and made a set.
TEST(Translate, RemovingTheResponseDateIsWarned) {
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - {name: a, listener: web, filters: {responseHeaders: {remove: [x-a, Date]}, requestHeaders: {remove: [date]}},
       backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}
    - {name: b, listener: web, match: {path: {type: Prefix, value: /b}},
       filters: {responseHeaders: {add: {Date: "Thu, 01 Jan 2026 00:00:00 GMT", x-b: "1"}}},
       backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}
)")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 2u);
  EXPECT_EQ(st->warnings[0].reason, "FieldIgnored");
  EXPECT_EQ(st->warnings[0].field, "spec.routes[0].filters.responseHeaders.remove[1]");
  // add Date (accepted before): a second Date would be invalid, so it replaces it, as set does.
  EXPECT_EQ(st->warnings[1].field, "spec.routes[1].filters.responseHeaders.add.Date");
  ASSERT_EQ(r.snapshot.routes_size(), 2);
  const v1::Route* a = nullptr;
  const v1::Route* b = nullptr;
  for (const auto& route : r.snapshot.routes()) (route.name() == "default/shop/a" ? a : b) = &route;
  EXPECT_EQ(a->filters().response_headers().remove_size(), 2);
  EXPECT_EQ(b->filters().response_headers().add().size(), 1u);
  EXPECT_EQ(b->filters().response_headers().set().at("date"), "Thu, 01 Jan 2026 00:00:00 GMT");
}

// Accepted with a warning, not refused (objects accepted before must not stop routing on an
// upgrade): rewrite.host overridden by requestHeaders.set Host; pathPrefix "" on a regex route.
TEST(Translate, ContradictoryRewritesAreWarnedNotRefused) {
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - {name: a, listener: web, filters: {rewrite: {host: a.internal}, requestHeaders: {set: {Host: b.internal}}},
       backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}
    - {name: b, listener: web, match: {path: {type: RegularExpression, value: "/x.*"}}, filters: {rewrite: {pathPrefix: ""}},
       backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}
)")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 2u);
  EXPECT_EQ(st->warnings[0].reason, "FieldIgnored");
  EXPECT_EQ(st->warnings[0].field, "spec.routes[0].filters.rewrite.host");
  EXPECT_EQ(st->warnings[1].field, "spec.routes[1].filters.rewrite.pathPrefix");
  for (const auto& route : r.snapshot.routes()) {
    if (route.name() == "default/shop/b") {
      EXPECT_EQ(route.filters().rewrite().path_prefix(), "");
    }
  }
}

// rewrite.host and requestHeaders.set Host take what a Host header may carry: names of any case,
// '_', a port; a bare IPv6 address is sent bracketed.
TEST(Translate, HostRewritesTakeHostHeaderValues) {
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - {name: a, listener: web, filters: {rewrite: {host: "fd00::1"}}, backends: [{endpoints: [{address: 127.0.0.1, port: 1}]}]}
    - {name: b, listener: web, filters: {rewrite: {host: "My_Svc.Internal:8080"}}, backends: [{endpoints: [{address: 127.0.0.1, port: 1}]}]}
    - {name: c, listener: web, filters: {requestHeaders: {set: {Host: "[fd00::1]:8443"}}}, backends: [{endpoints: [{address: 127.0.0.1, port: 1}]}]}
)")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  std::map<std::string, std::string> hosts;
  for (const auto& route : r.snapshot.routes()) {
    hosts[route.name()] = route.filters().rewrite().host();
    if (route.filters().request_headers().set().count("host")) hosts[route.name()] = route.filters().request_headers().set().at("host");
  }
  EXPECT_EQ(hosts["default/shop/a"], "[fd00::1]");
  EXPECT_EQ(hosts["default/shop/b"], "My_Svc.Internal:8080");
  EXPECT_EQ(hosts["default/shop/c"], "[fd00::1]:8443");
}

TEST(Translate, AnEmptyRewritePrefixStripsTheMatchedPrefix) {
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, match: {path: {type: Prefix, value: /foo}}, filters: {rewrite: {pathPrefix: ""}},
            backends: [{endpoints: [{address: 127.0.0.1, port: 5433}]}]}]
)")));
  ASSERT_TRUE(StatusOf(r, "shop")->accepted) << StatusOf(r, "shop")->message;
  ASSERT_EQ(r.snapshot.routes_size(), 1);
  EXPECT_TRUE(r.snapshot.routes(0).filters().rewrite().enabled());
  EXPECT_EQ(r.snapshot.routes(0).filters().rewrite().path_prefix(), "/");
}

TEST(Translate, HealthCheckBoundsAreTheCrds) {
  Translator t;
  auto r = t.Translate(Store(Lb(std::string(kBasic) +
                                "  healthCheck: {protocol: HTTP, healthyThreshold: 10, unhealthyThreshold: 1, "
                                "expectedStatuses: [200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, "
                                "303, 304, 307]}\n")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_GT(r.snapshot.backend_sets_size(), 0);
  EXPECT_EQ(r.snapshot.backend_sets(0).health_check().healthy_threshold(), 10u);
  EXPECT_EQ(r.snapshot.backend_sets(0).health_check().expected_statuses_size(), 16);
}

// As the CRD's default (protocol: TCP), a health check without a protocol is a TCP check.
TEST(Translate, HealthCheckProtocolDefaultsToTcp) {
  Translator t;
  auto r = t.Translate(Store(Lb(std::string(kBasic) + "  healthCheck: {interval: 3s}\n")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_GT(r.snapshot.backend_sets_size(), 0);
  EXPECT_EQ(r.snapshot.backend_sets(0).health_check().protocol(), v1::HealthCheck::TCP);
  EXPECT_EQ(r.snapshot.backend_sets(0).health_check().interval_ms(), 3000u);
}

// ---- last good ----------------------------------------------------------------------------------

TEST(Translate, LastGoodVersionKeepsRoutingAndIsReportedOnce) {
  Translator t;
  const std::string good = Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - name: api
      listener: web
      match: {path: {type: Prefix, value: /api}}
      backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]
)");
  auto r1 = t.Translate(Store(good));
  ASSERT_TRUE(StatusOf(r1, "shop")->accepted);
  const uint64_t v1 = SnapshotVersion(r1.snapshot);

  std::string bad = good;
  bad.replace(bad.find("Prefix"), 6, "Glob");
  auto r2 = t.Translate(Store(bad));
  const ObjectStatus* st = StatusOf(r2, "shop");
  EXPECT_FALSE(st->accepted);
  EXPECT_TRUE(st->serving_last_good);
  EXPECT_EQ(st->reason, "UnsupportedValue");
  EXPECT_EQ(SnapshotVersion(r2.snapshot), v1);
  ASSERT_EQ(r2.diagnostics.size(), 1u);
  const Diagnostic& d = r2.diagnostics[0];
  EXPECT_EQ(d.level, log::Level::kWarn);
  EXPECT_EQ(d.message, "invalid object, keeping last good version");
  EXPECT_EQ(d.Field("file"), "/m/test.yaml");
  EXPECT_EQ(d.Field("object"), "LoadBalancer default/shop");
  EXPECT_EQ(d.Field("field"), "spec.routes[0].match.path.type");
  EXPECT_EQ(d.Field("error"), "unknown path type \"Glob\" (want Exact, Prefix or RegularExpression)");

  // Unchanged problem: no new line.
  EXPECT_TRUE(t.Translate(Store(bad)).diagnostics.empty());

  // A different valid edit replaces the last good version.
  std::string edited = good;
  edited.replace(edited.find("/api"), 4, "/v2");
  auto r3 = t.Translate(Store(edited));
  EXPECT_TRUE(StatusOf(r3, "shop")->accepted);
  EXPECT_NE(SnapshotVersion(r3.snapshot), v1);
  ASSERT_EQ(r3.diagnostics.size(), 1u);
  EXPECT_EQ(r3.diagnostics[0].message, "object accepted again");

  // Removed: gone from the snapshot, and its last good version is forgotten.
  auto r4 = t.Translate(ObjectStore{});
  EXPECT_EQ(r4.snapshot.listeners_size(), 0);
  auto r5 = t.Translate(Store(bad));
  EXPECT_EQ(r5.snapshot.listeners_size(), 0);
  EXPECT_FALSE(StatusOf(r5, "shop")->serving_last_good);
  // Fixed after it was never accepted: accepted, not "again" (helper-100).
  auto r6 = t.Translate(Store(good));
  EXPECT_TRUE(StatusOf(r6, "shop")->accepted);
  ASSERT_EQ(r6.diagnostics.size(), 1u);
  EXPECT_EQ(r6.diagnostics[0].message, "object accepted");
}

// What one translator served from last good, another (a replica started later) adopts: the
// same snapshot; its own accepted version is never replaced by a seed.
TEST(Translate, ALastGoodVersionSeededFromAnotherReplicaRoutesTheSame) {
  const std::string good = Lb(kBasic);
  std::string bad = good;
  bad.replace(bad.find("protocol: HTTP"), 14, "protocol: HTTP2");
  Translator a;
  a.Translate(Store(good));
  EXPECT_TRUE(a.LastGoodServed().empty());
  auto ra = a.Translate(Store(bad));
  ASSERT_TRUE(StatusOf(ra, "shop")->serving_last_good);
  const auto served = a.LastGoodServed();
  ASSERT_EQ(served.size(), 1u);

  Translator b;
  EXPECT_EQ(b.Translate(Store(bad)).snapshot.listeners_size(), 0);
  for (const auto& [key, object] : served) b.SeedLastGood(key, object);
  auto rb = b.Translate(Store(bad));
  EXPECT_TRUE(StatusOf(rb, "shop")->serving_last_good);
  EXPECT_EQ(SnapshotVersion(rb.snapshot), SnapshotVersion(ra.snapshot));
  EXPECT_EQ(b.LastGoodServed(), served);

  // A seed does not override a version this translator accepted itself.
  std::string edited = good;
  edited.replace(edited.find("8080"), 4, "8081");
  Translator c;
  const uint64_t own = SnapshotVersion(c.Translate(Store(edited)).snapshot);
  for (const auto& [key, object] : served) c.SeedLastGood(key, object);
  std::string edited_bad = edited;
  edited_bad.replace(edited_bad.find("protocol: HTTP"), 14, "protocol: HTTP2");
  EXPECT_EQ(SnapshotVersion(c.Translate(Store(edited_bad)).snapshot), own);
}

TEST(Translate, ObjectFromAFileThatStopsParsingKeepsRouting) {
  Translator t;
  ManifestSet set;
  set.ApplyFile("/m/lb.yaml", ParseManifests(Lb(kBasic), "/m/lb.yaml"), nullptr);
  const uint64_t v1 = SnapshotVersion(t.Translate(set.objects()).snapshot);
  set.ApplyFile("/m/lb.yaml", ParseManifests("kind: [unclosed\n", "/m/lb.yaml"), nullptr);
  auto r = t.Translate(set.objects());
  EXPECT_EQ(SnapshotVersion(r.snapshot), v1);
  const ObjectStatus* st = StatusOf(r, "shop");
  EXPECT_FALSE(st->accepted);
  EXPECT_TRUE(st->serving_last_good);
  EXPECT_EQ(st->reason, "InvalidManifest");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].Field("file"), "/m/lb.yaml");
  EXPECT_NE(r.diagnostics[0].Field("error").find("/m/lb.yaml:"), std::string::npos);
}

TEST(Translate, NeverValidObjectIsLeftOut) {
  Translator t;
  auto r = t.Translate(Store(Lb("  listeners: [{name: a, port: 80, protocol: SCTP}]\n")));
  EXPECT_EQ(r.snapshot.listeners_size(), 0);
  EXPECT_FALSE(StatusOf(r, "shop")->serving_last_good);
}

// A problem is reported once, where it is: a route on a listener refused for its port or
// protocol is not also told the listener does not exist, and a TLS route whose match.sni entries
// were all refused is not taken for a second default route.
TEST(Translate, NoFollowOnProblems) {
  for (const std::string listener : {"{name: w1, port: 70000, protocol: HTTP}", "{name: w1, port: \"abc\", protocol: HTTP}",
                                     "{name: w1, port: 8080, protocol: HTTPX}", "{name: w1, port: 8080, protocol: http}"}) {
    SCOPED_TRACE(listener);
    Translator t;
    auto r = t.Translate(Store(Lb("  listeners: [" + listener + "]\n  routes: [{name: a, listener: w1, backends: "
                                  "[{endpoints: [{address: 10.0.0.1, port: 80}]}]}]\n")));
    const ObjectStatus* st = StatusOf(r, "shop");
    ASSERT_FALSE(st->accepted);
    EXPECT_EQ(st->field.rfind("spec.listeners[0].", 0), 0u) << st->field;
    EXPECT_EQ(st->message.find("no listener named"), std::string::npos) << st->message;
  }
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners: [{name: t, port: 8443, protocol: TLS}]
  routes:
    - {name: any, listener: t, backends: [{endpoints: [{address: 10.0.0.1, port: 443}]}]}
    - {name: upper, listener: t, match: {sni: [A.Example.COM]}, backends: [{endpoints: [{address: 10.0.0.2, port: 443}]}]}
    - {name: dotted, listener: t, match: {sni: ["b.example.com."]}, backends: [{endpoints: [{address: 10.0.0.3, port: 443}]}]}
)")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_FALSE(st->accepted);
  EXPECT_EQ(st->message.find("already has a default route"), std::string::npos) << st->message;
  EXPECT_NE(st->message.find("spec.routes[1].match.sni"), std::string::npos) << st->message;
  EXPECT_NE(st->message.find("spec.routes[2].match.sni"), std::string::npos) << st->message;
}

// A listener no route names is opened (it is declared) and said to be unused: 404 for HTTP,
// refused for TCP/TLS, dropped for UDP.
TEST(Translate, AListenerWithoutRoutesIsWarned) {
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners:
    - {name: web, port: 8080, protocol: HTTP}
    - {name: db, port: 5432, protocol: TCP}
    - {name: dns, port: 5353, protocol: UDP}
    - {name: used, port: 9000, protocol: TCP}
  routes: [{name: a, listener: used, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 3u);
  const char* want[][2] = {
      {"spec.listeners[0]",
       "no route names listener \"web\": this object routes nothing on port 8080 (requests no other object routes get 404)"},
      {"spec.listeners[1]", "no route names listener \"db\": this object routes nothing on port 5432 (its connections are refused)"},
      {"spec.listeners[2]", "no route names listener \"dns\": this object routes nothing on port 5353 (its datagrams are dropped)"}};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(st->warnings[i].reason, "NoRoutes");
    EXPECT_EQ(st->warnings[i].field, want[i][0]);
    EXPECT_EQ(st->warnings[i].message, want[i][1]);
  }
  EXPECT_NE(ListenerNamed(r.snapshot, "tcp-5432"), nullptr);
}

// ---- sharing ports --------------------------------------------------------------------------------

TEST(Translate, PortConflictGoesToTheOldestObject) {
  const std::string a = Lb("  listeners: [{name: db, port: 5432, protocol: TCP}]\n", "zz-old", "2026-01-01T00:00:00Z");
  const std::string b = Lb("  listeners: [{name: db, port: 5432, protocol: TCP}]\n", "aa-new", "2026-02-01T00:00:00Z");
  Translator t;
  auto r = t.Translate(Store(a + "---\n" + b));
  EXPECT_TRUE(StatusOf(r, "zz-old")->accepted);
  const ObjectStatus* loser = StatusOf(r, "aa-new");
  EXPECT_FALSE(loser->accepted);
  EXPECT_EQ(loser->reason, "PortConflict");
  EXPECT_EQ(loser->field, "spec.listeners[0].port");
  EXPECT_NE(loser->message.find("LoadBalancer default/zz-old"), std::string::npos) << loser->message;
  ASSERT_EQ(r.snapshot.listeners_size(), 1);
  ASSERT_EQ(r.snapshot.listeners(0).owners_size(), 1);
  EXPECT_EQ(r.snapshot.listeners(0).owners(0).name(), "zz-old");
  // Logged: the loser not routed, and the winner's listener without routes (NoRoutes).
  ASSERT_EQ(r.diagnostics.size(), 2u);
  EXPECT_EQ(r.diagnostics[0].message, "port conflict, object not routed");
  EXPECT_EQ(r.diagnostics[1].message, "object warning");
  EXPECT_EQ(r.diagnostics[1].Field("reason"), "NoRoutes");

  // Without timestamps: namespace/name decides. TCP and UDP on the same port do not clash.
  Translator t2;
  auto r2 = t2.Translate(Store(Lb("  listeners: [{name: db, port: 53, protocol: TCP}]\n", "b") + "---\n" +
                               Lb("  listeners: [{name: db, port: 53, protocol: TCP}]\n", "a") + "---\n" +
                               Lb("  listeners: [{name: dns, port: 53, protocol: UDP}]\n", "c")));
  EXPECT_TRUE(StatusOf(r2, "a")->accepted);
  EXPECT_EQ(StatusOf(r2, "b")->reason, "PortConflict");
  EXPECT_TRUE(StatusOf(r2, "c")->accepted);
  ASSERT_EQ(r2.snapshot.listeners_size(), 2);
  EXPECT_EQ(r2.snapshot.listeners(0).name(), "tcp-53");
  EXPECT_EQ(r2.snapshot.listeners(1).name(), "udp-53");
}

// creationTimestamp is a point in time, not a string (audit-l4 item 4): UTC offsets, fractional
// seconds and lowercase t/z order by time. A missing or unparseable one counts as newest, and
// then namespace/name decides ("a" before "b").
TEST(Translate, ConflictOrderComparesCreationTimestampsAsTimes) {
  struct Case {
    const char* a;
    const char* b;
    const char* winner;
  };
  const Case cases[] = {
      {"2023-05-04T23:00:00Z", "2023-05-05T00:00:00+02:00", "b"},  // b is 22:00Z
      {"2023-05-04T20:00:00-03:00", "2023-05-04T22:30:00Z", "b"},  // a is 23:00Z
      {"2023-05-04T23:00:00.1Z", "2023-05-04T23:00:00Z", "b"},
      {"2023-05-04T23:00:00.25Z", "2023-05-04T23:00:00.5Z", "a"},
      {"2023-05-04t22:00:00z", "2023-05-04T23:00:00Z", "a"},
      {"2023-05-04T23:00:00+00:00", "2023-05-04T23:00:00Z", "a"},  // the same time: by name
      {"2024-01-01T00:00:00Z", "2023-12-31T23:59:59.999999+00:00", "b"},
      {"", "2023-05-04T23:00:00Z", "b"},
      {"yesterday", "", "a"},                                          // both newest: by name
      {"", "2023-02-30T00:00:00Z", "a"},                               // no such date
      {"", "2023-05-04T23:00:00+02", "a"},                             // offset without minutes
      {"", "2023-05-04T23:00:00", "a"},                                // no offset
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.a) + " vs " + c.b);
    const std::string spec = "  listeners: [{name: t, port: 22942, protocol: TCP}]\n";
    Translator t;
    auto r = t.Translate(Store(Lb(spec, "a", c.a) + "---\n" + Lb(spec, "b", c.b)));
    ASSERT_EQ(r.snapshot.listeners_size(), 1);
    ASSERT_EQ(r.snapshot.listeners(0).owners_size(), 1);
    EXPECT_EQ(r.snapshot.listeners(0).owners(0).name(), c.winner);
    const std::string loser = std::string(c.winner) == "a" ? "b" : "a";
    EXPECT_EQ(StatusOf(r, loser)->reason, "PortConflict");
  }
}

// Each port goes to its oldest claimant, whatever else the objects claim (audit-l4 item 3: an
// object that lost one port used to route nothing, and a younger object took its other port). As
// Gateway API does with conflicted listeners, a loser's conflicted listeners are not served and
// its others are: Accepted with a PortConflict warning per lost port. Losing every listener is
// Accepted=False, PortConflict.
TEST(Translate, PortConflictsAreDecidedPerPort) {
  const std::string svc = R"(apiVersion: v1
kind: Service
metadata: {name: young-svc, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z"}
spec: {type: LoadBalancer, loadBalancerClass: doorman.dev/lb, ports: [{name: web, port: 22401, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: oldest-svc, namespace: default, creationTimestamp: "2019-01-01T00:00:00Z"}
spec: {type: LoadBalancer, loadBalancerClass: doorman.dev/lb, ports: [{name: dns, port: 22402, protocol: UDP}]}
)";
  const std::string lb = Lb(R"(  listeners: [{name: t, port: 22401, protocol: TLS}, {name: u, port: 22402, protocol: UDP}]
  routes:
    - {name: r, listener: t, backends: [{endpoints: [{address: 127.0.0.1, port: 22002}]}]}
    - {name: r2, listener: u, backends: [{endpoints: [{address: 127.0.0.1, port: 22012}]}]}
)",
                            "pc-lb", "2020-01-01T00:00:00Z");
  Translator t;
  auto r = t.Translate(Store(svc + "---\n" + lb));
  // 22402/udp: the 2019 Service.
  EXPECT_TRUE(StatusOf(r, "oldest-svc")->accepted);
  ASSERT_NE(ListenerNamed(r.snapshot, "udp-22402"), nullptr);
  EXPECT_EQ(ListenerNamed(r.snapshot, "udp-22402")->owners(0).name(), "oldest-svc");
  EXPECT_EQ(ListenerRoutes(r.snapshot, "udp-22402"), (std::vector<std::string>{"default/service:oldest-svc/dns"}));
  // 22401/tcp: the 2020 LoadBalancer, which lost 22402 but keeps its TLS listener.
  const ObjectStatus* lb_st = StatusOf(r, "pc-lb");
  EXPECT_TRUE(lb_st->accepted) << lb_st->message;
  ASSERT_EQ(lb_st->warnings.size(), 1u);
  EXPECT_EQ(lb_st->warnings[0].reason, "PortConflict");
  EXPECT_EQ(lb_st->warnings[0].field, "spec.listeners[1].port");
  EXPECT_NE(lb_st->warnings[0].message.find("port 22402/udp is already used by Service default/oldest-svc"),
            std::string::npos)
      << lb_st->warnings[0].message;
  ASSERT_EQ(lb_st->listeners.size(), 2u);  // status lists the declared listeners
  EXPECT_EQ(ListenerRoutes(r.snapshot, "tls-22401"), (std::vector<std::string>{"default/pc-lb/r"}));
  EXPECT_EQ(ListenerNamed(r.snapshot, "tls-22401")->owners_size(), 1);
  // The lost listener's route and backend set are not in the snapshot.
  EXPECT_EQ(RouteNamed(r.snapshot, "default/pc-lb/r2"), nullptr);
  EXPECT_EQ(SetNamed(r.snapshot, "default/pc-lb/r2/0"), nullptr);
  EXPECT_NE(SetNamed(r.snapshot, "default/pc-lb/r/0"), nullptr);
  // The 2024 Service lost its only port: not routed, told who has it.
  const ObjectStatus* young = StatusOf(r, "young-svc");
  EXPECT_FALSE(young->accepted);
  EXPECT_FALSE(young->serving_last_good);
  EXPECT_EQ(young->reason, "PortConflict");
  EXPECT_EQ(young->field, "spec.ports[0].port");
  EXPECT_NE(young->message.find("port 22401/tcp is already used by LoadBalancer default/pc-lb"), std::string::npos)
      << young->message;
  EXPECT_EQ(RouteNamed(r.snapshot, "default/service:young-svc/web"), nullptr);
  // One log line per problem: the warning, and the Service not routed.
  ASSERT_EQ(r.diagnostics.size(), 2u);
  EXPECT_EQ(r.diagnostics[0].message, "object warning");
  EXPECT_EQ(r.diagnostics[0].Field("reason"), "PortConflict");
  EXPECT_EQ(r.diagnostics[1].message, "port conflict, object not routed");
}

// An edit that adds a clashing listener: the new spec is served without it. An edit whose every
// listener clashes is not accepted and the last good version keeps routing.
TEST(Translate, AcceptedObjectThatGainsAConflict) {
  const std::string old = Lb("  listeners: [{name: db, port: 5432, protocol: TCP}]\n", "old", "2026-01-01T00:00:00Z");
  const std::string v1 = Lb("  listeners: [{name: db, port: 6000, protocol: TCP}]\n", "new", "2026-02-01T00:00:00Z");
  const std::string v2 = Lb(R"(  listeners: [{name: db, port: 6001, protocol: TCP}, {name: x, port: 5432, protocol: TCP}]
  routes: [{name: x, listener: x, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}]
)",
                            "new", "2026-02-01T00:00:00Z");
  const std::string v3 = Lb("  listeners: [{name: x, port: 5432, protocol: TCP}]\n", "new", "2026-02-01T00:00:00Z");
  Translator t;
  auto r1 = t.Translate(Store(old + "---\n" + v1));
  ASSERT_NE(ListenerNamed(r1.snapshot, "tcp-6000"), nullptr);
  auto r2 = t.Translate(Store(old + "---\n" + v2));
  const ObjectStatus* st = StatusOf(r2, "new");
  EXPECT_TRUE(st->accepted);
  ASSERT_EQ(st->warnings.size(), 2u);
  EXPECT_EQ(st->warnings[0].field, "spec.listeners[0]");  // db: no route names it
  EXPECT_EQ(st->warnings[0].reason, "NoRoutes");
  EXPECT_EQ(st->warnings[1].field, "spec.listeners[1].port");
  EXPECT_EQ(ListenerNamed(r2.snapshot, "tcp-6000"), nullptr);
  EXPECT_NE(ListenerNamed(r2.snapshot, "tcp-6001"), nullptr);
  EXPECT_EQ(ListenerNamed(r2.snapshot, "tcp-5432")->owners(0).name(), "old");
  EXPECT_EQ(r2.snapshot.routes_size(), 0);
  auto r3 = t.Translate(Store(old + "---\n" + v3));
  st = StatusOf(r3, "new");
  EXPECT_FALSE(st->accepted);
  EXPECT_EQ(st->reason, "PortConflict");
  EXPECT_EQ(st->field, "spec.listeners[0].port");
  EXPECT_TRUE(st->serving_last_good);  // v2, the last accepted version, without its clashing listener
  EXPECT_EQ(SerializeSnapshot(r3.snapshot), SerializeSnapshot(r2.snapshot));
}

TEST(Translate, HttpObjectsShareAPortAndMergeRoutes) {
  const std::string a = Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - {name: catchall, listener: web, match: {hosts: ["*.example.com"]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: docs, listener: web, match: {hosts: [example.com], path: {type: Prefix, value: /docs}}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
)",
                           "a", "2026-01-01T00:00:00Z");
  const std::string b = Lb(R"(  listeners: [{name: front, port: 80, protocol: HTTP}]
  routes:
    - {name: api, listener: front, match: {hosts: [api.example.com]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: any, listener: front, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
)",
                           "b", "2026-01-02T00:00:00Z");
  Translator t;
  auto r = t.Translate(Store(a + "---\n" + b));
  EXPECT_TRUE(StatusOf(r, "a")->accepted);
  EXPECT_TRUE(StatusOf(r, "b")->accepted);
  ASSERT_EQ(r.snapshot.listeners_size(), 1);
  const auto& l = r.snapshot.listeners(0);
  EXPECT_EQ(l.name(), "http-80");
  ASSERT_EQ(l.owners_size(), 2);
  EXPECT_EQ(l.owners(0).name(), "a");
  EXPECT_EQ(l.owners(1).name(), "b");
  EXPECT_EQ(ListenerRoutes(r.snapshot, "http-80"),
            (std::vector<std::string>{"default/b/api", "default/a/docs", "default/a/catchall", "default/b/any"}));
}

// helper-137: namespace "evil" named "shop"'s host with a more specific path on the shared port
// and took its logins. A host belongs to the namespace of the oldest object routing it there.
TEST(Translate, AHostBelongsToTheNamespaceOfItsOldestObject) {
  auto lb = [](const std::string& ns, const std::string& name, const std::string& created, const std::string& routes) {
    return "apiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: " + name + ", namespace: " + ns +
           ", creationTimestamp: \"" + created + "\"}\nspec:\n  listeners: [{name: web, port: 80, protocol: HTTP}]\n  routes:\n" +
           routes;
  };
  const std::string ep = "backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]";
  const std::string shop = lb("shop", "shop", "2026-01-01T00:00:00Z", "    - {name: site, listener: web, match: {hosts: [web.test]}, " + ep + "}\n");
  const std::string evil = lb("evil", "evil", "2026-01-02T00:00:00Z",
                              "    - {name: login, listener: web, match: {hosts: [web.test], path: {type: Exact, value: /login}}, " + ep + "}\n"
                              "    - {name: both, listener: web, match: {hosts: [evil.test, web.test]}, " + ep + "}\n"
                              "    - {name: own, listener: web, match: {hosts: [own.test]}, " + ep + "}\n");
  // Another port is no way around it (an ACME HTTP-01 path on port 80 for a host served on 443).
  {
    Translator t;
    const std::string other_port = "apiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: acme, namespace: evil, "
                                   "creationTimestamp: \"2026-01-05T00:00:00Z\"}\nspec:\n  listeners: [{name: alt, port: 8080, "
                                   "protocol: HTTP}]\n  routes:\n    - {name: acme, listener: alt, match: {hosts: [web.test]}, " + ep + "}\n";
    auto r = t.Translate(Store(shop + "---\n" + other_port));
    EXPECT_EQ(RouteNamed(r.snapshot, "evil/acme/acme"), nullptr);
    ASSERT_EQ(StatusOf(r, "acme")->warnings.size(), 1u);
    EXPECT_NE(StatusOf(r, "acme")->warnings[0].message.find("port 8080: host web.test (LoadBalancer shop/shop)"), std::string::npos);
  }
  const std::string friendly = lb("shop", "blog", "2026-01-03T00:00:00Z",
                                  "    - {name: blog, listener: web, match: {hosts: [web.test], path: {type: Prefix, value: /blog}}, " + ep + "}\n");
  {
    Translator t;
    auto r = t.Translate(Store(shop + "---\n" + evil + "---\n" + friendly));
    EXPECT_EQ(ListenerRoutes(r.snapshot, "http-80"),
              (std::vector<std::string>{"evil/evil/both", "shop/blog/blog", "shop/shop/site", "evil/evil/own"}));
    ASSERT_NE(RouteNamed(r.snapshot, "evil/evil/both"), nullptr);
    EXPECT_EQ(std::vector<std::string>(RouteNamed(r.snapshot, "evil/evil/both")->match().hosts().begin(),
                                       RouteNamed(r.snapshot, "evil/evil/both")->match().hosts().end()),
              std::vector<std::string>{"evil.test"});
    const ObjectStatus* st = StatusOf(r, "evil");
    ASSERT_NE(st, nullptr);
    EXPECT_TRUE(st->accepted);
    ASSERT_EQ(st->listeners.size(), 1u);
    EXPECT_EQ(st->listeners[0].attached_routes, 2u);  // "login" is not attached
    ASSERT_EQ(st->warnings.size(), 2u);
    EXPECT_EQ(st->warnings[0].reason, "HostConflict");
    EXPECT_EQ(st->warnings[0].field, "spec.routes[0].match.hosts");
    EXPECT_NE(st->warnings[0].message.find("port 80: host web.test (LoadBalancer shop/shop) is routed by an older object of "
                                           "another namespace, so route \"login\" is not served"),
              std::string::npos)
        << st->warnings[0].message;
    EXPECT_EQ(st->warnings[1].field, "spec.routes[1].match.hosts");
    EXPECT_NE(st->warnings[1].message.find("route \"both\" does not take its requests"), std::string::npos);
    // The backend set of the route not served is not sent either.
    for (const auto& set : r.snapshot.backend_sets()) EXPECT_NE(set.name(), "evil/evil/login/0");
    EXPECT_TRUE(StatusOf(r, "blog")->warnings.empty());  // one namespace shares its host
    // The dataplanes learn whose each host is (so evil's wildcard or catch-all routes cannot take
    // web.test's unmatched paths, nor its certificates web.test's handshakes).
    std::vector<std::string> owners;
    for (const auto& o : r.snapshot.host_owners()) {
      owners.push_back(o.host() + "=" + o.namespace_() + (o.wildcard_one_label() ? "/1" : ""));
    }
    EXPECT_EQ(owners, (std::vector<std::string>{"evil.test=evil", "own.test=evil", "web.test=shop"}));
  }
  {
    TranslateOptions opts;
    opts.allow_cross_namespace_hosts = true;
    Translator t(opts);
    auto r = t.Translate(Store(shop + "---\n" + evil));
    EXPECT_TRUE(StatusOf(r, "evil")->warnings.empty());
    EXPECT_NE(RouteNamed(r.snapshot, "evil/evil/login"), nullptr);
    EXPECT_EQ(r.snapshot.host_owners_size(), 0);  // every host is everyone's
  }
  {
    // The older object's namespace owns it, whichever namespace that is.
    Translator t;
    auto r = t.Translate(Store(lb("shop", "shop", "2026-01-03T00:00:00Z", "    - {name: site, listener: web, match: {hosts: [web.test]}, " + ep + "}\n") +
                               "---\n" + evil));
    EXPECT_EQ(RouteNamed(r.snapshot, "shop/shop/site"), nullptr);
    EXPECT_NE(RouteNamed(r.snapshot, "evil/evil/login"), nullptr);
    EXPECT_EQ(StatusOf(r, "shop")->warnings.size(), 1u);
    EXPECT_EQ(StatusOf(r, "shop")->listeners.at(0).attached_routes, 0u);
  }
}

TEST(Translate, SharedHttpsPortNeedsEqualListenerSettings) {
  const std::string secret =
      "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\n" + TlsStringData();
  const std::string a = Lb("  listeners: [{name: web, port: 443, protocol: HTTPS, tls: {certificates: [{secretName: s}]}}]\n",
                           "a", "2026-01-01T00:00:00Z");
  const std::string b = Lb(
      "  listeners: [{name: web, port: 443, protocol: HTTPS, idleTimeout: 5s, tls: {certificates: [{secretName: s}]}}]\n",
      "b", "2026-01-02T00:00:00Z");
  Translator t;
  auto r = t.Translate(Store(a + "---\n" + b + secret));
  EXPECT_EQ(StatusOf(r, "b")->reason, "PortConflict");
  EXPECT_EQ(StatusOf(r, "b")->field, "spec.listeners[0].idleTimeout");
  ASSERT_EQ(r.snapshot.certificates_size(), 1);
  EXPECT_EQ(r.snapshot.certificates(0).name(), "default/s");
  // Several settings differ: all are named at once (one fix, not one per round trip).
  const std::string c = Lb("  listeners: [{name: web, port: 443, protocol: HTTPS, idleTimeout: 5s, "
                           "allowedSourceRanges: [10.0.0.0/8], tls: {certificates: [{secretName: s}], minVersion: \"1.3\"}}]\n",
                           "c", "2026-01-03T00:00:00Z");
  Translator t2;
  auto r2 = t2.Translate(Store(a + "---\n" + c + secret));
  EXPECT_EQ(StatusOf(r2, "c")->field, "spec.listeners[0].tls.minVersion");
  EXPECT_NE(StatusOf(r2, "c")->message.find("whose tls.minVersion, idleTimeout and allowedSourceRanges differ; listeners "
                                             "sharing a port must agree on them"),
            std::string::npos)
      << StatusOf(r2, "c")->message;
  // A default written out is the same setting as none (helper-100): idleTimeout 60s (or 1m),
  // minVersion "1.2". The objects share the port and both route.
  for (const char* same : {"idleTimeout: 60s, ", "idleTimeout: 1m, tls: {minVersion: \"1.2\", "}) {
    SCOPED_TRACE(same);
    std::string listener = std::string("  listeners: [{name: web, port: 443, protocol: HTTPS, ") + same;
    listener += listener.find("tls:") == std::string::npos ? "tls: {" : "";
    const std::string d = Lb(listener + "certificates: [{secretName: s}]}}]\n", "d", "2026-01-04T00:00:00Z");
    Translator t3;
    auto r3 = t3.Translate(Store(a + "---\n" + d + secret));
    EXPECT_TRUE(StatusOf(r3, "d")->accepted) << StatusOf(r3, "d")->message;
    EXPECT_NE(StatusOf(r3, "d")->reason, "PortConflict");
    ASSERT_EQ(r3.snapshot.listeners_size(), 1);
    EXPECT_EQ(r3.snapshot.listeners(0).owners_size(), 2);
  }
}

// ---- precedence -----------------------------------------------------------------------------------

TEST(Translate, RoutePrecedenceWithinAListener) {
  const std::string spec = R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - {name: no-host, listener: web, match: {path: {type: Prefix, value: /very/long/path}}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: wild, listener: web, match: {hosts: ["*.example.com"]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: wild-longer, listener: web, match: {hosts: ["*.shop.example.com"]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: exact-short, listener: web, match: {hosts: [a.io]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: exact-prefix, listener: web, match: {hosts: [api.example.com], path: {type: Prefix, value: /api}}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: exact-exact, listener: web, match: {hosts: [api.example.com], path: {type: Exact, value: /api}}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: exact-longer-path, listener: web, match: {hosts: [api.example.com], path: {type: Prefix, value: /api/v1}}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: exact-canary, listener: web, match: {hosts: [api.example.com], path: {type: Prefix, value: /api}, headers: [{name: x-canary, value: "1"}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: exact-dup, listener: web, match: {hosts: [api.example.com], path: {type: Prefix, value: /api}}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: exact-regex, listener: web, match: {hosts: [api.example.com], path: {type: RegularExpression, value: "/[a-z]+(/.*)?"}}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
)";
  Translator t;
  auto r = t.Translate(Store(Lb(spec)));
  ASSERT_TRUE(StatusOf(r, "shop")->accepted) << StatusOf(r, "shop")->message;
  // An Exact path first, whatever its length (helper-100: a longer regex took "/api" before);
  // then the longer value.
  EXPECT_EQ(ListenerRoutes(r.snapshot, "http-80"),
            (std::vector<std::string>{"default/shop/exact-exact", "default/shop/exact-regex", "default/shop/exact-longer-path",
                                      "default/shop/exact-canary", "default/shop/exact-prefix",
                                      "default/shop/exact-dup", "default/shop/exact-short",
                                      "default/shop/wild-longer", "default/shop/wild", "default/shop/no-host"}));
}

// A cookie value may hold inner spaces (browsers send them), commas and quotes; a regular
// expression written with lower-case escapes is served with a warning (requests are matched with
// upper-case hex digits).
TEST(Translate, CookieValuesAndRegexEscapes) {
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - {name: a, listener: web, match: {cookies: [{name: who, value: "John Doe"}, {name: l, value: "a,b"}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}
    - {name: b, listener: web, match: {path: {type: RegularExpression, value: "/caf%c3%a9.*"}}, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}
)")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "PathNeverMatches");
  EXPECT_EQ(st->warnings[0].field, "spec.routes[1].match.path.value");
}

// Gateway API's order after the path: a method match, then the number of header matches, then
// the number of query parameter matches (helper-76: doorman summed them, so two headers beat a
// method). Cookies (doorman's own) come last.
TEST(Translate, MethodThenHeadersThenQueryAsGatewayApiOrdersThem) {
  const std::string spec = R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - {name: q2, listener: web, match: {queryParams: [{name: a, value: "1"}, {name: b, value: "1"}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: h1-q1, listener: web, match: {headers: [{name: x-3, type: Present}], queryParams: [{name: a, value: "1"}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: h2, listener: web, match: {headers: [{name: x-1, type: Present}, {name: x-2, type: Present}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: cookie, listener: web, match: {cookies: [{name: c, value: "1"}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: h1, listener: web, match: {headers: [{name: x-3, type: Present}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: method, listener: web, match: {methods: [GET]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
)";
  Translator t;
  auto r = t.Translate(Store(Lb(spec)));
  ASSERT_TRUE(StatusOf(r, "shop")->accepted) << StatusOf(r, "shop")->message;
  EXPECT_EQ(ListenerRoutes(r.snapshot, "http-80"),
            (std::vector<std::string>{"default/shop/method", "default/shop/h2", "default/shop/h1-q1", "default/shop/h1",
                                      "default/shop/q2", "default/shop/cookie"}));
}

// Gateway API: a route without a path match has the path match Prefix "/". An older object's
// host-only route and a newer object's host + Prefix "/" route are the same match: the older one
// takes the requests and the newer one is told it is shadowed (helper-76: the newer one took
// them, silently).
TEST(Translate, NoPathIsTheSameMatchAsPrefixSlash) {
  const std::string older = Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: host-only, listener: web, match: {hosts: [foo.example.com]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}]
)", "a", "2020-01-01T00:00:00Z");
  const std::string newer = Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: slash, listener: web, match: {hosts: [foo.example.com], path: {type: Prefix, value: /}}, backends: [{endpoints: [{address: 10.0.0.2, port: 1}]}]}]
)", "e", "2025-01-01T00:00:00Z");
  Translator t;
  auto r = t.Translate(Store(older + "---\n" + newer));
  EXPECT_EQ(ListenerRoutes(r.snapshot, "http-80"), (std::vector<std::string>{"default/a/host-only", "default/e/slash"}));
  EXPECT_TRUE(StatusOf(r, "a")->warnings.empty());
  ASSERT_EQ(StatusOf(r, "e")->warnings.size(), 1u);
  EXPECT_EQ(StatusOf(r, "e")->warnings[0].reason, "RouteShadowed");
  // A Prefix's trailing '/' does not make another match ("/x/" matches "/x"): shadowed too.
  Translator t2;
  auto r2 = t2.Translate(Store(Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - {name: a, listener: web, match: {path: {type: Prefix, value: /x}}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: b, listener: web, match: {path: {type: Prefix, value: /x/}}, backends: [{endpoints: [{address: 10.0.0.2, port: 1}]}]}
)")));
  ASSERT_EQ(StatusOf(r2, "shop")->warnings.size(), 1u);
  EXPECT_EQ(StatusOf(r2, "shop")->warnings[0].reason, "RouteShadowed");
  // Named as written (helper-81: it said "default/shop/b" on "http-80", and spec.routes).
  EXPECT_EQ(StatusOf(r2, "shop")->warnings[0].field, "spec.routes[1]");
  EXPECT_EQ(StatusOf(r2, "shop")->warnings[0].message,
            "route \"b\" on listener \"web\" has the same match as route \"a\", which takes all its requests: it is "
            "never used");
}

// RouteShadowed does not depend on the order hosts, methods, headers, query parameters and
// cookies are listed in, and a route whose every host earlier routes with the same rest of the
// match take, host by host, is shadowed too; one with a host of its own is not (helper-100).
TEST(Translate, ShadowingIgnoresListOrderAndCountsHostByHost) {
  const std::string spec = R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - {name: first, listener: web, match: {hosts: [h1.test, h2.test], methods: [GET, POST], headers: [{name: a, value: "1"}, {name: b, value: "1"}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: reversed, listener: web, match: {hosts: [h2.test, h1.test], methods: [POST, GET], headers: [{name: B, value: "1"}, {name: a, value: "1"}]}, backends: [{endpoints: [{address: 10.0.0.2, port: 1}]}]}
    - {name: subset, listener: web, match: {hosts: [h1.test], methods: [GET, POST], headers: [{name: a, value: "1"}, {name: b, value: "1"}]}, backends: [{endpoints: [{address: 10.0.0.3, port: 1}]}]}
    - {name: own-host, listener: web, match: {hosts: [h1.test, h3.test], methods: [GET, POST], headers: [{name: a, value: "1"}, {name: b, value: "1"}]}, backends: [{endpoints: [{address: 10.0.0.4, port: 1}]}]}
    - {name: q1, listener: web, match: {hosts: [h4.test], queryParams: [{name: x, value: "1"}, {name: y, value: "2"}], cookies: [{name: c, value: "1"}, {name: d, value: "2"}]}, backends: [{endpoints: [{address: 10.0.0.5, port: 1}]}]}
    - {name: q2, listener: web, match: {hosts: [h4.test], queryParams: [{name: y, value: "2"}, {name: x, value: "1"}], cookies: [{name: d, value: "2"}, {name: c, value: "1"}]}, backends: [{endpoints: [{address: 10.0.0.6, port: 1}]}]}
    - {name: h5, listener: web, match: {hosts: [h5.test]}, backends: [{endpoints: [{address: 10.0.0.7, port: 1}]}]}
    - {name: h6, listener: web, match: {hosts: [h6.test]}, backends: [{endpoints: [{address: 10.0.0.7, port: 1}]}]}
    - {name: both, listener: web, match: {hosts: [h6.test, h5.test]}, backends: [{endpoints: [{address: 10.0.0.8, port: 1}]}]}
)";
  Translator t;
  auto r = t.Translate(Store(Lb(spec)));
  ASSERT_TRUE(StatusOf(r, "shop")->accepted) << StatusOf(r, "shop")->message;
  std::map<std::string, std::string> shadowed;  // field → message
  for (const auto& w : StatusOf(r, "shop")->warnings) {
    EXPECT_EQ(w.reason, "RouteShadowed");
    shadowed[w.field] = w.message;
  }
  EXPECT_EQ(shadowed.size(), 4u) << ::testing::PrintToString(shadowed);
  EXPECT_EQ(shadowed["spec.routes[1]"], "route \"reversed\" on listener \"web\" has the same match as route \"first\", "
                                        "which takes all its requests: it is never used");
  EXPECT_NE(shadowed["spec.routes[2]"].find("as route \"first\""), std::string::npos);  // subset
  EXPECT_EQ(shadowed.count("spec.routes[3]"), 0u);                                      // h3.test is its own
  EXPECT_NE(shadowed["spec.routes[5]"].find("as route \"q1\""), std::string::npos);
  EXPECT_EQ(shadowed["spec.routes[8]"], "route \"both\" on listener \"web\" has the same match as routes \"h5\", "
                                        "\"h6\", which take all its requests: it is never used");
}

// An Exact path precedes a Prefix that also matches its request even when the Prefix is declared
// longer ("/login/" matches "/login"), and a route without a path ranks as Prefix "/", so a
// header- or method-matched route without a path precedes a plain "/" route (found by review:
// both used to be shadowed), a method match before a header match (Gateway API's order), and a
// route without any match ties with Prefix "/" (the older object, then declaration order).
TEST(Translate, ExactBeatsATrailingSlashPrefixAndNoPathRanksAsSlash) {
  const std::string spec = R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - {name: slash, listener: web, match: {path: {type: Prefix, value: /}}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: login-prefix, listener: web, match: {path: {type: Prefix, value: /login/}}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: by-header, listener: web, match: {headers: [{name: x-beta, value: "1"}]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: login-exact, listener: web, match: {path: {type: Exact, value: /login}}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: by-method, listener: web, match: {methods: [POST]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
    - {name: no-path, listener: web, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}
)";
  Translator t;
  auto r = t.Translate(Store(Lb(spec)));
  ASSERT_TRUE(StatusOf(r, "shop")->accepted) << StatusOf(r, "shop")->message;
  EXPECT_EQ(ListenerRoutes(r.snapshot, "http-80"),
            (std::vector<std::string>{"default/shop/login-exact", "default/shop/login-prefix",
                                      "default/shop/by-method", "default/shop/by-header", "default/shop/slash",
                                      "default/shop/no-path"}));
}

// ---- determinism ----------------------------------------------------------------------------------

TEST(Translate, SameInputInAnyOrderGivesTheSameBytesAndVersion) {
  const std::string dir = DOORMAN_CONTROLLER_TESTDATA;
  const std::string full = ReadFile(dir + "/full.yaml");
  // Split into documents and reverse them, across two files.
  std::vector<std::string> docs;
  size_t start = 0;
  while (true) {
    const size_t next = full.find("\n---\n", start);
    docs.push_back(full.substr(start, next == std::string::npos ? std::string::npos : next - start + 1));
    if (next == std::string::npos) break;
    start = next + 5;
  }
  ASSERT_GE(docs.size(), 5u);
  std::string first;
  std::string second;
  for (size_t i = docs.size(); i-- > 0;) (i % 2 ? first : second) += "---\n" + docs[i];
  Translator t1;
  Translator t2;
  auto a = t1.Translate(Store({{"/m/full.yaml", full}}));
  auto b = t2.Translate(Store({{"/m/2.yaml", second}, {"/m/1.yaml", first}}));
  EXPECT_EQ(SerializeSnapshot(a.snapshot), SerializeSnapshot(b.snapshot));
  EXPECT_EQ(SnapshotVersion(a.snapshot), SnapshotVersion(b.snapshot));
  EXPECT_LT(SnapshotVersion(a.snapshot), uint64_t{1} << 53);
  // And translating twice is stable.
  EXPECT_EQ(SerializeSnapshot(t1.Translate(Store({{"/m/full.yaml", full}})).snapshot), SerializeSnapshot(a.snapshot));
}

// ---- references -----------------------------------------------------------------------------------

// A route whose every backend has weight 0 routes nothing: said on the object, not only in the
// dataplane's log. One weight above 0 is enough.
TEST(Translate, ARouteWithOnlyZeroWeightsIsWarned) {
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners: [{name: t, port: 7000, protocol: TCP}, {name: u, port: 7001, protocol: TCP}]
  routes:
    - {name: zero, listener: t, backends: [{endpoints: [{address: 127.0.0.2, port: 9}], weight: 0}]}
    - {name: some, listener: u, backends: [{endpoints: [{address: 127.0.0.2, port: 9}], weight: 0}, {endpoints: [{address: 127.0.0.3, port: 9}]}]}
)")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "NoBackends");
  EXPECT_EQ(st->warnings[0].field, "spec.routes[0].backends");
  EXPECT_NE(st->warnings[0].message.find("weight 0"), std::string::npos);
}

// CONNECT is in the CRD's method enum, but the proxy answers it 400 before routing.
TEST(Translate, AConnectMethodMatchIsWarned) {
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes:
    - {name: only, listener: web, match: {methods: [CONNECT]}, backends: [{endpoints: [{address: 127.0.0.2, port: 9}]}]}
    - {name: some, listener: web, match: {methods: [GET, CONNECT]}, backends: [{endpoints: [{address: 127.0.0.2, port: 9}]}]}
)")));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 2u);
  EXPECT_EQ(st->warnings[0].reason, "FieldIgnored");
  EXPECT_EQ(st->warnings[0].field, "spec.routes[0].match.methods[0]");
  EXPECT_NE(st->warnings[0].message.find("this route matches no request"), std::string::npos) << st->warnings[0].message;
  EXPECT_EQ(st->warnings[1].field, "spec.routes[1].match.methods[1]");
  EXPECT_EQ(st->warnings[1].message.find("this route matches no request"), std::string::npos);
}

TEST(Translate, ServiceBackendsFollowEndpointSlicesByPortName) {
  const std::string yaml = Lb(R"(  listeners: [{name: web, port: 80, protocol: HTTP}]
  routes: [{name: a, listener: web, backends: [{service: api, port: 8080}, {service: gone, port: 80}, {service: api, port: 1}]}]
)") + R"(---
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {ports: [{name: web, port: 8080, targetPort: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-x, labels: {kubernetes.io/service-name: api}}
ports: [{name: other, port: 9999}, {name: web, port: 80}]
endpoints:
  - {addresses: [10.0.0.2, 10.0.0.1], conditions: {ready: true}}  # the first address only, as kube-proxy
  - {addresses: ["fd00:0:0::1"]}                                   # one address, two spellings: one endpoint
  - {addresses: ["FD00::1"]}
)";
  Translator t;
  auto r = t.Translate(Store(yaml));
  const ObjectStatus* st = StatusOf(r, "shop");
  EXPECT_TRUE(st->accepted);
  ASSERT_EQ(st->warnings.size(), 2u);
  EXPECT_EQ(st->warnings[0].message, "Service default/gone not found");
  EXPECT_EQ(st->warnings[1].message, "Service default/api has no port 1");
  ASSERT_EQ(r.snapshot.backend_sets_size(), 3);
  const auto& set = r.snapshot.backend_sets(0);
  EXPECT_EQ(set.service(), "default/api:8080");
  ASSERT_EQ(set.endpoints_size(), 2);
  EXPECT_EQ(set.endpoints(0).address(), "10.0.0.2");
  EXPECT_EQ(set.endpoints(0).port(), 80u);
  EXPECT_EQ(set.endpoints(1).address(), "fd00::1");
  EXPECT_EQ(r.snapshot.backend_sets(1).endpoints_size(), 0);
}

// kube-dns has dns/UDP 53 and dns-tcp/TCP 53: a backend {service, port} takes the Service port of
// its listener's transport, as kube-proxy does, whichever of the two is listed first.
TEST(Translate, ServiceBackendsTakeThePortOfTheListenersProtocol) {
  const std::string lb = Lb(R"(  listeners:
    - {name: dnsu, port: 53, protocol: UDP}
    - {name: dnst, port: 53, protocol: TCP}
    - {name: dot, port: 853, protocol: TLS}
  routes:
    - {name: u, listener: dnsu, backends: [{service: dns, port: 53}]}
    - {name: t, listener: dnst, backends: [{service: dns, port: 53}]}
    - {name: s, listener: dot, backends: [{service: dns, port: 53}]}
)");
  const std::string slice = R"(---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: dns-a, labels: {kubernetes.io/service-name: dns}}
ports: [{name: dns-tcp, port: 5301, protocol: TCP}, {name: dns, port: 5302, protocol: UDP}]
endpoints: [{addresses: [10.0.0.1]}]
)";
  for (const char* ports : {"[{name: dns-tcp, port: 53, protocol: TCP}, {name: dns, port: 53, protocol: UDP}]",
                            "[{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53}]"}) {
    SCOPED_TRACE(ports);
    Translator t;
    auto r = t.Translate(Store(lb + "---\napiVersion: v1\nkind: Service\nmetadata: {name: dns}\nspec: {ports: " +
                               ports + "}\n" + slice));
    const ObjectStatus* st = StatusOf(r, "shop");
    ASSERT_TRUE(st->accepted) << st->message;
    EXPECT_TRUE(st->warnings.empty()) << st->warnings[0].message;
    for (const auto& [set, port] : std::vector<std::pair<std::string, uint32_t>>{
             {"default/shop/u/0", 5302}, {"default/shop/t/0", 5301}, {"default/shop/s/0", 5301}}) {
      ASSERT_NE(SetNamed(r.snapshot, set), nullptr) << set;
      ASSERT_EQ(SetNamed(r.snapshot, set)->endpoints_size(), 1) << set;
      EXPECT_EQ(SetNamed(r.snapshot, set)->endpoints(0).port(), port) << set;
    }
  }

  // Only the other protocol on that number: a warning naming the field, and no endpoints (not the
  // UDP port's endpoints behind a TCP listener, nor the other way round).
  Translator t;
  auto r = t.Translate(Store(Lb(R"(  listeners: [{name: dnsu, port: 53, protocol: UDP}, {name: dnst, port: 53, protocol: TCP}]
  routes:
    - {name: u, listener: dnsu, backends: [{service: tcp-only, port: 53}]}
    - {name: t, listener: dnst, backends: [{service: udp-only, port: 53}]}
)") + R"(---
apiVersion: v1
kind: Service
metadata: {name: tcp-only}
spec: {ports: [{name: dns-tcp, port: 53}]}
---
apiVersion: v1
kind: Service
metadata: {name: udp-only}
spec: {ports: [{name: dns, port: 53, protocol: UDP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: tcp-only-a, labels: {kubernetes.io/service-name: tcp-only}}
ports: [{name: dns-tcp, port: 5301, protocol: TCP}]
endpoints: [{addresses: [10.0.0.1]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: udp-only-a, labels: {kubernetes.io/service-name: udp-only}}
ports: [{name: dns, port: 5302, protocol: UDP}]
endpoints: [{addresses: [10.0.0.1]}]
)"));
  const ObjectStatus* st = StatusOf(r, "shop");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 2u);
  EXPECT_EQ(st->warnings[0].reason, "BackendNotFound");
  EXPECT_EQ(st->warnings[0].field, "spec.routes[0].backends[0].service");
  EXPECT_EQ(st->warnings[0].message,
            "Service default/tcp-only has no UDP port 53 (its port 53 is TCP; a UDP listener routes to a UDP Service port)");
  EXPECT_EQ(st->warnings[1].field, "spec.routes[1].backends[0].service");
  EXPECT_EQ(st->warnings[1].message,
            "Service default/udp-only has no TCP port 53 (its port 53 is UDP; a TCP, TLS, HTTP or HTTPS listener routes to a TCP Service port)");
  EXPECT_EQ(SetNamed(r.snapshot, "default/shop/u/0")->endpoints_size(), 0);
  EXPECT_EQ(SetNamed(r.snapshot, "default/shop/t/0")->endpoints_size(), 0);
}

TEST(Translate, PrivateKeysAreRedactedInTheDebugJson) {
  const std::string dir = DOORMAN_CONTROLLER_TESTDATA;
  Translator t;
  auto r = t.Translate(Store({{dir + "/full.yaml", ReadFile(dir + "/full.yaml")}}));
  ASSERT_EQ(r.snapshot.certificates_size(), 1);
  EXPECT_NE(r.snapshot.certificates(0).private_key_pem().find("PRIVATE KEY"), std::string::npos);
  const std::string j = RedactedSnapshotJson(r.snapshot);
  EXPECT_NE(j.find("\"privateKeyPem\":\"REDACTED\""), std::string::npos) << j.substr(0, 200);
  EXPECT_EQ(j.find(kTestKeyBytes), std::string::npos);
  EXPECT_NE(j.find("\"name\":\"https-8443\""), std::string::npos) << j.substr(0, 200);
  // Problems never quote Secret content.
  for (const auto& st : r.statuses) EXPECT_EQ(st.message.find(kTestKeyBytes), std::string::npos);
}

}  // namespace
}  // namespace doorman::controller
