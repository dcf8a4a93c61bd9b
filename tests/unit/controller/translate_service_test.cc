// Service of type LoadBalancer → Snapshot (controller/translate/service.cc), API.md §1.1.
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "controller/source/manifest.h"
#include "controller/translate/internal.h"
#include "controller/translate/translate.h"
#include "tests/unit/controller/translate_test_util.h"

namespace doorman::controller {
namespace {

namespace v1 = doorman::v1;
using namespace doorman::controller::testing;  // NOLINT(build/namespaces): shared test helpers

const ObjectStatus* Svc(const TranslateResult& r, const std::string& name) { return StatusOf(r, "Service", name); }

void ExpectGolden(const std::string& name, const TranslateResult& r) {
  const std::string path = std::string(DOORMAN_CONTROLLER_TESTDATA) + "/" + name;
  const std::string actual = GoldenText(r);
  if (std::getenv("DOORMAN_UPDATE_GOLDEN")) std::ofstream(path) << actual;
  EXPECT_EQ(actual, ReadFile(path)) << "run with DOORMAN_UPDATE_GOLDEN=1 to update " << path;
}

// A Service "default/<name>" of type LoadBalancer, class doorman.dev/lb, with extra metadata
// lines (indented by two) and spec lines (indented by two).
std::string Service(const std::string& name, const std::string& spec, const std::string& meta = "") {
  return "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + name + "\n  namespace: default\n" + meta +
         "spec:\n  type: LoadBalancer\n  loadBalancerClass: doorman.dev/lb\n" + spec;
}
std::string Annotated(const std::string& name, const std::string& annotations, const std::string& spec) {
  return Service(name, spec, "  annotations:\n" + annotations);
}

constexpr const char* kTcp80 = "  ports: [{name: http, port: 80}]\n";

// ---- golden -----------------------------------------------------------------------------------

TEST(TranslateService, GoldenEveryFieldAndAnnotation) {
  const std::string path = std::string(DOORMAN_CONTROLLER_TESTDATA) + "/service.yaml";
  TranslateOptions opts;
  opts.default_lb_class = true;
  Translator t(opts);
  auto r = t.Translate(Store(ReadFile(path), path));
  for (const char* name : {"web", "dns", "db"}) {
    ASSERT_NE(Svc(r, name), nullptr) << name;
    EXPECT_TRUE(Svc(r, name)->accepted) << name << ": " << Svc(r, name)->message;
  }
  EXPECT_EQ(Svc(r, "aws"), nullptr);       // another class: no status, not routed
  EXPECT_EQ(Svc(r, "internal"), nullptr);  // ClusterIP
  ASSERT_EQ(Svc(r, "web")->listeners.size(), 2u);
  EXPECT_EQ(Svc(r, "web")->listeners[0].name, "http");
  EXPECT_EQ(Svc(r, "web")->listeners[0].attached_routes, 1u);
  ExpectGolden("service.snapshot.txtpb", r);

  // Spot checks of what the golden says, so a regenerated golden cannot hide a regression.
  const v1::Listener* web80 = ListenerNamed(r.snapshot, "tcp-80");
  ASSERT_NE(web80, nullptr);
  EXPECT_EQ(web80->proxy_protocol().send(), v1::PROXY_PROTOCOL_V2);
  EXPECT_EQ(web80->idle_timeout_ms(), 120000u);
  EXPECT_EQ(web80->allowed_source_ranges_size(), 2);
  const v1::Route* route = RouteNamed(r.snapshot, "shop/service:web/http");
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->listener(), "tcp-80");
  EXPECT_EQ(route->policy().scheduler(), "maglev");
  EXPECT_EQ(route->policy().stickiness().type(), v1::Stickiness::SOURCE_IP);
  EXPECT_EQ(route->policy().stickiness().ttl_ms(), 600000u);
  const v1::BackendSet* set = SetNamed(r.snapshot, "shop/service:web/http/0");
  ASSERT_NE(set, nullptr);
  EXPECT_TRUE(set->local_only());
  EXPECT_EQ(set->service(), "shop/web:80");
  EXPECT_EQ(set->health_check().protocol(), v1::HealthCheck::HTTP);
  EXPECT_EQ(set->health_check().path(), "/healthz");
  // 10.0.0.1 serving+terminating, .2 ready (deduplicated), .3 not ready, .4 no conditions,
  // .6 "ready" but terminating, fd00::5.
  ASSERT_EQ(set->endpoints_size(), 6);
  EXPECT_EQ(set->endpoints(0).address(), "10.0.0.1");
  EXPECT_FALSE(set->endpoints(0).ready());
  EXPECT_TRUE(set->endpoints(0).serving());
  EXPECT_TRUE(set->endpoints(0).terminating());
  EXPECT_EQ(set->endpoints(1).address(), "10.0.0.2");
  EXPECT_TRUE(set->endpoints(1).ready());
  EXPECT_EQ(set->endpoints(1).node_name(), "node-b");
  EXPECT_FALSE(set->endpoints(2).ready());
  EXPECT_FALSE(set->endpoints(2).serving());
  EXPECT_TRUE(set->endpoints(3).ready());
  EXPECT_TRUE(set->endpoints(3).serving());
  EXPECT_EQ(set->endpoints(4).address(), "10.0.0.6");
  EXPECT_FALSE(set->endpoints(4).ready());
  EXPECT_TRUE(set->endpoints(4).terminating());
  EXPECT_EQ(set->endpoints(0).port(), 8080u);
  EXPECT_EQ(SetNamed(r.snapshot, "shop/service:web/https/0")->endpoints(0).port(), 8443u);
  const v1::Route* dns = RouteNamed(r.snapshot, "kube-system/service:dns/53");
  ASSERT_NE(dns, nullptr);
  EXPECT_EQ(dns->listener(), "udp-53");
  EXPECT_EQ(SetNamed(r.snapshot, "kube-system/service:dns/53/0")->endpoints(0).port(), 5353u);
  const v1::Route* db = RouteNamed(r.snapshot, "shop/service:db/pg");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->listener(), "tls-5432");
  ASSERT_EQ(db->match().sni_size(), 2);
  EXPECT_EQ(db->match().sni(1), "*.db.example.com");
  EXPECT_EQ(ListenerNamed(r.snapshot, "tls-5432")->protocol(), v1::TLS);
}

TEST(TranslateService, SameInputInAnyOrderGivesTheSameBytes) {
  const std::string text = ReadFile(std::string(DOORMAN_CONTROLLER_TESTDATA) + "/service.yaml");
  std::vector<std::string> docs;
  size_t start = 0;
  while (true) {
    const size_t next = text.find("\n---\n", start);
    docs.push_back(text.substr(start, next == std::string::npos ? std::string::npos : next - start + 1));
    if (next == std::string::npos) break;
    start = next + 5;
  }
  std::string reversed;
  for (size_t i = docs.size(); i-- > 0;) reversed += "---\n" + docs[i];
  TranslateOptions opts;
  opts.default_lb_class = true;
  Translator a(opts);
  Translator b(opts);
  EXPECT_EQ(SerializeSnapshot(a.Translate(Store(text)).snapshot),
            SerializeSnapshot(b.Translate(Store(reversed, "/m/other.yaml")).snapshot));
}

// ---- which Services doorman claims ---------------------------------------------------------------

TEST(TranslateService, ClaimsByClassAndDefaultClassFlag) {
  struct Case {
    const char* spec;
    bool default_lb_class;
    bool claimed;
    const char* class_flag = "doorman.dev/lb";
  };
  const Case cases[] = {
      {"  type: LoadBalancer\n  loadBalancerClass: doorman.dev/lb\n", false, true},
      // --load-balancer-class: a second install takes its own class, and no longer the default's.
      {"  type: LoadBalancer\n  loadBalancerClass: doorman.dev/lb\n", false, false, "example.com/internal"},
      {"  type: LoadBalancer\n  loadBalancerClass: example.com/internal\n", false, true, "example.com/internal"},
      {"  type: LoadBalancer\n", true, true, "example.com/internal"},
      {"  type: LoadBalancer\n  loadBalancerClass: doorman.dev/lb\n", true, true},
      {"  type: LoadBalancer\n", false, false},
      {"  type: LoadBalancer\n", true, true},
      {"  type: LoadBalancer\n  loadBalancerClass: example.com/other\n", true, false},
      {"  type: ClusterIP\n", true, false},
      {"  type: NodePort\n  loadBalancerClass: doorman.dev/lb\n", true, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.spec) + (c.default_lb_class ? " --default-lb-class" : "") + " --load-balancer-class=" +
                 c.class_flag);
    TranslateOptions opts;
    opts.default_lb_class = c.default_lb_class;
    opts.load_balancer_class = c.class_flag;
    Translator t(opts);
    auto r = t.Translate(Store("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n" + std::string(c.spec) +
                               "  ports: [{port: 80}]\n"));
    EXPECT_EQ(Svc(r, "s") != nullptr, c.claimed);
    EXPECT_EQ(r.snapshot.listeners_size(), c.claimed ? 1 : 0);
  }
}

// ---- ports and endpoints --------------------------------------------------------------------------

TEST(TranslateService, PortsResolveByNameAndUnnamedPortsByTheUnnamedSlicePort) {
  const std::string yaml = Service("mixed", R"(  ports:
    - {name: dns, port: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, protocol: TCP}
)") + R"(---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: mixed-1, labels: {kubernetes.io/service-name: mixed}}
ports: [{name: dns, port: 1053, protocol: UDP}, {name: dns-tcp, port: 2053, protocol: TCP}, {name: dns, port: 9999, protocol: TCP}]
endpoints: [{addresses: [10.0.0.1]}]
---
)" + Service("single", "  ports: [{port: 8080}]\n") +
                           R"(---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: single-1, labels: {kubernetes.io/service-name: single}}
ports: [{port: 80}]
endpoints: [{addresses: [10.0.0.9]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: other-ns, namespace: elsewhere, labels: {kubernetes.io/service-name: single}}
ports: [{port: 81}]
endpoints: [{addresses: [10.0.0.8]}]
)";
  Translator t;
  auto r = t.Translate(Store(yaml));
  ASSERT_TRUE(Svc(r, "mixed")->accepted) << Svc(r, "mixed")->message;
  // TCP and UDP share port 53 (different transports), each with its own listener.
  ASSERT_NE(ListenerNamed(r.snapshot, "udp-53"), nullptr);
  ASSERT_NE(ListenerNamed(r.snapshot, "tcp-53"), nullptr);
  EXPECT_EQ(SetNamed(r.snapshot, "default/service:mixed/dns/0")->endpoints(0).port(), 1053u);
  EXPECT_EQ(SetNamed(r.snapshot, "default/service:mixed/dns-tcp/0")->endpoints(0).port(), 2053u);
  const v1::BackendSet* single = SetNamed(r.snapshot, "default/service:single/8080/0");
  ASSERT_NE(single, nullptr);
  ASSERT_EQ(single->endpoints_size(), 1);  // not the slice of another namespace
  EXPECT_EQ(single->endpoints(0).address(), "10.0.0.9");
  EXPECT_EQ(single->endpoints(0).port(), 80u);
  EXPECT_EQ(RouteNamed(r.snapshot, "default/service:single/8080")->listener(), "tcp-8080");
}

TEST(TranslateService, NoEndpointSlicesYetMeansAnEmptyBackendSet) {
  Translator t;
  auto r = t.Translate(Store(Service("new", kTcp80)));
  ASSERT_TRUE(Svc(r, "new")->accepted);
  EXPECT_TRUE(Svc(r, "new")->warnings.empty());
  ASSERT_NE(SetNamed(r.snapshot, "default/service:new/http/0"), nullptr);
  EXPECT_EQ(SetNamed(r.snapshot, "default/service:new/http/0")->endpoints_size(), 0);
  // A slice without ports (Kubernetes writes one while a Service has no endpoints) is no
  // evidence of a mismatch: still no warning.
  Translator t2;
  r = t2.Translate(Store(Service("new", kTcp80) + "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                         "metadata: {name: new-1, labels: {kubernetes.io/service-name: new}}\naddressType: IPv4\n"
                         "ports: null\nendpoints: null\n"));
  EXPECT_TRUE(Svc(r, "new")->warnings.empty());
}

// Slices whose ports do not include the Service port's name (renamed in one place only): the
// set is empty whatever endpoints they list; a BackendNotFound warning says why.
TEST(TranslateService, SlicesWithoutThePortsNameAreWarned) {
  const std::string slice = "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                            "metadata: {name: s-1, labels: {kubernetes.io/service-name: s}}\naddressType: IPv4\n"
                            "ports: [{name: web, port: 8080}, {name: http, port: 53, protocol: UDP}]\n"
                            "endpoints: [{addresses: [10.0.0.1]}]\n";
  Translator t;
  auto r = t.Translate(Store(Service("s", kTcp80) + slice));
  ASSERT_TRUE(Svc(r, "s")->accepted) << Svc(r, "s")->message;
  EXPECT_EQ(SetNamed(r.snapshot, "default/service:s/http/0")->endpoints_size(), 0);
  ASSERT_EQ(Svc(r, "s")->warnings.size(), 1u);
  EXPECT_EQ(Svc(r, "s")->warnings[0].reason, "BackendNotFound");
  EXPECT_EQ(Svc(r, "s")->warnings[0].field, "spec.ports[0].name");
  EXPECT_EQ(Svc(r, "s")->warnings[0].message,
            "the EndpointSlices of Service default/s have no TCP port named \"http\" (they have \"http\"/UDP, "
            "\"web\"/TCP), so it has no endpoints");
  // An unnamed Service port and a named slice port.
  Translator t2;
  r = t2.Translate(Store(Service("s", "  ports: [{port: 80}]\n") + slice));
  ASSERT_EQ(Svc(r, "s")->warnings.size(), 1u);
  EXPECT_EQ(Svc(r, "s")->warnings[0].field, "spec.ports[0].port");
  EXPECT_NE(Svc(r, "s")->warnings[0].message.find("no TCP port without a name"), std::string::npos);
  // The name matches but the slice gives no usable port number: SliceEndpoints finds nothing too.
  Translator t4;
  std::string no_number = slice;
  no_number.replace(no_number.find("{name: web, port: 8080}"), 23, "{name: http}");
  r = t4.Translate(Store(Service("s", kTcp80) + no_number));
  ASSERT_EQ(Svc(r, "s")->warnings.size(), 1u);
  EXPECT_NE(Svc(r, "s")->warnings[0].message.find("\"http\"/TCP without a port number"), std::string::npos)
      << Svc(r, "s")->warnings[0].message;
  // The same through a LoadBalancer backend {service, port}.
  Translator t3;
  r = t3.Translate(Store(
      Service("s", kTcp80) + slice +
      "---\napiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: lb, namespace: default}\n"
      "spec:\n  listeners: [{name: t, port: 9000, protocol: TCP}]\n"
      "  routes: [{name: r, listener: t, backends: [{service: s, port: 80}]}]\n"));
  const ObjectStatus* lb = StatusOf(r, "LoadBalancer", "lb");
  ASSERT_NE(lb, nullptr);
  ASSERT_TRUE(lb->accepted) << lb->message;
  ASSERT_EQ(lb->warnings.size(), 1u) << lb->warnings[0].message;
  EXPECT_EQ(lb->warnings[0].reason, "BackendNotFound");
  EXPECT_NE(lb->warnings[0].message.find("have no TCP port named \"http\""), std::string::npos) << lb->warnings[0].message;
}

TEST(TranslateService, LoadBalancerIpIsWarnedAsNotUsed) {
  Translator t;
  auto r = t.Translate(Store(Service("s", std::string(kTcp80) + "  loadBalancerIP: 10.9.9.9\n")));
  const auto* st = Svc(r, "s");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "FieldIgnored");
  EXPECT_EQ(st->warnings[0].field, "spec.loadBalancerIP");
}

TEST(TranslateService, UdpPortsAreNotHealthChecked) {
  Translator t;
  auto r = t.Translate(Store(Annotated("s", "    doorman.dev/health-check: tcp\n",
                                       "  ports:\n    - {name: dns, port: 53, protocol: UDP}\n    - {name: web, port: 80, protocol: TCP}\n")));
  const auto* st = Svc(r, "s");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "AnnotationIgnored");
  EXPECT_EQ(st->warnings[0].field, "metadata.annotations[doorman.dev/health-check]");
  EXPECT_EQ(SetNamed(r.snapshot, "default/service:s/dns/0")->health_check().protocol(), v1::HealthCheck::NONE);
  EXPECT_EQ(SetNamed(r.snapshot, "default/service:s/web/0")->health_check().protocol(), v1::HealthCheck::TCP);
}

TEST(TranslateService, SessionAffinityDefaultsToThreeHours) {
  Translator t;
  auto r = t.Translate(Store(Service("s", std::string(kTcp80) + "  sessionAffinity: ClientIP\n")));
  ASSERT_TRUE(Svc(r, "s")->accepted) << Svc(r, "s")->message;
  EXPECT_EQ(RouteNamed(r.snapshot, "default/service:s/http")->policy().stickiness().ttl_ms(), 10800u * 1000u);
  Translator t2;
  auto r2 = t2.Translate(Store(Service("s", std::string(kTcp80) + "  sessionAffinity: None\n")));
  EXPECT_FALSE(RouteNamed(r2.snapshot, "default/service:s/http")->policy().has_stickiness());
  EXPECT_FALSE(SetNamed(r2.snapshot, "default/service:s/http/0")->local_only());
  EXPECT_TRUE(Svc(r2, "s")->warnings.empty());
  // sessionAffinityConfig without sessionAffinity: ClientIP (the API server refuses it; from a
  // file) is warned, not silently dropped.
  for (const std::string affinity : {"", "  sessionAffinity: None\n"}) {
    Translator t3;
    auto r3 = t3.Translate(Store(Service("s", std::string(kTcp80) + affinity +
                                                  "  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n")));
    ASSERT_TRUE(Svc(r3, "s")->accepted) << Svc(r3, "s")->message;
    EXPECT_FALSE(RouteNamed(r3.snapshot, "default/service:s/http")->policy().has_stickiness());
    ASSERT_EQ(Svc(r3, "s")->warnings.size(), 1u);
    EXPECT_EQ(Svc(r3, "s")->warnings[0].reason, "FieldIgnored");
    EXPECT_EQ(Svc(r3, "s")->warnings[0].field, "spec.sessionAffinityConfig");
  }
}

// ---- invalid Services: exact reason, field and message; neighbours unaffected ----------------------

struct InvalidCase {
  const char* name;
  std::string yaml;  // a Service named "bad"
  const char* reason;
  const char* field;
  const char* message;  // substring of the status message
};

TEST(TranslateService, GrpcHealthCheckAnnotation) {
  Translator t;
  auto r = t.Translate(Store(Annotated("grpc", "    doorman.dev/health-check: grpc\n", kTcp80)));
  ASSERT_NE(Svc(r, "grpc"), nullptr);
  EXPECT_TRUE(Svc(r, "grpc")->accepted) << Svc(r, "grpc")->message;
  const v1::BackendSet* set = SetNamed(r.snapshot, "default/service:grpc/http/0");
  ASSERT_NE(set, nullptr);
  EXPECT_EQ(set->health_check().protocol(), v1::HealthCheck::GRPC);
  EXPECT_EQ(set->health_check().path(), "");
}

std::vector<InvalidCase> InvalidCases() {
  auto ann = [](const std::string& a) { return Annotated("bad", "    " + a + "\n", kTcp80); };
  return {
      {"SCTP", Service("bad", "  ports: [{name: a, port: 80}, {name: b, port: 9, protocol: SCTP}]\n"), "UnsupportedProtocol",
       "spec.ports[1].protocol", "protocol \"SCTP\" is not supported (doorman balances TCP and UDP)"},
      {"SCTP first even with a bad annotation",
       Annotated("bad", "    doorman.dev/scheduler: random\n", "  ports: [{port: 9, protocol: SCTP}]\n"),
       "UnsupportedProtocol", "spec.ports[0].protocol", "not supported"},
      {"scheduler", ann("doorman.dev/scheduler: random"), "InvalidAnnotation", "metadata.annotations[doorman.dev/scheduler]",
       "annotation doorman.dev/scheduler: unknown scheduler \"random\""},
      {"proxy protocol", ann("doorman.dev/proxy-protocol: v3"), "InvalidAnnotation",
       "metadata.annotations[doorman.dev/proxy-protocol]", "annotation doorman.dev/proxy-protocol: unknown PROXY protocol version \"v3\""},
      {"idle timeout", ann("doorman.dev/idle-timeout: 5 minutes"), "InvalidAnnotation",
       "metadata.annotations[doorman.dev/idle-timeout]", "annotation doorman.dev/idle-timeout: invalid duration \"5 minutes\""},
      {"idle timeout as a number", ann("doorman.dev/idle-timeout: 60"), "InvalidAnnotation",
       "metadata.annotations[doorman.dev/idle-timeout]", "must be a string, not an integer (quote it: \"60\")"},
      {"health check", ann("doorman.dev/health-check: icmp"), "InvalidAnnotation",
       "metadata.annotations[doorman.dev/health-check]", "annotation doorman.dev/health-check: invalid health check \"icmp\""},
      {"health check path", ann("doorman.dev/health-check: \"http:healthz\""), "InvalidAnnotation",
       "metadata.annotations[doorman.dev/health-check]", "want \"tcp\", \"grpc\" or \"http:<path>\""},
      {"passthrough host", ann("doorman.dev/tls-passthrough-sni: \"db.example.com,DB_2\""), "InvalidAnnotation",
       "metadata.annotations[doorman.dev/tls-passthrough-sni]", "invalid host \"DB_2\""},
      {"passthrough empty", ann("doorman.dev/tls-passthrough-sni: \"\""), "InvalidAnnotation",
       "metadata.annotations[doorman.dev/tls-passthrough-sni]", "invalid host \"\""},
      {"session affinity", Service("bad", std::string(kTcp80) + "  sessionAffinity: Cookie\n"), "UnsupportedValue",
       "spec.sessionAffinity", "unknown session affinity \"Cookie\""},
      {"affinity timeout", Service("bad", std::string(kTcp80) +
                                              "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}\n"),
       "InvalidSpec", "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "0 is out of range (1..86400)"},
      {"traffic policy", Service("bad", std::string(kTcp80) + "  externalTrafficPolicy: Nearest\n"), "UnsupportedValue",
       "spec.externalTrafficPolicy", "unknown traffic policy \"Nearest\""},
      {"source range", Service("bad", std::string(kTcp80) + "  loadBalancerSourceRanges: [10.0.0.0/8, 10.1.2.3]\n"),
       "InvalidSpec", "spec.loadBalancerSourceRanges[1]", "invalid CIDR \"10.1.2.3\""},
      {"unnamed second port", Service("bad", "  ports: [{name: a, port: 80}, {port: 81}]\n"), "InvalidSpec",
       "spec.ports[1].name", "is required when a Service has more than one port"},
      {"duplicate port", Service("bad", "  ports: [{name: a, port: 80}, {name: b, port: 80}]\n"), "InvalidSpec",
       "spec.ports[1].port", "port 80/TCP is already used by spec.ports[0]"},
      {"port range", Service("bad", "  ports: [{port: 0}]\n"), "InvalidSpec", "spec.ports[0].port", "0 is out of range"},
      {"no ports", Service("bad", "  ports: []\n"), "InvalidSpec", "spec.ports", "needs at least one port"},
  };
}

TEST(TranslateService, InvalidServicesReportReasonAndField) {
  const std::string good = Service("good", "  ports: [{name: db, port: 5432}]\n");
  for (const auto& c : InvalidCases()) {
    SCOPED_TRACE(c.name);
    Translator t;
    auto r = t.Translate(Store(c.yaml + "---\n" + good));
    const ObjectStatus* st = Svc(r, "bad");
    ASSERT_NE(st, nullptr);
    EXPECT_FALSE(st->accepted);
    EXPECT_FALSE(st->serving_last_good);
    EXPECT_EQ(st->reason, c.reason) << st->message;
    EXPECT_EQ(st->field, c.field) << st->message;
    EXPECT_NE(st->message.find(c.message), std::string::npos) << st->message;
    ASSERT_TRUE(Svc(r, "good")->accepted);
    Translator alone;
    EXPECT_EQ(SerializeSnapshot(r.snapshot), SerializeSnapshot(alone.Translate(Store(good)).snapshot));
    ASSERT_EQ(r.diagnostics.size(), 1u);
    EXPECT_EQ(r.diagnostics[0].Field("object"), "Service default/bad");
    EXPECT_EQ(r.diagnostics[0].Field("field"), c.field);
  }
}

// --manifests mode (no API server validated the file): a misspelt field is refused, as kubectl
// apply's strict validation would, with the nearest known name; a typo in the allow-list must not
// serve the port to everyone. In a cluster (the option off) the API server already did, and a
// field of a newer Kubernetes is not doorman's to refuse.
TEST(TranslateService, UnknownFieldsAreRefusedInManifestsMode) {
  struct Case {
    std::string yaml, field, message;
  };
  const std::vector<Case> cases = {
      {Service("bad", std::string(kTcp80) + "  loadBalancerSourceRange: [10.0.0.0/8]\n"), "spec.loadBalancerSourceRange",
       "did you mean \"loadBalancerSourceRanges\""},
      {Service("bad", std::string(kTcp80) + "  externalTraficPolicy: Local\n"), "spec.externalTraficPolicy",
       "did you mean \"externalTrafficPolicy\""},
      {Service("bad", "  ports: [{name: http, port: 80, targetPrt: 8080}]\n"), "spec.ports[0].targetPrt",
       "did you mean \"targetPort\""},
      {Service("bad", std::string(kTcp80) + "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeout: 5}}\n"),
       "spec.sessionAffinityConfig.clientIP.timeout", "unknown field"},
      {Service("bad", kTcp80, "  anotations: {doorman.dev/scheduler: maglev}\n"), "metadata.anotations",
       "did you mean \"annotations\""},
      {Service("bad", kTcp80) + "sepc: {}\n", "sepc", "did you mean \"spec\""},
      {Service("bad", std::string(kTcp80) + "  zzzzzzzzzzzz: 1\n"), "spec.zzzzzzzzzzzz", "known fields: allocateLoadBalancerNodePorts, "},
  };
  const std::string good = Service("good", std::string(kTcp80) + "  loadBalancerSourceRanges: [10.0.0.0/8]\n"
                                   "  externalTrafficPolicy: Local\n  trafficDistribution: PreferClose\n"
                                   "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 5}}\n"
                                   "  ipFamilies: [IPv4]\n  ipFamilyPolicy: SingleStack\n  allocateLoadBalancerNodePorts: false\n"
                                   "  selector: {any-label: x}\n  clusterIP: 10.0.0.1\n",
                                   "  labels: {a: b}\n  uid: u\n  resourceVersion: \"1\"\n");
  TranslateOptions strict;
  strict.check_known_fields = true;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.field);
    Translator t(strict);
    auto r = t.Translate(Store(c.yaml + "---\n" + good));
    ASSERT_NE(Svc(r, "bad"), nullptr);
    EXPECT_FALSE(Svc(r, "bad")->accepted);
    EXPECT_EQ(Svc(r, "bad")->reason, "InvalidSpec");
    EXPECT_EQ(Svc(r, "bad")->field, c.field) << Svc(r, "bad")->message;
    EXPECT_NE(Svc(r, "bad")->message.find(c.message), std::string::npos) << Svc(r, "bad")->message;
    EXPECT_TRUE(Svc(r, "good")->accepted) << Svc(r, "good")->message;
    Translator lax;
    EXPECT_TRUE(Svc(lax.Translate(Store(c.yaml)), "bad")->accepted) << "a cluster's API server already validated it";
  }
}

TEST(TranslateService, UnsupportedProtocolIsLoggedClearlyAndKeepsTheLastGoodVersion) {
  Translator t;
  const std::string v1 = Service("s", kTcp80);
  auto r1 = t.Translate(Store(v1));
  ASSERT_TRUE(Svc(r1, "s")->accepted);
  auto r2 = t.Translate(Store(Service("s", "  ports: [{name: http, port: 80}, {name: x, port: 99, protocol: SCTP}]\n")));
  const ObjectStatus* st = Svc(r2, "s");
  EXPECT_FALSE(st->accepted);
  EXPECT_TRUE(st->serving_last_good);
  EXPECT_EQ(st->reason, "UnsupportedProtocol");
  EXPECT_EQ(SerializeSnapshot(r2.snapshot), SerializeSnapshot(r1.snapshot));
  ASSERT_EQ(r2.diagnostics.size(), 1u);
  EXPECT_EQ(r2.diagnostics[0].level, log::Level::kWarn);
  EXPECT_EQ(r2.diagnostics[0].message, "unsupported protocol, keeping last good version");
  EXPECT_EQ(r2.diagnostics[0].Field("error"),
            "protocol \"SCTP\" is not supported (doorman balances TCP and UDP): this version of the Service is "
            "refused as a whole, not served without that port");

  // No longer of type LoadBalancer: dropped, and its last good version is forgotten.
  auto r3 = t.Translate(Store("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n"));
  EXPECT_EQ(r3.snapshot.listeners_size(), 0);
  EXPECT_EQ(Svc(r3, "s"), nullptr);
  auto r4 = t.Translate(Store(Service("s", "  ports: [{port: 99, protocol: SCTP}]\n")));
  EXPECT_FALSE(Svc(r4, "s")->serving_last_good);
  EXPECT_EQ(r4.diagnostics[0].message, "unsupported protocol, object not routed");
}

TEST(TranslateService, UnknownAndIgnoredAnnotationsAreWarnedOnce) {
  const std::string yaml = Annotated("s",
                                     "    doorman.dev/schedular: maglev\n"
                                     "    doorman.dev/tls-passthrough-sni: db.example.com\n"
                                     "    doorman.dev/proxy-protocol: v1\n",
                                     "  ports: [{name: db, port: 5432}, {name: dns, port: 53, protocol: UDP}]\n");
  Translator t;
  auto r = t.Translate(Store(yaml));
  const ObjectStatus* st = Svc(r, "s");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 3u);
  EXPECT_EQ(st->warnings[0].reason, "UnknownAnnotation");
  EXPECT_EQ(st->warnings[0].field, "metadata.annotations[doorman.dev/schedular]");
  EXPECT_NE(st->warnings[0].message.find("known: doorman.dev/health-check"), std::string::npos) << st->warnings[0].message;
  EXPECT_EQ(st->warnings[1].reason, "AnnotationIgnored");
  EXPECT_EQ(st->warnings[1].field, "metadata.annotations[doorman.dev/tls-passthrough-sni]");
  EXPECT_EQ(st->warnings[2].field, "metadata.annotations[doorman.dev/proxy-protocol]");
  EXPECT_EQ(ListenerNamed(r.snapshot, "tls-5432")->proxy_protocol().send(), v1::PROXY_PROTOCOL_V1);
  EXPECT_FALSE(ListenerNamed(r.snapshot, "udp-53")->has_proxy_protocol());
  EXPECT_EQ(RouteNamed(r.snapshot, "default/service:s/dns")->match().sni_size(), 0);
  ASSERT_EQ(r.diagnostics.size(), 3u);
  EXPECT_EQ(r.diagnostics[0].message, "object warning");
  EXPECT_EQ(r.diagnostics[0].Field("reason"), "UnknownAnnotation");
  EXPECT_TRUE(t.Translate(Store(yaml)).diagnostics.empty());
}

// kube-proxy's and the cloud controllers' source-range annotation applies when the field is empty
// (a Service migrated with it is not opened to everyone); a bad CIDR refuses the Service; the
// field wins when both are set. ingress-nginx annotations are named in a warning.
TEST(TranslateService, TheLegacySourceRangesAnnotationIsHonoured) {
  const char* kAnn = "    service.beta.kubernetes.io/load-balancer-source-ranges: \"192.0.2.0/24, 2001:db8::/32\"\n";
  Translator t;
  auto r = t.Translate(Store(Annotated("s", kAnn, "  ports: [{port: 5432}]\n")));
  ASSERT_TRUE(Svc(r, "s")->accepted) << Svc(r, "s")->message;
  const v1::Listener* l = ListenerNamed(r.snapshot, "tcp-5432");
  ASSERT_EQ(l->allowed_source_ranges_size(), 2);
  EXPECT_EQ(l->allowed_source_ranges(0), "192.0.2.0/24");
  EXPECT_EQ(l->allowed_source_ranges(1), "2001:db8::/32");
  EXPECT_TRUE(Svc(r, "s")->warnings.empty());

  r = t.Translate(Store(Annotated("s", kAnn, "  loadBalancerSourceRanges: [198.51.100.0/24]\n  ports: [{port: 5432}]\n")));
  l = ListenerNamed(r.snapshot, "tcp-5432");
  ASSERT_EQ(l->allowed_source_ranges_size(), 1);
  EXPECT_EQ(l->allowed_source_ranges(0), "198.51.100.0/24");
  ASSERT_EQ(Svc(r, "s")->warnings.size(), 1u);
  EXPECT_EQ(Svc(r, "s")->warnings[0].reason, "AnnotationIgnored");

  Translator fresh;  // (t would keep serving the last good version)
  r = fresh.Translate(Store(Annotated("s", "    service.beta.kubernetes.io/load-balancer-source-ranges: \"10.0.0.0/33\"\n",
                                      "  ports: [{port: 5432}]\n")));
  EXPECT_FALSE(Svc(r, "s")->accepted);
  EXPECT_EQ(Svc(r, "s")->field, "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]");
  EXPECT_EQ(ListenerNamed(r.snapshot, "tcp-5432"), nullptr);
  // An empty item is refused, as the API server refuses it: "," must not open the Service to
  // everyone (helper-131); a blank value is "everyone", as in Kubernetes.
  for (const char* bad : {",", "10.0.0.0/8,,10.1.0.0/16", "10.0.0.0/8,"}) {
    Translator again;
    r = again.Translate(Store(Annotated("s", std::string("    service.beta.kubernetes.io/load-balancer-source-ranges: \"") +
                                                 bad + "\"\n",
                                        "  ports: [{port: 5432}]\n")));
    EXPECT_FALSE(Svc(r, "s")->accepted) << bad;
    EXPECT_NE(Svc(r, "s")->message.find("an empty item"), std::string::npos) << Svc(r, "s")->message;
  }
  {
    Translator again;
    r = again.Translate(Store(Annotated("s", "    service.beta.kubernetes.io/load-balancer-source-ranges: \" \"\n",
                                        "  ports: [{port: 5432}]\n")));
    ASSERT_TRUE(Svc(r, "s")->accepted) << Svc(r, "s")->message;
    EXPECT_EQ(ListenerNamed(r.snapshot, "tcp-5432")->allowed_source_ranges_size(), 0);
  }

  r = t.Translate(Store(Annotated("s", "    nginx.ingress.kubernetes.io/whitelist-source-range: 10.0.0.0/8\n",
                                  "  ports: [{port: 5432}]\n")));
  ASSERT_EQ(Svc(r, "s")->warnings.size(), 1u);
  EXPECT_EQ(Svc(r, "s")->warnings[0].reason, "AnnotationIgnored");
  EXPECT_NE(Svc(r, "s")->warnings[0].message.find("nginx.ingress.kubernetes.io/whitelist-source-range"), std::string::npos);
}

// Source ranges as the API server and kube-proxy take them: spaces trimmed, IPv4 octets with
// leading zeros read as decimal (ParseCIDRSloppy); still refused when they are no CIDR at all.
TEST(TranslateService, SourceRangesAreReadAsKubernetesReadsThem) {
  Translator t;
  auto r = t.Translate(Store(Service(
      "s", "  loadBalancerSourceRanges: [\" 127.0.0.20/32\", \"127.000.000.020/32 \", \"010.1.0.0/16\", \" 2001:db8::/32\"]\n"
           "  ports: [{port: 5432}]\n")));
  ASSERT_TRUE(Svc(r, "s")->accepted) << Svc(r, "s")->message;
  const v1::Listener* l = ListenerNamed(r.snapshot, "tcp-5432");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(std::vector<std::string>(l->allowed_source_ranges().begin(), l->allowed_source_ranges().end()),
            (std::vector<std::string>{"127.0.0.20/32", "127.0.0.20/32", "10.1.0.0/16", "2001:db8::/32"}));
  r = t.Translate(Store(Annotated("s", "    service.beta.kubernetes.io/load-balancer-source-ranges: \"192.000.2.0/24,  10.0.0.0/8\"\n",
                                  "  ports: [{port: 5432}]\n")));
  l = ListenerNamed(r.snapshot, "tcp-5432");
  ASSERT_EQ(l->allowed_source_ranges_size(), 2);
  EXPECT_EQ(l->allowed_source_ranges(0), "192.0.2.0/24");
  for (const char* bad : {"1.2.3.256/32", "1.2.3/24", "0001.2.3.4/32", "1.2.3.4/33", "1.2..3/8", "a.b.c.d/8", "1.2.3.4"}) {
    Translator fresh;
    r = fresh.Translate(Store(Service("s", std::string("  loadBalancerSourceRanges: [\"") + bad +
                                               "\"]\n  ports: [{port: 5432}]\n")));
    EXPECT_FALSE(Svc(r, "s")->accepted) << bad;
  }
}

// ---- sharing ports with other objects ---------------------------------------------------------------

TEST(TranslateService, PortConflictsGoToTheOldestObject) {
  const std::string lb =
      "apiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: lb, creationTimestamp: "
      "\"2026-01-01T00:00:00Z\"}\nspec:\n  listeners: [{name: web, port: 80, protocol: HTTP}]\n";
  const std::string svc = Service("svc", "  ports: [{name: a, port: 81}, {name: b, port: 80}]\n",
                                  "  creationTimestamp: \"2026-02-01T00:00:00Z\"\n");
  Translator t;
  auto r = t.Translate(Store(lb + "---\n" + svc));
  // Per port: the Service loses 80 (a PortConflict warning), and still serves 81.
  const ObjectStatus* st = Svc(r, "svc");
  EXPECT_TRUE(st->accepted);
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "PortConflict");
  EXPECT_EQ(st->warnings[0].field, "spec.ports[1].port");
  EXPECT_NE(st->warnings[0].message.find("LoadBalancer default/lb"), std::string::npos) << st->warnings[0].message;
  EXPECT_NE(ListenerNamed(r.snapshot, "tcp-81"), nullptr);
  EXPECT_EQ(ListenerNamed(r.snapshot, "tcp-80"), nullptr);
  EXPECT_EQ(RouteNamed(r.snapshot, "default/service:svc/b"), nullptr);

  // The other way round: the older Service keeps the port.
  const std::string old_svc = Service("svc", "  ports: [{name: b, port: 80}]\n", "  creationTimestamp: \"2025-01-01T00:00:00Z\"\n");
  Translator t2;
  auto r2 = t2.Translate(Store(lb + "---\n" + old_svc));
  EXPECT_TRUE(Svc(r2, "svc")->accepted);
  EXPECT_EQ(StatusOf(r2, "LoadBalancer", "lb")->reason, "PortConflict");
  // Its only listener lost: still listed in its status (helper-84), not served.
  ASSERT_EQ(StatusOf(r2, "LoadBalancer", "lb")->listeners.size(), 1u);
  EXPECT_EQ(StatusOf(r2, "LoadBalancer", "lb")->listeners[0].name, "web");
  EXPECT_EQ(StatusOf(r2, "LoadBalancer", "lb")->listeners[0].snapshot_name, "");
  ASSERT_EQ(r2.snapshot.listeners_size(), 1);
  EXPECT_EQ(r2.snapshot.listeners(0).name(), "tcp-80");
  EXPECT_EQ(r2.snapshot.listeners(0).owners(0).kind(), "Service");

  // Two Services on the same TLS passthrough port clash too (only HTTP/HTTPS share).
  const std::string a = Annotated("a", "    doorman.dev/tls-passthrough-sni: a.example.com\n", "  ports: [{port: 443}]\n");
  const std::string b = Annotated("b", "    doorman.dev/tls-passthrough-sni: b.example.com\n", "  ports: [{port: 443}]\n");
  Translator t3;
  auto r3 = t3.Translate(Store(a + "---\n" + b));
  EXPECT_TRUE(Svc(r3, "a")->accepted);
  EXPECT_EQ(Svc(r3, "b")->reason, "PortConflict");
}

// helper-111: a translation walked a namespace's EndpointSlices for every Service port
// (quadratic in the Services of a namespace). The index Translate uses gives each Service the
// same slices, in the same order, as the walk: checked over namespaces with same-named Services,
// several slices per Service, and slices no Service uses (unlabelled, FQDN, a non-string label).
TEST(TranslateServiceTest, TheSliceIndexFindsWhatTheWalkFinds) {
  std::string yaml;
  for (const std::string ns : {"a", "b", "c"}) {
    for (int svc = 0; svc < 4; ++svc) {
      for (int k = 0; k < 3; ++k) {
        yaml += "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s" + std::to_string(svc) + "-" +
                std::to_string(k) + ", namespace: " + ns + ", labels: {kubernetes.io/service-name: svc" +
                std::to_string(svc) + "}}\naddressType: " + (k == 2 && svc == 1 ? "FQDN" : "IPv4") +
                "\nports: [{name: http, port: " + std::to_string(8000 + k) + ", protocol: TCP}]\nendpoints: [{addresses: [10." +
                std::to_string(ns[0] - 'a') + "." + std::to_string(svc) + "." + std::to_string(k + 1) + "]}]\n";
      }
    }
    yaml += "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: loose, namespace: " + ns +
            "}\nports: [{name: http, port: 1}]\nendpoints: [{addresses: [10.9.9.9]}]\n";
    yaml += "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: odd, namespace: " + ns +
            ", labels: {kubernetes.io/service-name: 7}}\nports: [{name: http, port: 1}]\nendpoints: [{addresses: [10.9.9.8]}]\n";
  }
  const ObjectStore store = Store(yaml);
  auto all = [&] {
    std::string out;
    for (const std::string ns : {"a", "b", "c", "d"}) {
      for (const std::string svc : {"svc0", "svc1", "svc2", "svc3", "svc4", "7", ""}) {
        out += ns + "/" + svc + ":";
        for (const auto& ep : internal::SliceEndpoints(store, ns, svc, "http", "TCP")) {
          out += " " + ep.address() + ":" + std::to_string(ep.port());
        }
        out += "\n";
      }
    }
    return out;
  };
  const std::string walked = all();
  EXPECT_NE(walked.find("a/svc0: 10.0.0.1:8000 10.0.0.2:8001 10.0.0.3:8002\n"), std::string::npos) << walked;
  EXPECT_NE(walked.find("b/svc1: 10.1.1.1:8000 10.1.1.2:8001\n"), std::string::npos) << walked;  // no FQDN slice
  EXPECT_NE(walked.find("c/7:\n"), std::string::npos) << walked;
  std::string indexed;
  {
    const internal::SliceIndexScope scope(store);
    indexed = all();
    const ObjectStore other = store;  // another store (an overlay) is walked, not looked up
    EXPECT_EQ(internal::SliceEndpoints(other, "a", "svc0", "http", "TCP").size(), 3u);
  }
  EXPECT_EQ(indexed, walked);
  EXPECT_EQ(all(), walked);  // the scope has ended: walked again
}

}  // namespace
}  // namespace doorman::controller
