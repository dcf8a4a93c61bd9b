// Ingress + IngressClass + Secret → Snapshot (controller/translate/ingress.cc), API.md §1.2.
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "controller/source/manifest.h"
#include "controller/translate/translate.h"
#include "tests/unit/controller/translate_test_util.h"

namespace doorman::controller {
namespace {

namespace v1 = doorman::v1;
using namespace doorman::controller::testing;  // NOLINT(build/namespaces): shared test helpers

const ObjectStatus* Ing(const TranslateResult& r, const std::string& name) { return StatusOf(r, "Ingress", name); }

std::vector<std::string> ListenerRoutes(const v1::Snapshot& s, const std::string& listener) {
  const v1::Listener* l = ListenerNamed(s, listener);
  if (!l) return {"<no listener " + listener + ">"};
  return {l->routes().begin(), l->routes().end()};
}

// doorman's IngressClass (not the default unless asked).
std::string Class(const std::string& name = "doorman", bool is_default = false, const std::string& created = "") {
  return "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: " + name + "\n" +
         (created.empty() ? "" : "  creationTimestamp: \"" + created + "\"\n") +
         (is_default ? "  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\n" : "") +
         "spec: {controller: doorman.dev/ingress-controller}\n";
}

// doorman's class plus the Services the tests' backends name (so they resolve without warnings).
std::string Fixture() {
  std::string out = Class();
  for (const char* svc : {"web", "web-v2", "web-v3"}) {
    out += std::string("---\napiVersion: v1\nkind: Service\nmetadata: {name: ") + svc + "}\nspec: {ports: [{port: 80}]}\n";
  }
  return out;
}

// An Ingress "default/<name>" with class doorman; `annotations` lines are indented by four.
std::string Ingress(const std::string& name, const std::string& spec, const std::string& annotations = "",
                    const std::string& created = "") {
  return "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: " + name + "\n  namespace: default\n" +
         (created.empty() ? "" : "  creationTimestamp: \"" + created + "\"\n") +
         (annotations.empty() ? "" : "  annotations:\n" + annotations) + "spec:\n  ingressClassName: doorman\n" + spec;
}

// One rule: host (may be empty) → path (Prefix unless given) → Service web:80.
std::string Rule(const std::string& host, const std::string& path = "/", const std::string& type = "Prefix",
                 const std::string& service = "web") {
  return std::string("  rules:\n    - ") + (host.empty() ? "" : "host: \"" + host + "\"\n      ") +
         "http:\n        paths:\n          - {path: \"" + path + "\", pathType: " + type +
         ", backend: {service: {name: " + service + ", port: {number: 80}}}}\n";
}

std::string Secret(const std::string& name, const std::string& body = "type: kubernetes.io/tls\n" + TlsStringData()) {
  return "apiVersion: v1\nkind: Secret\nmetadata: {name: " + name + ", namespace: default}\n" + body;
}

// `yaml` (one object of Ingress() or Secret()) in namespace `ns` instead of default.
std::string InNamespace(std::string yaml, const std::string& ns) {
  yaml.replace(yaml.find("namespace: default"), 18, "namespace: " + ns);
  return yaml;
}

std::string Docs(std::initializer_list<std::string> docs) {
  std::string out;
  for (const auto& d : docs) out += "---\n" + d;
  return out;
}

// ---- golden -----------------------------------------------------------------------------------

TEST(TranslateIngress, GoldenRulesTlsAnnotationsAndCanary) {
  const std::string path = std::string(DOORMAN_CONTROLLER_TESTDATA) + "/ingress.yaml";
  Translator t;
  auto r = t.Translate(Store(ReadFile(path), path));
  for (const char* name : {"shop", "shop-canary", "blog"}) {
    ASSERT_NE(Ing(r, name), nullptr) << name;
    EXPECT_TRUE(Ing(r, name)->accepted) << name << ": " << Ing(r, name)->message;
  }
  EXPECT_EQ(Ing(r, "foreign"), nullptr);
  EXPECT_EQ(StatusOf(r, "IngressClass", "nginx"), nullptr);
  ASSERT_NE(StatusOf(r, "IngressClass", "doorman"), nullptr);
  EXPECT_TRUE(StatusOf(r, "IngressClass", "doorman")->accepted);

  const std::string golden = std::string(DOORMAN_CONTROLLER_TESTDATA) + "/ingress.snapshot.txtpb";
  const std::string actual = GoldenText(r);
  if (std::getenv("DOORMAN_UPDATE_GOLDEN")) std::ofstream(golden) << actual;
  EXPECT_EQ(actual, ReadFile(golden)) << "run with DOORMAN_UPDATE_GOLDEN=1 to update " << golden;

  // Spot checks of what the golden says, so a regenerated golden cannot hide a regression.
  // Both Ingresses share http-80; only shop (with TLS) has https-443. shop has rules, so its
  // default backend serves what its own hosts' paths do not match, after them (one route per
  // host, as ingress-nginx scopes an Ingress's defaultBackend): blog.example.com is not its.
  ASSERT_EQ(r.snapshot.listeners_size(), 2);
  const v1::Listener* http = ListenerNamed(r.snapshot, "http-80");
  ASSERT_NE(http, nullptr);
  ASSERT_EQ(http->owners_size(), 2);
  EXPECT_EQ(http->owners(0).name(), "shop");
  EXPECT_EQ(http->owners(1).name(), "blog");
  EXPECT_EQ(ListenerRoutes(r.snapshot, "http-80"),
            (std::vector<std::string>{"shop/ingress:shop/r2-p0", "shop/ingress:shop/default-h2", "shop/ingress:shop/r0-p2",
                                      "shop/ingress:shop/r0-p3", "blog/ingress:blog/r0-p0", "shop/ingress:shop/r0-p1",
                                      "shop/ingress:shop/r0-p0", "shop/ingress:shop/default-h0", "shop/ingress:shop/r1-p0",
                                      "shop/ingress:shop/default-h1"}));
  for (const auto& [route, host] : std::vector<std::pair<std::string, std::string>>{
           {"shop/ingress:shop/default-h0", "shop.example.com"},
           {"shop/ingress:shop/default-h1", "*.shop.example.com"},
           {"shop/ingress:shop/default-h2", "status.example.com"}}) {
    const v1::Route* d = RouteNamed(r.snapshot, route);
    ASSERT_NE(d, nullptr) << route;
    ASSERT_EQ(d->match().hosts_size(), 1) << route;
    EXPECT_EQ(d->match().hosts(0), host);
    EXPECT_FALSE(d->match().has_path()) << route;
  }
  // One backend set serves the three (and their HTTPS twins).
  EXPECT_EQ(RouteNamed(r.snapshot, "shop/ingress:shop/default-h2")->backends(0).backend_set(), "shop/ingress:shop/default/0");
  EXPECT_EQ(RouteNamed(r.snapshot, "shop/ingress:shop/default-h1-https")->backends(0).backend_set(),
            "shop/ingress:shop/default/0");
  const v1::Listener* https = ListenerNamed(r.snapshot, "https-443");
  ASSERT_NE(https, nullptr);
  ASSERT_EQ(https->tls().certificates_size(), 1);
  EXPECT_EQ(https->tls().certificates(0), "shop/shop-tls");
  ASSERT_EQ(r.snapshot.certificates_size(), 1);
  EXPECT_EQ(https->routes(https->routes_size() - 1), "shop/ingress:shop/default-h1-https");

  // TLS hosts redirect on HTTP (308); status.example.com has no certificate and is served.
  const v1::Route* redirect = RouteNamed(r.snapshot, "shop/ingress:shop/r0-p0");
  ASSERT_NE(redirect, nullptr);
  EXPECT_EQ(redirect->backends_size(), 0);
  EXPECT_TRUE(redirect->filters().redirect().enabled());
  EXPECT_EQ(redirect->filters().redirect().scheme(), "https");
  EXPECT_EQ(redirect->filters().redirect().status_code(), 308u);
  EXPECT_TRUE(RouteNamed(r.snapshot, "shop/ingress:shop/r1-p0")->filters().redirect().enabled());  // *.shop.example.com
  // Kubernetes Ingress: the wildcard covers one label; exact hosts need no such flag.
  EXPECT_TRUE(RouteNamed(r.snapshot, "shop/ingress:shop/r1-p0")->match().wildcard_one_label());
  EXPECT_FALSE(RouteNamed(r.snapshot, "shop/ingress:shop/r2-p0")->match().wildcard_one_label());
  EXPECT_FALSE(RouteNamed(r.snapshot, "shop/ingress:shop/r2-p0")->filters().has_redirect());
  EXPECT_FALSE(RouteNamed(r.snapshot, "shop/ingress:shop/default-h2")->filters().has_redirect());  // status: no TLS
  EXPECT_TRUE(RouteNamed(r.snapshot, "shop/ingress:shop/default-h0")->filters().redirect().enabled());

  const v1::Route* api = RouteNamed(r.snapshot, "shop/ingress:shop/r0-p1-https");
  ASSERT_NE(api, nullptr);
  EXPECT_EQ(api->listener(), "https-443");
  EXPECT_EQ(api->match().hosts(0), "shop.example.com");
  EXPECT_EQ(api->match().path().type(), v1::PathMatch::PREFIX);
  EXPECT_EQ(api->policy().stickiness().cookie_name(), "SHOPID");
  EXPECT_EQ(api->policy().stickiness().ttl_ms(), 3600000u);
  EXPECT_EQ(api->policy().timeouts().request_ms(), 30000u);
  EXPECT_EQ(api->policy().retries().attempts(), 2u);
  EXPECT_EQ(api->policy().retries().on_size(), 5);
  EXPECT_EQ(api->policy().rate_limit().requests_per_second(), 100u);
  EXPECT_EQ(api->policy().rate_limit().burst(), 50u);
  // The canary: api-v2 for "x-canary: always", else 10 %.
  ASSERT_TRUE(api->policy().has_canary());
  EXPECT_EQ(api->policy().canary().header(), "x-canary");
  EXPECT_EQ(api->policy().canary().weight_percent(), 10u);
  EXPECT_EQ(api->policy().canary().backends(0).backend_set(), "shop/ingress:shop-canary/r0-p0/0");
  ASSERT_NE(SetNamed(r.snapshot, "shop/ingress:shop-canary/r0-p0/0"), nullptr);
  EXPECT_EQ(SetNamed(r.snapshot, "shop/ingress:shop-canary/r0-p0/0")->endpoints(0).address(), "10.0.0.3");
  EXPECT_FALSE(RouteNamed(r.snapshot, "shop/ingress:shop/r0-p0-https")->policy().has_canary());
  // Port by name → the Service port number names the set; endpoints on the target port.
  const v1::BackendSet* api_set = SetNamed(r.snapshot, "shop/ingress:shop/r0-p1/0");
  ASSERT_NE(api_set, nullptr);
  EXPECT_EQ(api_set->service(), "shop/api:8080");
  EXPECT_EQ(api_set->endpoints(0).port(), 9000u);
  EXPECT_EQ(api_set->health_check().path(), "/healthz");
  EXPECT_EQ(RouteNamed(r.snapshot, "shop/ingress:shop/r0-p3-https")->match().path().type(), v1::PathMatch::REGULAR_EXPRESSION);
  const v1::Route* blog = RouteNamed(r.snapshot, "blog/ingress:blog/r0-p0");
  EXPECT_EQ(blog->filters().rewrite().path_prefix(), "/");
  EXPECT_EQ(blog->policy().backend_protocol(), "HTTPS");
  EXPECT_EQ(RouteNamed(r.snapshot, "blog/ingress:blog/r0-p0-https"), nullptr);
}

TEST(TranslateIngress, SameInputInAnyOrderGivesTheSameBytes) {
  const std::string text = ReadFile(std::string(DOORMAN_CONTROLLER_TESTDATA) + "/ingress.yaml");
  std::vector<std::string> docs;
  size_t start = 0;
  while (true) {
    const size_t next = text.find("\n---\n", start);
    docs.push_back(text.substr(start, next == std::string::npos ? std::string::npos : next - start + 1));
    if (next == std::string::npos) break;
    start = next + 5;
  }
  ASSERT_GE(docs.size(), 10u);
  std::string reversed;
  for (size_t i = docs.size(); i-- > 0;) reversed += "---\n" + docs[i];
  Translator a;
  Translator b;
  EXPECT_EQ(SerializeSnapshot(a.Translate(Store(text)).snapshot),
            SerializeSnapshot(b.Translate(Store(reversed, "/m/other.yaml")).snapshot));
}

// ---- which Ingresses doorman claims ------------------------------------------------------------------

TEST(TranslateIngress, ClassResolution) {
  const std::string nginx =
      "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\n"
      "  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\nspec: {controller: k8s.io/ingress-nginx}\n";
  auto ing = [](const std::string& class_line, const std::string& annotation) {
    return "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: i\n" +
           (annotation.empty() ? "" : "  annotations: {kubernetes.io/ingress.class: " + annotation + "}\n") + "spec:\n" +
           class_line + Rule("a.example.com");
  };
  struct Case {
    const char* name;
    std::string yaml;
    std::string ingress_class_flag;
    bool claimed;
  };
  const Case cases[] = {
      {"explicit, ours", Class() + "---\n" + ing("  ingressClassName: doorman\n", ""), "doorman", true},
      {"explicit, ours under another name", Class("edge") + "---\n" + ing("  ingressClassName: edge\n", ""), "doorman", true},
      {"explicit, another controller's", nginx + "---\n" + ing("  ingressClassName: nginx\n", ""), "doorman", false},
      {"explicit, no such class", ing("  ingressClassName: doorman\n", ""), "doorman", false},
      {"no class, ours is the default", Class("doorman", true) + "---\n" + ing("", ""), "doorman", true},
      {"no class, ours is not the default", Class() + "---\n" + nginx + "---\n" + ing("", ""), "doorman", false},
      {"no class, no class at all", ing("", ""), "doorman", false},
      {"legacy annotation, ours", ing("", "doorman"), "doorman", true},
      {"legacy annotation, ours by flag", ing("", "edge"), "edge", true},
      {"legacy annotation, not ours, though ours is default", Class("doorman", true) + "---\n" + ing("", "nginx"),
       "doorman", false},
      // The field decides over a leftover annotation (ingress-nginx's order; helper-115).
      {"class ours, legacy annotation another's", Class() + "---\n" + ing("  ingressClassName: doorman\n", "nginx"),
       "doorman", true},
      {"class another's, legacy annotation ours", nginx + "---\n" + ing("  ingressClassName: nginx\n", "doorman"),
       "doorman", false},
      // The same class both ways (the API server allows that pair): nothing to say.
      {"class ours under another name, legacy annotation the same", Class("edge") + "---\n" +
       ing("  ingressClassName: edge\n", "edge"), "doorman", true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TranslateOptions opts;
    opts.ingress_class = c.ingress_class_flag;
    Translator t(opts);
    auto r = t.Translate(Store(c.yaml));
    EXPECT_EQ(Ing(r, "i") != nullptr, c.claimed);
    EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:i/r0-p0") != nullptr, c.claimed);
    // Claimed against a leftover annotation: said, as the other controller may be reading it.
    const bool overridden = c.claimed && c.yaml.find("ingress.class: nginx") != std::string::npos;
    if (c.claimed) {
      const auto& w = Ing(r, "i")->warnings;
      const bool warned = std::any_of(w.begin(), w.end(), [](const StatusWarning& x) {
        return x.reason == "AnnotationIgnored" && x.field == "metadata.annotations[kubernetes.io/ingress.class]" &&
               x.message.find("spec.ingressClassName decides") != std::string::npos;
      });
      EXPECT_EQ(warned, overridden);
    }
  }
}

// --controller-class: two installs in one cluster each claim only the IngressClasses naming their
// own controller value (and so only the Ingresses of those classes, the default included).
TEST(TranslateIngress, ControllerClassFlagPicksTheIngressClasses) {
  const std::string internal =
      "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: internal\n"
      "spec: {controller: example.com/internal}\n";
  auto ing = [](const std::string& name, const std::string& cls) {
    return "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: " + name + "\nspec:\n" +
           (cls.empty() ? "" : "  ingressClassName: " + cls + "\n") + Rule("a.example.com");
  };
  const std::string yaml = Docs({Class("doorman", true), internal, ing("edge", "doorman"), ing("inside", "internal"),
                                 ing("unclassed", "")});
  {
    Translator t;  // the default controller value
    auto r = t.Translate(Store(yaml));
    EXPECT_NE(Ing(r, "edge"), nullptr);
    EXPECT_NE(Ing(r, "unclassed"), nullptr);  // doorman is the default class
    EXPECT_EQ(Ing(r, "inside"), nullptr);
    EXPECT_NE(StatusOf(r, "IngressClass", "doorman"), nullptr);
    EXPECT_EQ(StatusOf(r, "IngressClass", "internal"), nullptr);
  }
  {
    TranslateOptions opts;
    opts.ingress_controller = "example.com/internal";
    Translator t(opts);
    auto r = t.Translate(Store(yaml));
    EXPECT_EQ(Ing(r, "edge"), nullptr);
    EXPECT_EQ(Ing(r, "unclassed"), nullptr);  // the default class is another install's
    ASSERT_NE(Ing(r, "inside"), nullptr);
    EXPECT_TRUE(Ing(r, "inside")->accepted);
    EXPECT_NE(RouteNamed(r.snapshot, "default/ingress:inside/r0-p0"), nullptr);
    EXPECT_EQ(StatusOf(r, "IngressClass", "doorman"), nullptr);
    EXPECT_NE(StatusOf(r, "IngressClass", "internal"), nullptr);
  }
}

// --manifests: every file was written for doorman, so an Ingress or LoadBalancer Service it does
// not claim is logged once, with why (helper-116: a standalone Ingress without an IngressClass
// was ignored without a word).
TEST(TranslateIngress, UnclaimedObjectsAreLoggedOnceInManifestsMode) {
  auto ing = [](const std::string& name, const std::string& spec_line) {
    return "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: " + name + "\nspec:\n" + spec_line +
           Rule("a.example.com");
  };
  const std::string svc =
      "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n";
  const std::string cluster_ip = "apiVersion: v1\nkind: Service\nmetadata: {name: c}\nspec:\n  ports: [{port: 80}]\n";
  const std::string yaml = Docs({ing("plain", ""), ing("named", "  ingressClassName: nginx\n"), svc, cluster_ip});
  auto unclaimed = [](const TranslateResult& r) {
    std::map<std::string, std::string> out;
    for (const auto& d : r.diagnostics) {
      if (d.message == "object not claimed, so not routed") out[d.Field("object")] = d.Field("reason");
    }
    return out;
  };
  TranslateOptions opts;
  opts.report_unclaimed = true;
  Translator t(opts);
  auto first = unclaimed(t.Translate(Store(yaml)));
  ASSERT_EQ(first.size(), 3u);
  EXPECT_NE(first["Ingress default/plain"].find("no spec.ingressClassName, and no IngressClass with spec.controller "
                                                 "doorman.dev/ingress-controller is marked"),
            std::string::npos);
  EXPECT_EQ(first["Ingress default/named"],
            "spec.ingressClassName nginx names no IngressClass with spec.controller doorman.dev/ingress-controller");
  EXPECT_EQ(first["Service default/s"], "no spec.loadBalancerClass, and --default-lb-class is off");
  EXPECT_TRUE(unclaimed(t.Translate(Store(yaml))).empty());  // once
  // Claimed once a default class exists; logged again if it stops being claimed.
  EXPECT_TRUE(unclaimed(t.Translate(Store(Docs({Class("doorman", true), ing("plain", "")})))).empty());
  EXPECT_EQ(unclaimed(t.Translate(Store(Docs({ing("plain", "")})))).size(), 1u);
  // In a cluster other controllers' objects are the norm: nothing is logged.
  Translator cluster;
  EXPECT_TRUE(unclaimed(cluster.Translate(Store(yaml))).empty());
}

// Annotations meant for the Ingresses, set on the class instead, are said (the class reads only
// Kubernetes' is-default-class).
TEST(TranslateIngress, DoormanAndNginxAnnotationsOnAClassAreWarned) {
  Translator t;
  const std::string cls =
      "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: doorman\n  annotations:\n"
      "    ingressclass.kubernetes.io/is-default-class: \"true\"\n    doorman.dev/ssl-redirect: \"true\"\n"
      "    nginx.ingress.kubernetes.io/whitelist-source-range: 10.0.0.0/8\n"
      "spec: {controller: doorman.dev/ingress-controller}\n";
  auto r = t.Translate(Store(cls));
  const ObjectStatus* st = StatusOf(r, "IngressClass", "doorman");
  ASSERT_NE(st, nullptr);
  std::set<std::string> reasons;
  for (const auto& w : st->warnings) reasons.insert(w.reason + " " + w.field);
  EXPECT_EQ(reasons, (std::set<std::string>{"UnknownAnnotation metadata.annotations[doorman.dev/ssl-redirect]",
                                            "AnnotationIgnored metadata.annotations"}));
  EXPECT_TRUE(StatusOf(t.Translate(Store(Class("doorman", true))), "IngressClass", "doorman")->warnings.empty());
}

TEST(TranslateIngress, SeveralDefaultClassesOfOursTheOldestIsTheDefaultAndTheOthersAreWarned) {
  Translator t;
  auto r = t.Translate(Store(Docs({Class("b", true, "2026-01-01T00:00:00Z"), Class("a", true, "2026-02-01T00:00:00Z"),
                                   Class("c", false)})));
  const ObjectStatus* a = StatusOf(r, "IngressClass", "a");
  const ObjectStatus* b = StatusOf(r, "IngressClass", "b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(b->warnings.empty());
  ASSERT_EQ(a->warnings.size(), 1u);
  EXPECT_EQ(a->warnings[0].reason, "MultipleDefaultClasses");
  EXPECT_EQ(a->warnings[0].field, "metadata.annotations[ingressclass.kubernetes.io/is-default-class]");
  EXPECT_NE(a->warnings[0].message.find("IngressClass b is also marked default and is older"), std::string::npos);
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].Field("object"), "IngressClass a");
  EXPECT_TRUE(t.Translate(Store(Docs({Class("b", true, "2026-01-01T00:00:00Z"), Class("a", true, "2026-02-01T00:00:00Z"),
                                      Class("c", false)})))
                  .diagnostics.empty());
  // Neither has a creationTimestamp (a manifest file), or both the same: the first name wins, and
  // the message does not claim it is older.
  for (const std::string ts : {"", "2026-01-01T00:00:00Z"}) {
    Translator same;
    r = same.Translate(Store(Docs({Class("b", true, ts), Class("a", true, ts)})));
    const ObjectStatus* later = StatusOf(r, "IngressClass", "b");
    ASSERT_EQ(later->warnings.size(), 1u);
    EXPECT_NE(later->warnings[0].message.find("IngressClass a is also marked default and sorts first by name"),
              std::string::npos) << later->warnings[0].message;
    EXPECT_TRUE(StatusOf(r, "IngressClass", "a")->warnings.empty());
  }
  // Only one has a creationTimestamp: it is the older.
  Translator one;
  r = one.Translate(Store(Docs({Class("b", true, "2026-01-01T00:00:00Z"), Class("a", true)})));
  ASSERT_EQ(StatusOf(r, "IngressClass", "a")->warnings.size(), 1u);
  EXPECT_NE(StatusOf(r, "IngressClass", "a")->warnings[0].message.find("IngressClass b is also marked default and is older"),
            std::string::npos);
}

TEST(TranslateIngress, AnIngressThatLeavesOurClassIsDroppedAndForgotten) {
  Translator t;
  const std::string good = Class() + "---\n" + Ingress("i", Rule("a.example.com"));
  ASSERT_TRUE(Ing(t.Translate(Store(good)), "i")->accepted);
  std::string foreign = good;
  foreign.replace(foreign.find("ingressClassName: doorman"), 25, "ingressClassName: nginx");
  auto r = t.Translate(Store(foreign));
  EXPECT_EQ(Ing(r, "i"), nullptr);
  EXPECT_EQ(r.snapshot.listeners_size(), 0);
  // Back, but invalid: there is no last good version any more.
  auto r2 = t.Translate(Store(Class() + "---\n" + Ingress("i", Rule("a.example.com"), "    doorman.dev/retries: lots\n")));
  EXPECT_FALSE(Ing(r2, "i")->serving_last_good);
  EXPECT_EQ(r2.snapshot.listeners_size(), 0);
}

// ---- invalid Ingresses: exact reason, field and message; neighbours unaffected ---------------------

struct InvalidCase {
  const char* name;
  std::string spec;         // the Ingress "bad"'s spec (after ingressClassName)
  std::string annotations;  // lines indented by four
  const char* reason;
  const char* field;
  const char* message;  // substring of the status message
};

std::vector<InvalidCase> InvalidCases() {
  const std::string rule = Rule("bad.example.com");
  auto ann = [&rule](const char* name, const std::string& line, const char* field, const char* message) {
    return InvalidCase{name, rule, "    " + line + "\n", "InvalidAnnotation", field, message};
  };
  return {
      ann("ssl-redirect", "doorman.dev/ssl-redirect: \"yes\"", "metadata.annotations[doorman.dev/ssl-redirect]",
          "annotation doorman.dev/ssl-redirect: invalid value \"yes\" (want \"true\" or \"false\"; also taken, as by "
          "ingress-nginx: True, TRUE, t, T, 1 and False, FALSE, f, F, 0)"),
      ann("ssl-redirect as a boolean", "doorman.dev/ssl-redirect: true", "metadata.annotations[doorman.dev/ssl-redirect]",
          "must be a string, not a boolean (quote it: \"true\")"),
      ann("rewrite-target", "doorman.dev/rewrite-target: api", "metadata.annotations[doorman.dev/rewrite-target]",
          "annotation doorman.dev/rewrite-target: path \"api\" must start with \"/\""),
      ann("rewrite-target with CR LF", "doorman.dev/rewrite-target: \"/y\\r\\nX-Ing-Inj: 1\"",
          "metadata.annotations[doorman.dev/rewrite-target]", "must not contain control characters"),
      ann("rewrite-target with a space", "doorman.dev/rewrite-target: \"/a b\"",
          "metadata.annotations[doorman.dev/rewrite-target]", "must not contain spaces"),
      ann("rewrite-target capture group", "doorman.dev/rewrite-target: /$1", "metadata.annotations[doorman.dev/rewrite-target]",
          "capture groups such as $1 are not supported"),
      ann("affinity", "doorman.dev/affinity: ip", "metadata.annotations[doorman.dev/affinity]",
          "annotation doorman.dev/affinity: unknown affinity \"ip\" (want cookie)"),
      {"affinity cookie name", rule, "    doorman.dev/affinity: cookie\n    doorman.dev/affinity-cookie-name: \"a b\"\n",
       "InvalidAnnotation", "metadata.annotations[doorman.dev/affinity-cookie-name]", "invalid cookie name \"a b\""},
      {"affinity cookie path", rule, "    doorman.dev/affinity: cookie\n    doorman.dev/affinity-cookie-path: \"/a;Domain=x\"\n",
       "InvalidAnnotation", "metadata.annotations[doorman.dev/affinity-cookie-path]", "must not contain ';'"},
      {"affinity cookie ttl", rule, "    doorman.dev/affinity: cookie\n    doorman.dev/affinity-cookie-ttl: 1 day\n",
       "InvalidAnnotation", "metadata.annotations[doorman.dev/affinity-cookie-ttl]", "invalid duration \"1 day\""},
      // A dependent annotation's bad value is reported without its prerequisite too (it used to
      // be only "has no effect" until the prerequisite was added, and then refused).
      ann("affinity cookie ttl without affinity", "doorman.dev/affinity-cookie-ttl: -5s",
          "metadata.annotations[doorman.dev/affinity-cookie-ttl]", "invalid duration \"-5s\""),
      ann("affinity cookie name without affinity", "doorman.dev/affinity-cookie-name: \"a b\"",
          "metadata.annotations[doorman.dev/affinity-cookie-name]", "invalid cookie name \"a b\""),
      ann("rate-limit-burst without rps", "doorman.dev/rate-limit-burst: \"-1\"",
          "metadata.annotations[doorman.dev/rate-limit-burst]", "invalid value \"-1\""),
      ann("backend-tls-secret without HTTPS", "doorman.dev/backend-tls-secret: Bad_Name",
          "metadata.annotations[doorman.dev/backend-tls-secret]", "\"Bad_Name\" is not a valid Secret name"),
      ann("backend-tls-server-name without HTTPS", "doorman.dev/backend-tls-server-name: \"a..b\"",
          "metadata.annotations[doorman.dev/backend-tls-server-name]", "invalid server name \"a..b\""),
      ann("canary", "doorman.dev/canary: \"maybe\"", "metadata.annotations[doorman.dev/canary]", "invalid value \"maybe\""),
      ann("canary-weight", "doorman.dev/canary-weight: \"101\"", "metadata.annotations[doorman.dev/canary-weight]",
          "annotation doorman.dev/canary-weight: invalid value \"101\" (want an integer in 0..100)"),
      ann("canary-by-header", "doorman.dev/canary-by-header: \"x canary\"",
          "metadata.annotations[doorman.dev/canary-by-header]", "invalid header name \"x canary\""),
      {"canary-by-header-value without canary-by-header", rule,
       "    doorman.dev/canary: \"true\"\n    doorman.dev/canary-weight: \"5\"\n    doorman.dev/canary-by-header-value: v2\n",
       "InvalidAnnotation", "metadata.annotations[doorman.dev/canary-by-header-value]", "needs doorman.dev/canary-by-header"},
      {"canary-by-header-value with an empty value", rule,
       "    doorman.dev/canary: \"true\"\n    doorman.dev/canary-by-header: x-c\n    doorman.dev/canary-by-header-value: \"v2,,v3\"\n",
       "InvalidAnnotation", "metadata.annotations[doorman.dev/canary-by-header-value]", "an empty value"},
      ann("canary-by-cookie", "doorman.dev/canary-by-cookie: \"a;b\"", "metadata.annotations[doorman.dev/canary-by-cookie]",
          "invalid cookie name \"a;b\""),
      ann("rate-limit-rps", "doorman.dev/rate-limit-rps: \"0\"", "metadata.annotations[doorman.dev/rate-limit-rps]",
          "invalid value \"0\" (want an integer in 1..1000000000)"),
      {"rate-limit-burst", rule, "    doorman.dev/rate-limit-rps: \"5\"\n    doorman.dev/rate-limit-burst: \"-1\"\n",
       "InvalidAnnotation", "metadata.annotations[doorman.dev/rate-limit-burst]", "invalid value \"-1\""},
      ann("request-timeout", "doorman.dev/request-timeout: \"30\"", "metadata.annotations[doorman.dev/request-timeout]",
          "annotation doorman.dev/request-timeout: invalid duration \"30\" (a unit is required: \"30s\" for seconds)"),
      ann("request-timeout too long", "doorman.dev/request-timeout: 99999999h",
          "metadata.annotations[doorman.dev/request-timeout]",
          "annotation doorman.dev/request-timeout: duration \"99999999h\" is too long (at most 1193h, about 49 days)"),
      ann("hsts without max-age", "doorman.dev/hsts: includeSubDomains", "metadata.annotations[doorman.dev/hsts]",
          "needs max-age=<seconds>"),
      ann("hsts bad directive", "doorman.dev/hsts: \"max-age=60; always\"", "metadata.annotations[doorman.dev/hsts]",
          "unknown directive \"always\""),
      ann("hsts twice", "doorman.dev/hsts: \"max-age=60; max-age=70\"", "metadata.annotations[doorman.dev/hsts]",
          "appears twice"),
      ann("retries", "doorman.dev/retries: twice", "metadata.annotations[doorman.dev/retries]",
          "invalid value \"twice\" (want an integer in 0..10)"),
      ann("retries too many", "doorman.dev/retries: \"11\"", "metadata.annotations[doorman.dev/retries]", "invalid value \"11\""),
      ann("backend-protocol", "doorman.dev/backend-protocol: FTP", "metadata.annotations[doorman.dev/backend-protocol]",
          "unknown backend protocol \"FTP\" (want HTTP, HTTPS or GRPC)"),
      ann("health-check-path", "doorman.dev/health-check-path: healthz",
          "metadata.annotations[doorman.dev/health-check-path]", "path \"healthz\" must start with \"/\""),
      {"rewrite-target on a regex path", Rule("bad.example.com", "/v[0-9]+", "ImplementationSpecific"),
       "    doorman.dev/rewrite-target: /\n", "InvalidAnnotation", "metadata.annotations[doorman.dev/rewrite-target]",
       "cannot replace the prefix of the regular-expression path at spec.rules[0].http.paths[0]"},
      {"regex", Rule("bad.example.com", "/(x", "ImplementationSpecific"), "", "InvalidSpec", "spec.rules[0].http.paths[0].path",
       "invalid regular expression \"/(x\""},
      {"path type", Rule("bad.example.com", "/", "Glob"), "", "UnsupportedValue", "spec.rules[0].http.paths[0].pathType",
       "unknown path type \"Glob\" (want Exact, Prefix or ImplementationSpecific)"},
      {"prefix path without slash", Rule("bad.example.com", "api", "Prefix"), "", "InvalidSpec",
       "spec.rules[0].http.paths[0].path", "path \"api\" must start with \"/\""},
      {"missing path type",
       "  rules: [{http: {paths: [{path: /, backend: {service: {name: web, port: {number: 80}}}}]}}]\n", "",
       "InvalidSpec", "spec.rules[0].http.paths[0].pathType", "is required"},
      {"host", Rule("Bad_Host"), "", "InvalidSpec", "spec.rules[0].host", "invalid host \"Bad_Host\""},
      {"wildcard in the middle", Rule("a.*.example.com"), "", "InvalidSpec", "spec.rules[0].host", "invalid host"},
      {"an IP address as host", Rule("10.1.2.3"), "", "InvalidSpec", "spec.rules[0].host",
       "invalid host \"10.1.2.3\": must be a DNS name, not an IP address"},
      {"tls host", "  tls: [{hosts: [\"*\"], secretName: s}]\n" + rule, "", "InvalidSpec", "spec.tls[0].hosts[0]",
       "invalid host \"*\""},
      {"resource backend",
       "  defaultBackend: {resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: static}}\n", "",
       "UnsupportedValue", "spec.defaultBackend.resource", "resource backends are not supported"},
      {"port number and name",
       "  defaultBackend: {service: {name: web, port: {number: 80, name: http}}}\n", "", "InvalidSpec",
       "spec.defaultBackend.service.port", "give exactly one of number or name"},
      {"port out of range", "  defaultBackend: {service: {name: web, port: {number: 0}}}\n", "", "InvalidSpec",
       "spec.defaultBackend.service.port.number", "0 is out of range (1..65535)"},
      {"no paths", "  rules: [{host: a.example.com, http: {}}]\n", "", "InvalidSpec", "spec.rules[0].http.paths",
       "is required"},
  };
}

TEST(TranslateIngress, InvalidIngressesReportReasonAndField) {
  const std::string good = Ingress("good", Rule("good.example.com"));
  const std::string base = Fixture() + "---\n" + Secret("s") + "---\n" + good;
  for (const auto& c : InvalidCases()) {
    SCOPED_TRACE(c.name);
    Translator t;
    auto r = t.Translate(Store(base + "---\n" + Ingress("bad", c.spec, c.annotations)));
    const ObjectStatus* st = Ing(r, "bad");
    ASSERT_NE(st, nullptr);
    EXPECT_FALSE(st->accepted);
    EXPECT_FALSE(st->serving_last_good);
    EXPECT_EQ(st->reason, c.reason) << st->message;
    EXPECT_EQ(st->field, c.field) << st->message;
    EXPECT_NE(st->message.find(c.message), std::string::npos) << st->message;
    for (const auto& w : st->warnings) EXPECT_NE(w.field, c.field) << "invalid and also warned: " << w.message;
    ASSERT_TRUE(Ing(r, "good")->accepted);
    Translator alone;
    EXPECT_EQ(SerializeSnapshot(r.snapshot), SerializeSnapshot(alone.Translate(Store(base)).snapshot));
    ASSERT_EQ(r.diagnostics.size(), 1u);
    EXPECT_EQ(r.diagnostics[0].Field("object"), "Ingress default/bad");
    EXPECT_EQ(r.diagnostics[0].Field("field"), c.field);
    EXPECT_EQ(r.diagnostics[0].message,
              std::string(c.reason) == "InvalidAnnotation" ? "invalid annotation, object not routed" : "invalid object, not routed");
  }
}

TEST(TranslateIngress, AnInvalidEditKeepsTheLastGoodVersion) {
  Translator t;
  const std::string v1 = Class() + "---\n" + Ingress("i", Rule("a.example.com"), "    doorman.dev/retries: \"1\"\n");
  auto r1 = t.Translate(Store(v1));
  ASSERT_TRUE(Ing(r1, "i")->accepted);
  auto r2 = t.Translate(Store(Class() + "---\n" + Ingress("i", Rule("a.example.com"), "    doorman.dev/retries: \"-1\"\n")));
  const ObjectStatus* st = Ing(r2, "i");
  EXPECT_FALSE(st->accepted);
  EXPECT_TRUE(st->serving_last_good);
  EXPECT_EQ(st->reason, "InvalidAnnotation");
  EXPECT_EQ(st->field, "metadata.annotations[doorman.dev/retries]");
  EXPECT_EQ(SerializeSnapshot(r2.snapshot), SerializeSnapshot(r1.snapshot));
  ASSERT_EQ(r2.diagnostics.size(), 1u);
  EXPECT_EQ(r2.diagnostics[0].message, "invalid annotation, keeping last good version");
  EXPECT_EQ(r2.diagnostics[0].Field("error"), "annotation doorman.dev/retries: invalid value \"-1\" (want an integer in 0..10)");
}

// ---- TLS -----------------------------------------------------------------------------------------------

TEST(TranslateIngress, TlsEntriesWithAMissingOrMalformedSecretAreWarnedAndTheRestRoutes) {
  struct Case {
    const char* name;
    std::string secret;  // documents added to the store
    const char* reason;
    const char* message;
  };
  const Case cases[] = {
      {"missing", "", "SecretNotFound", "Secret default/s not found (a.example.com: not served over HTTPS by this entry)"},
      {"wrong type", Secret("s", "type: Opaque\nstringData: {tls.crt: x}\n"), "InvalidSecret",
       "Secret default/s has type \"Opaque\", want kubernetes.io/tls"},
      {"no key", Secret("s", "type: kubernetes.io/tls\nstringData: {tls.crt: \"-----BEGIN CERTIFICATE-----\"}\n"),
       "InvalidSecret", "Secret default/s has no tls.key"},
      {"not PEM", Secret("s", "type: kubernetes.io/tls\nstringData: {tls.crt: hello, tls.key: world}\n"), "InvalidSecret",
       "Secret default/s: tls.crt is not PEM"},
      {"bad base64", Secret("s", "type: kubernetes.io/tls\ndata: {tls.crt: \"!!!\", tls.key: \"\"}\n"), "InvalidSecret",
       "Secret default/s: data.tls.crt is not valid base64"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Translator t;
    const std::string ing = Ingress("i", "  tls: [{hosts: [a.example.com], secretName: s}, {hosts: [b.example.com], secretName: ok}]\n" +
                                             Rule("a.example.com"));
    auto r = t.Translate(Store(Docs({Fixture(), Secret("ok"), ing}) + (c.secret.empty() ? "" : "---\n" + c.secret)));
    const ObjectStatus* st = Ing(r, "i");
    ASSERT_TRUE(st->accepted) << st->message;
    ASSERT_EQ(st->warnings.size(), 1u);
    EXPECT_EQ(st->warnings[0].reason, c.reason);
    EXPECT_EQ(st->warnings[0].field, "spec.tls[0].secretName");
    EXPECT_EQ(st->warnings[0].message.rfind(c.message, 0), 0u) << st->warnings[0].message;
    EXPECT_EQ(st->warnings[0].message.find("-----BEGIN"), std::string::npos);
    // The other entry still gives an HTTPS listener; a.example.com (no certificate) is not redirected.
    const v1::Listener* https = ListenerNamed(r.snapshot, "https-443");
    ASSERT_NE(https, nullptr);
    ASSERT_EQ(https->tls().certificates_size(), 1);
    EXPECT_EQ(https->tls().certificates(0), "default/ok");
    EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:i/r0-p0")->filters().has_redirect());
    EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:i/r0-p0")->backends_size(), 1);
    ASSERT_NE(RouteNamed(r.snapshot, "default/ingress:i/r0-p0-https"), nullptr);
    ASSERT_EQ(r.diagnostics.size(), 1u);
    EXPECT_EQ(r.diagnostics[0].message, "object warning");
    EXPECT_EQ(r.diagnostics[0].Field("reason"), c.reason);
  }
}

// In a cluster only kubernetes.io/tls Secrets are watched: a missing Secret may be one of another
// type, and the message says so (audit3-k8s #2: an Opaque Secret read as plain "not found").
TEST(TranslateIngress, InAClusterANotFoundSecretMayBeOfAnotherType) {
  const std::string ing = Ingress("i", "  tls: [{hosts: [a.example.com], secretName: s}]\n" + Rule("a.example.com"));
  for (bool cluster : {false, true}) {
    SCOPED_TRACE(cluster);
    TranslateOptions o;
    o.only_tls_secrets_watched = cluster;
    Translator t(o);
    auto r = t.Translate(Store(Docs({Fixture(), ing})));
    const ObjectStatus* st = Ing(r, "i");
    ASSERT_EQ(st->warnings.size(), 1u);
    EXPECT_EQ(st->warnings[0].reason, "SecretNotFound");
    const bool hinted = st->warnings[0].message.find("only Secrets of type kubernetes.io/tls are watched") != std::string::npos;
    EXPECT_EQ(hinted, cluster) << st->warnings[0].message;
  }
}

// A TLS Secret that breaks after the Ingress was accepted (cert-manager writing a bad pair, a
// deleted Secret) is warned, but the entry keeps serving the certificate it had.
TEST(TranslateIngress, ABrokenSecretKeepsTheCertificateOfTheLastAcceptedVersion) {
  Translator t;
  // hsts and ssl-redirect keep their effect while the saved certificate serves: no
  // "has no effect" warning for them (only the Secret's own).
  const std::string ing = Ingress("i", "  tls: [{hosts: [a.example.com], secretName: s}]\n" + Rule("a.example.com"),
                                  "    doorman.dev/hsts: \"max-age=100\"\n    doorman.dev/ssl-redirect: \"true\"\n");
  auto r1 = t.Translate(Store(Docs({Fixture(), Secret("s"), ing})));
  ASSERT_TRUE(Ing(r1, "i")->accepted);
  ASSERT_EQ(r1.snapshot.certificates_size(), 1);
  const std::string served = r1.snapshot.certificates(0).certificate_chain_pem();
  for (const std::string& broken : {Secret("s", "type: kubernetes.io/tls\nstringData: {tls.crt: hello, tls.key: world}\n"),
                                    std::string()}) {
    SCOPED_TRACE(broken.empty() ? "deleted" : "not PEM");
    auto r2 = t.Translate(Store(Docs({Fixture(), ing}) + (broken.empty() ? "" : "---\n" + broken)));
    const ObjectStatus* st = Ing(r2, "i");
    ASSERT_TRUE(st->accepted) << st->message;
    ASSERT_EQ(st->warnings.size(), 1u) << st->warnings.back().reason << ": " << st->warnings.back().message;
    EXPECT_NE(st->warnings[0].message.find("still served over HTTPS with the certificate of the last accepted version"),
              std::string::npos) << st->warnings[0].message;
    EXPECT_EQ(RouteNamed(r2.snapshot, "default/ingress:i/r0-p0-https")->filters().response_headers().set().at(
                  "strict-transport-security"),
              "max-age=100");
    const v1::Listener* https = ListenerNamed(r2.snapshot, "https-443");
    ASSERT_NE(https, nullptr);
    ASSERT_EQ(r2.snapshot.certificates_size(), 1);
    EXPECT_EQ(r2.snapshot.certificates(0).certificate_chain_pem(), served);
    EXPECT_TRUE(RouteNamed(r2.snapshot, "default/ingress:i/r0-p0")->filters().has_redirect());  // still redirected to HTTPS
  }
}

// A certificate outside its validity is served (a lapsed renewal does not take the host off
// HTTPS), with a warning on the object that names the date: ALB would refuse it, and clients
// that verify refuse the connection.
TEST(TranslateIngress, ACertificateOutsideItsValidityIsWarned) {
  Translator t;
  const std::string expired = Secret("expired", "type: kubernetes.io/tls\n" + TlsStringDataOf(kExpiredCertPem, kExpiredKeyPem));
  const std::string future = Secret("future", "type: kubernetes.io/tls\n" + TlsStringDataOf(kFutureCertPem, kFutureKeyPem));
  const std::string lb = R"(apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {name: lb, namespace: default}
spec:
  listeners: [{name: web, port: 8443, protocol: HTTPS, tls: {certificates: [{secretName: future}]}}]
  routes: [{name: a, listener: web, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]
)";
  auto r = t.Translate(Store(Docs({Fixture(), expired, future, lb,
                                   Ingress("i", "  tls: [{hosts: [old.example.com], secretName: expired}]\n" +
                                                    Rule("old.example.com"))})));
  const ObjectStatus* ing = Ing(r, "i");
  ASSERT_TRUE(ing->accepted) << ing->message;
  ASSERT_EQ(ing->warnings.size(), 1u);
  EXPECT_EQ(ing->warnings[0].reason, "CertificateExpired");
  EXPECT_EQ(ing->warnings[0].field, "spec.tls[0].secretName");
  EXPECT_NE(ing->warnings[0].message.find("the certificate of Secret default/expired expired on 2020-02-01T00:00:00Z"),
            std::string::npos)
      << ing->warnings[0].message;
  EXPECT_TRUE(RouteNamed(r.snapshot, "default/ingress:i/r0-p0")->filters().redirect().enabled());  // still served
  const ObjectStatus* l = nullptr;
  for (const auto& st : r.statuses) {
    if (st.key.kind == "LoadBalancer") l = &st;
  }
  ASSERT_NE(l, nullptr);
  ASSERT_TRUE(l->accepted) << l->message;
  ASSERT_EQ(l->warnings.size(), 1u);
  EXPECT_EQ(l->warnings[0].reason, "CertificateNotYetValid");
  EXPECT_EQ(l->warnings[0].field, "spec.listeners[0].tls.certificates[0].secretName");
  EXPECT_NE(l->warnings[0].message.find("is not valid before 2125-01-01T00:00:00Z"), std::string::npos) << l->warnings[0].message;
  EXPECT_EQ(r.snapshot.certificates_size(), 2);
}

TEST(TranslateIngress, NoUsableCertificateMeansNoHttpsListener) {
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(), Ingress("i", "  tls: [{hosts: [a.example.com]}]\n" + Rule("a.example.com"))})));
  const ObjectStatus* st = Ing(r, "i");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "SecretNotFound");
  EXPECT_EQ(st->warnings[0].message,
            "no secretName and no --ingress-default-certificate (a.example.com: not served over HTTPS by this entry)");
  EXPECT_EQ(ListenerNamed(r.snapshot, "https-443"), nullptr);
  ASSERT_EQ(st->listeners.size(), 1u);
  EXPECT_EQ(st->listeners[0].name, "http");
  EXPECT_EQ(st->listeners[0].attached_routes, 1u);
}

// --ingress-default-certificate (ingress-nginx's --default-ssl-certificate): every Ingress is
// served on the HTTPS port with it, those without tls[] too (not redirected); a tls[] entry
// without secretName uses it (redirected); it is the listener's first certificate, the one a
// ClientHello without SNI or with an unknown name gets, ahead of the Ingresses' own.
TEST(TranslateIngress, TheDefaultCertificateServesEveryIngressOverHttps) {
  TranslateOptions opts;
  opts.ingress_default_certificate = "infra/wild";
  const std::string wild = "apiVersion: v1\nkind: Secret\nmetadata: {name: wild, namespace: infra}\ntype: kubernetes.io/tls\n" +
                           TlsStringData();
  Translator t(opts);
  auto r = t.Translate(Store(Docs(
      {Fixture(), wild, Secret("own"),
       Ingress("own", "  tls: [{hosts: [c.example.com], secretName: own}]\n" + Rule("c.example.com"), "",
               "2026-01-01T00:00:00Z"),
       Ingress("plain", Rule("a.example.com"), "    doorman.dev/hsts: \"max-age=60\"\n", "2026-02-01T00:00:00Z"),
       Ingress("nosecret", "  tls: [{hosts: [b.example.com, x.example.org]}]\n" + Rule("b.example.com"), "",
               "2026-03-01T00:00:00Z")})));
  for (const char* name : {"own", "plain"}) {
    const ObjectStatus* st = Ing(r, name);
    ASSERT_TRUE(st->accepted) << st->message;
    EXPECT_TRUE(st->warnings.empty()) << name << ": " << st->warnings[0].message;
  }
  const v1::Listener* https = ListenerNamed(r.snapshot, "https-443");
  ASSERT_NE(https, nullptr);
  ASSERT_EQ(https->tls().certificates_size(), 2);
  EXPECT_EQ(https->tls().certificates(0), "infra/wild");
  EXPECT_EQ(https->tls().certificates(1), "default/own");
  EXPECT_FALSE(https->tls().default_self_signed());  // the flag's certificate is the default
  EXPECT_EQ(r.snapshot.certificates_size(), 2);
  // Without tls[]: served on both ports, not redirected; HSTS on HTTPS.
  EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:plain/r0-p0")->filters().redirect().enabled());
  const v1::Route* plain_https = RouteNamed(r.snapshot, "default/ingress:plain/r0-p0-https");
  ASSERT_NE(plain_https, nullptr);
  EXPECT_EQ(plain_https->filters().response_headers().set().at("strict-transport-security"), "max-age=60");
  // A tls[] entry without secretName: the default certificate's hosts redirect; one it is not
  // valid for is said so and not redirected.
  const ObjectStatus* ns = Ing(r, "nosecret");
  ASSERT_TRUE(ns->accepted) << ns->message;
  ASSERT_EQ(ns->warnings.size(), 1u);
  EXPECT_EQ(ns->warnings[0].reason, "CertificateMismatch");
  EXPECT_EQ(ns->warnings[0].field, "spec.tls[0].hosts[1]");
  EXPECT_NE(ns->warnings[0].message.find("Secret infra/wild is not valid for \"x.example.org\""), std::string::npos)
      << ns->warnings[0].message;
  EXPECT_TRUE(RouteNamed(r.snapshot, "default/ingress:nosecret/r0-p0")->filters().redirect().enabled());
  EXPECT_NE(RouteNamed(r.snapshot, "default/ingress:nosecret/r0-p0-https"), nullptr);
  EXPECT_TRUE(RouteNamed(r.snapshot, "default/ingress:own/r0-p0")->filters().redirect().enabled());
}

// A default certificate that is missing (or not a usable TLS Secret) is said on every Ingress,
// which is then served over HTTPS only with its own certificates.
TEST(TranslateIngress, AnUnusableDefaultCertificateIsWarnedOnEveryIngress) {
  TranslateOptions opts;
  opts.ingress_default_certificate = "infra/missing";
  Translator t(opts);
  auto r = t.Translate(Store(Docs({Fixture(), Ingress("plain", Rule("a.example.com")),
                                   Ingress("nosecret", "  tls: [{hosts: [b.example.com]}]\n" + Rule("b.example.com"))})));
  const ObjectStatus* plain = Ing(r, "plain");
  ASSERT_TRUE(plain->accepted) << plain->message;
  ASSERT_EQ(plain->warnings.size(), 1u);
  EXPECT_EQ(plain->warnings[0].reason, "SecretNotFound");
  EXPECT_EQ(plain->warnings[0].field, "spec");
  EXPECT_NE(plain->warnings[0].message.find("the default certificate (--ingress-default-certificate): Secret infra/missing"),
            std::string::npos)
      << plain->warnings[0].message;
  const ObjectStatus* ns = Ing(r, "nosecret");
  ASSERT_EQ(ns->warnings.size(), 2u);
  EXPECT_EQ(ns->warnings[1].field, "spec.tls[0].secretName");
  EXPECT_EQ(ListenerNamed(r.snapshot, "https-443"), nullptr);
  EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:nosecret/r0-p0")->filters().redirect().enabled());
}

// A default certificate Secret that breaks (a rotation gone wrong): its last good version keeps
// serving, as for an Ingress's own Secret, and the warning says so.
TEST(TranslateIngress, ABrokenDefaultCertificateKeepsServingTheLastGoodOne) {
  TranslateOptions opts;
  opts.ingress_default_certificate = "infra/wild";
  const std::string head = "apiVersion: v1\nkind: Secret\nmetadata: {name: wild, namespace: infra}\ntype: kubernetes.io/tls\n";
  Translator t(opts);
  const std::string ing = Ingress("plain", Rule("a.example.com"));
  auto r = t.Translate(Store(Docs({Fixture(), head + TlsStringData(), ing})));
  ASSERT_TRUE(Ing(r, "plain")->warnings.empty());
  r = t.Translate(Store(Docs({Fixture(), head + "stringData: {tls.crt: garbage, tls.key: garbage}\n", ing})));
  const ObjectStatus* st = Ing(r, "plain");
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "InvalidSecret");
  EXPECT_NE(st->warnings[0].message.find("still served over HTTPS with the default certificate of the last accepted version"),
            std::string::npos)
      << st->warnings[0].message;
  const v1::Listener* https = ListenerNamed(r.snapshot, "https-443");
  ASSERT_NE(https, nullptr);
  EXPECT_EQ(https->tls().certificates(0), "infra/wild");
  ASSERT_EQ(r.snapshot.certificates_size(), 1);
  EXPECT_EQ(r.snapshot.certificates(0).certificate_chain_pem().find("-----BEGIN CERTIFICATE-----"), 0u);
}

// A default certificate that was never usable, while the Ingress's own Secret breaks: the own
// Secret's last good version still serves (its warning says so), but the default certificate's
// warning keeps its words: no version of it was ever served (review12 L1).
TEST(TranslateIngress, ARestoredOwnSecretDoesNotClaimTheDefaultCertificateServes) {
  TranslateOptions opts;
  opts.ingress_default_certificate = "infra/missing";
  Translator t(opts);
  const std::string ing = Ingress("own", "  tls: [{hosts: [c.example.com], secretName: own}]\n" + Rule("c.example.com"));
  auto r = t.Translate(Store(Docs({Fixture(), Secret("own"), ing})));
  ASSERT_EQ(Ing(r, "own")->warnings.size(), 1u);
  r = t.Translate(Store(Docs({Fixture(), Secret("own", "type: kubernetes.io/tls\nstringData: {tls.crt: x, tls.key: y}\n"), ing})));
  const ObjectStatus* st = Ing(r, "own");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 2u);
  for (const auto& w : st->warnings) {
    if (w.field == "spec") {
      EXPECT_EQ(w.reason, "SecretNotFound");
      EXPECT_NE(w.message.find("served over HTTPS only with the certificates of its own spec.tls entries"), std::string::npos)
          << w.message;
      EXPECT_EQ(w.message.find("still served"), std::string::npos) << w.message;
    } else {
      EXPECT_EQ(w.reason, "InvalidSecret") << w.field;
      EXPECT_NE(w.message.find("still served over HTTPS with the certificate of the last accepted version"),
                std::string::npos)
          << w.message;
    }
  }
  const v1::Listener* https = ListenerNamed(r.snapshot, "https-443");
  ASSERT_NE(https, nullptr);
  ASSERT_EQ(https->tls().certificates_size(), 1);
  EXPECT_EQ(https->tls().certificates(0), "default/own");
}

// An older TCP listener on the HTTPS port: an Ingress that is there only for the default
// certificate loses its HTTPS listener with a PortConflict on the object (it has no spec.tls),
// and keeps routing HTTP.
TEST(TranslateIngress, TheDefaultCertificatesListenerLosesItsPortToAnOlderObject) {
  TranslateOptions opts;
  opts.ingress_default_certificate = "infra/wild";
  const std::string wild = "apiVersion: v1\nkind: Secret\nmetadata: {name: wild, namespace: infra}\ntype: kubernetes.io/tls\n" +
                           TlsStringData();
  const std::string lb =
      "apiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: lb, creationTimestamp: "
      "\"2025-01-01T00:00:00Z\"}\nspec:\n  listeners: [{name: raw, port: 443, protocol: TCP}]\n";
  Translator t(opts);
  auto r = t.Translate(Store(Docs({Fixture(), wild, lb, Ingress("plain", Rule("a.example.com"), "", "2026-01-01T00:00:00Z")})));
  const ObjectStatus* st = Ing(r, "plain");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "PortConflict");
  EXPECT_EQ(st->warnings[0].field, "spec");
  EXPECT_NE(RouteNamed(r.snapshot, "default/ingress:plain/r0-p0"), nullptr);
  EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:plain/r0-p0-https"), nullptr);
}

TEST(TranslateIngress, SslRedirectCanBeTurnedOffAndFollowsTheHttpsPort) {
  const std::string spec = "  tls: [{secretName: s}]\n" + Rule("a.example.com");  // no hosts: every host
  Translator off;
  auto r1 = off.Translate(Store(Docs({Class(), Secret("s"), Ingress("i", spec, "    doorman.dev/ssl-redirect: \"false\"\n")})));
  ASSERT_TRUE(Ing(r1, "i")->accepted);
  EXPECT_FALSE(RouteNamed(r1.snapshot, "default/ingress:i/r0-p0")->filters().has_redirect());
  EXPECT_EQ(RouteNamed(r1.snapshot, "default/ingress:i/r0-p0")->backends_size(), 1);

  TranslateOptions opts;
  opts.ingress_http_port = 8080;
  opts.ingress_https_port = 8443;
  Translator ports(opts);
  auto r2 = ports.Translate(Store(Docs({Class(), Secret("s"), Ingress("i", spec, "    doorman.dev/ssl-redirect: \"true\"\n")})));
  const v1::Route* http = RouteNamed(r2.snapshot, "default/ingress:i/r0-p0");
  ASSERT_NE(http, nullptr);
  EXPECT_EQ(http->listener(), "http-8080");
  EXPECT_EQ(http->filters().redirect().port(), 8443u);
  EXPECT_EQ(http->filters().redirect().status_code(), 308u);
  EXPECT_EQ(RouteNamed(r2.snapshot, "default/ingress:i/r0-p0-https")->listener(), "https-8443");
}

// Annotation values as ingress-nginx reads them: booleans in any spelling Go's ParseBool takes,
// the backend protocol in any case.
TEST(TranslateIngress, BooleansAndTheBackendProtocolAreReadAsIngressNginxReadsThem) {
  const std::string spec = "  tls: [{secretName: s}]\n" + Rule("a.example.com");
  for (const char* value : {"False", "FALSE", "f", "0"}) {
    SCOPED_TRACE(value);
    Translator t;
    auto r = t.Translate(Store(Docs({Class(), Secret("s"),
                                     Ingress("i", spec, std::string("    doorman.dev/ssl-redirect: \"") + value + "\"\n")})));
    ASSERT_TRUE(Ing(r, "i")->accepted) << Ing(r, "i")->message;
    EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:i/r0-p0")->filters().has_redirect());
  }
  for (const char* value : {"https", "Https"}) {
    SCOPED_TRACE(value);
    Translator t;
    auto r = t.Translate(Store(Docs({Class(), Ingress("i", Rule("a.example.com"),
                                                     std::string("    doorman.dev/backend-protocol: \"") + value + "\"\n")})));
    ASSERT_TRUE(Ing(r, "i")->accepted) << Ing(r, "i")->message;
    EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:i/r0-p0")->policy().backend_protocol(), "HTTPS");
  }
}

// ---- canary --------------------------------------------------------------------------------------------

TEST(TranslateIngress, CanaryIngressesAttachToTheMainRouteWithTheSameHostAndPath) {
  const std::string main = Ingress("main", Rule("a.example.com", "/app"), "", "2026-01-01T00:00:00Z");
  const std::string by_cookie =
      Ingress("canary", Rule("a.example.com", "/app", "Prefix", "web-v2"),
              "    doorman.dev/canary: \"true\"\n    doorman.dev/canary-by-cookie: beta\n", "2026-01-02T00:00:00Z");
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(), main, by_cookie})));
  ASSERT_TRUE(Ing(r, "canary")->accepted) << Ing(r, "canary")->message;
  EXPECT_TRUE(Ing(r, "canary")->warnings.empty());
  EXPECT_TRUE(Ing(r, "canary")->listeners.empty());
  const v1::Route* route = RouteNamed(r.snapshot, "default/ingress:main/r0-p0");
  ASSERT_TRUE(route->policy().has_canary());
  EXPECT_EQ(route->policy().canary().cookie(), "beta");
  EXPECT_EQ(route->policy().canary().weight_percent(), 0u);
  EXPECT_EQ(route->policy().canary().backends(0).backend_set(), "default/ingress:canary/r0-p0/0");
  EXPECT_NE(SetNamed(r.snapshot, "default/ingress:canary/r0-p0/0"), nullptr);
  ASSERT_EQ(ListenerNamed(r.snapshot, "http-80")->owners_size(), 1);  // the canary owns no port

  // A second canary for the same route: the older one keeps it, the other is warned.
  const std::string second = Ingress("canary2", Rule("a.example.com", "/app", "Prefix", "web-v3"),
                                     "    doorman.dev/canary: \"true\"\n    doorman.dev/canary-weight: \"50\"\n",
                                     "2026-01-03T00:00:00Z");
  // A canary whose path no main Ingress routes, and one in another namespace.
  const std::string stray = Ingress("stray", Rule("a.example.com", "/other"), "    doorman.dev/canary: \"true\"\n    doorman.dev/canary-weight: \"5\"\n");
  std::string elsewhere = Ingress("elsewhere", Rule("a.example.com", "/app"), "    doorman.dev/canary: \"true\"\n    doorman.dev/canary-weight: \"5\"\n");
  elsewhere.replace(elsewhere.find("namespace: default"), 18, "namespace: other");
  Translator t2;
  auto r2 = t2.Translate(Store(Docs({Fixture(), main, by_cookie, second, stray, elsewhere})));
  EXPECT_EQ(RouteNamed(r2.snapshot, "default/ingress:main/r0-p0")->policy().canary().cookie(), "beta");
  ASSERT_EQ(Ing(r2, "canary2")->warnings.size(), 1u);
  EXPECT_EQ(Ing(r2, "canary2")->warnings[0].reason, "CanaryNotAttached");
  EXPECT_EQ(Ing(r2, "canary2")->warnings[0].field, "spec.rules[0].http.paths[0]");
  EXPECT_EQ(Ing(r2, "canary2")->warnings[0].message,
            "not the canary of default/ingress:main/r0-p0 (already has the canary of Ingress default/canary)");
  EXPECT_EQ(SetNamed(r2.snapshot, "default/ingress:canary2/r0-p0/0"), nullptr);
  ASSERT_EQ(Ing(r2, "stray")->warnings.size(), 1u);
  EXPECT_EQ(Ing(r2, "stray")->warnings[0].reason, "CanaryNotAttached");
  // (Its Service is not in namespace other either: BackendNotFound first.)
  ASSERT_EQ(Ing(r2, "elsewhere")->warnings.size(), 2u);
  EXPECT_EQ(Ing(r2, "elsewhere")->warnings[1].reason, "CanaryNotAttached");
  EXPECT_EQ(Ing(r2, "elsewhere")->warnings[1].message,
            "no Ingress in namespace other without doorman.dev/canary routes this host and path; the canary "
            "receives no traffic");
}

TEST(TranslateIngress, CanaryAnnotationsOutsideACanaryAndPolicyOnACanaryAreWarned) {
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(),
                                   Ingress("main", Rule("a.example.com"),
                                           "    doorman.dev/canary: \"false\"\n    doorman.dev/canary-weight: \"20\"\n"),
                                   Ingress("canary", Rule("a.example.com"),
                                           "    doorman.dev/canary: \"true\"\n    doorman.dev/retries: \"3\"\n")})));
  const ObjectStatus* main = Ing(r, "main");
  ASSERT_TRUE(main->accepted);
  ASSERT_EQ(main->warnings.size(), 1u);
  EXPECT_EQ(main->warnings[0].reason, "AnnotationIgnored");
  EXPECT_EQ(main->warnings[0].field, "metadata.annotations[doorman.dev/canary-weight]");
  EXPECT_EQ(main->warnings[0].message, "annotation doorman.dev/canary-weight has no effect: doorman.dev/canary turns the "
                                      "canary off (this is not a canary Ingress)");
  const ObjectStatus* canary = Ing(r, "canary");
  ASSERT_TRUE(canary->accepted);
  ASSERT_EQ(canary->warnings.size(), 2u);
  EXPECT_EQ(canary->warnings[0].field, "metadata.annotations[doorman.dev/canary]");
  EXPECT_NE(canary->warnings[0].message.find("receives no traffic"), std::string::npos);
  EXPECT_EQ(canary->warnings[1].field, "metadata.annotations[doorman.dev/retries]");
  EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:main/r0-p0")->policy().has_retries());
}

// API.md lists canary-weight, canary-by-header and canary-by-cookie without doorman.dev/canary:
// any of them alone makes the Ingress a canary (ingress-nginx's canary: "true" is optional).
TEST(TranslateIngress, ACanaryAnnotationAloneMakesACanary) {
  const std::string main = Ingress("main", Rule("a.example.com", "/app", "Prefix", "web"), "", "2026-01-01T00:00:00Z");
  for (const std::string ann : {"    doorman.dev/canary-weight: \"50\"\n", "    doorman.dev/canary-by-header: x-beta\n",
                                "    doorman.dev/canary-by-cookie: beta\n"}) {
    SCOPED_TRACE(ann);
    Translator t;
    auto r = t.Translate(Store(Docs({Fixture(), main,
                                     Ingress("v2", Rule("a.example.com", "/app", "Prefix", "web-v2"), ann,
                                             "2026-01-02T00:00:00Z")})));
    ASSERT_TRUE(Ing(r, "v2")->accepted) << Ing(r, "v2")->message;
    EXPECT_TRUE(Ing(r, "v2")->warnings.empty()) << Ing(r, "v2")->warnings[0].message;
    EXPECT_TRUE(Ing(r, "v2")->listeners.empty());  // owns no port and no route
    const auto* route = RouteNamed(r.snapshot, "default/ingress:main/r0-p0");
    ASSERT_NE(route, nullptr);
    ASSERT_TRUE(route->policy().has_canary());
    EXPECT_EQ(route->policy().canary().backends(0).backend_set(), "default/ingress:v2/r0-p0/0");
    EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:v2/r0-p0"), nullptr);
  }
}

// Exact and Prefix paths the router could never match (it matches requests in normal form): what
// the API server refuses in an Ingress path ("//", "/./", "/../", %2F) is refused here too (with
// --manifests nothing else checks it), and what it accepts is served with a PathNeverMatches
// warning.
TEST(TranslateIngress, PathsNoRequestCanMatch) {
  for (const std::string path : {"/a/../b", "//x", "/a/./b", "/a/..", "/a%2Fb"}) {
    SCOPED_TRACE(path);
    Translator t;
    auto r = t.Translate(Store(Docs({Fixture(), Ingress("i", Rule("a.example.com", path))})));
    EXPECT_FALSE(Ing(r, "i")->accepted);
    EXPECT_EQ(Ing(r, "i")->field, "spec.rules[0].http.paths[0].path");
  }
  for (const std::string path : {"/%7Euser", "/semi;x", "/caf%c3%a9"}) {
    SCOPED_TRACE(path);
    Translator t;
    auto r = t.Translate(Store(Docs({Fixture(), Ingress("i", Rule("a.example.com", path))})));
    ASSERT_TRUE(Ing(r, "i")->accepted) << Ing(r, "i")->message;
    ASSERT_EQ(Ing(r, "i")->warnings.size(), 1u);
    EXPECT_EQ(Ing(r, "i")->warnings[0].reason, "PathNeverMatches");
  }
}

TEST(TranslateIngress, AnInvalidCanaryDoesNotChangeTheMainRoute) {
  const std::string main = Ingress("main", Rule("a.example.com"));
  Translator t;
  auto r = t.Translate(Store(Docs({Class(), main,
                                   Ingress("canary", Rule("a.example.com"),
                                           "    doorman.dev/canary: \"true\"\n    doorman.dev/canary-weight: \"x\"\n")})));
  EXPECT_EQ(Ing(r, "canary")->reason, "InvalidAnnotation");
  Translator alone;
  EXPECT_EQ(SerializeSnapshot(r.snapshot), SerializeSnapshot(alone.Translate(Store(Docs({Class(), main}))).snapshot));
}

// ---- TLS to backends ---------------------------------------------------------------------------------

// A throwaway self-signed test CA (P-256, public certificate only).
const std::string kTestCa =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBlTCCATugAwIBAgIUeypS6GoEl2Esiu97kHbjumjaj5swCgYIKoZIzj0EAwIw\n"
    "HzEdMBsGA1UEAwwUZG9vcm1hbiB1bml0IHRlc3QgQ0EwIBcNMjYxMTI2MTY1OTMy\n"
    "WhgPMjEyNjExMDIxNjU5MzJaMB8xHTAbBgNVBAMMFGRvb3JtYW4gdW5pdCB0ZXN0\n"
    "IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEnDP5BJGRkFuXxtmwkHCxS28H\n"
    "JFtP+y35KnslhII2PHIrHWsO9Hsn2ASLk/KJkpegniXKwsCgpR+CVcony2l4EKNT\n"
    "MFEwHQYDVR0OBBYEFGbUqTr1Rww0/HfJOSeBKAwdpU+FMB8GA1UdIwQYMBaAFGbU\n"
    "qTr1Rww0/HfJOSeBKAwdpU+FMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID\n"
    "SAAwRQIhALOUCvGoSOwAqgfyiGIoRYfYf6DBoHcXOM4P+ISdX9EcAiBxAg7/nQoU\n"
    "1l3szs5YbcKXlzc5a8BOZCSU4j85K7io6g==\n"
    "-----END CERTIFICATE-----\n";

// A kubernetes.io/tls Secret "default/<name>" whose ca.crt is `ca` (as a YAML block) plus a
// tls.crt/tls.key, the way cert-manager writes them.
std::string CaSecret(const std::string& name, const std::string& ca, const std::string& type = "kubernetes.io/tls") {
  std::string block;
  std::istringstream lines(ca);
  for (std::string line; std::getline(lines, line);) block += "    " + line + "\n";
  return Secret(name, "type: " + type + "\n" + TlsStringData() + "  ca.crt: |\n" + block);
}

TEST(TranslateIngress, BackendTlsAnnotationsFillTheRoutePolicy) {
  struct Case {
    const char* name;
    std::string annotations;
    std::string ca_pem;
    std::string server_name;
  };
  const std::string https = "    doorman.dev/backend-protocol: HTTPS\n";
  for (const auto& c : std::vector<Case>{
           {"CA and name", https + "    doorman.dev/backend-tls-secret: ca\n    doorman.dev/backend-tls-server-name: backend.test\n",
            kTestCa, "backend.test"},
           {"CA only: the name is the Host", https + "    doorman.dev/backend-tls-secret: ca\n", kTestCa, ""},
           {"name only: no verification", https + "    doorman.dev/backend-tls-server-name: Backend.Test\n", "", "Backend.Test"},
           {"IPv4 name", https + "    doorman.dev/backend-tls-secret: ca\n    doorman.dev/backend-tls-server-name: 127.0.0.1\n",
            kTestCa, "127.0.0.1"},
           {"IPv6 name", https + "    doorman.dev/backend-tls-secret: ca\n    doorman.dev/backend-tls-server-name: \"::1\"\n",
            kTestCa, "::1"},
       }) {
    SCOPED_TRACE(c.name);
    Translator t;
    auto r = t.Translate(Store(Docs({Fixture(), CaSecret("ca", kTestCa), Ingress("i", Rule("a.example.com"), c.annotations)})));
    const ObjectStatus* st = Ing(r, "i");
    ASSERT_TRUE(st->accepted) << st->message;
    EXPECT_TRUE(st->warnings.empty()) << st->warnings[0].message;
    const v1::RoutePolicy& p = RouteNamed(r.snapshot, "default/ingress:i/r0-p0")->policy();
    EXPECT_EQ(p.backend_protocol(), "HTTPS");
    EXPECT_EQ(p.backend_tls().ca_pem(), c.ca_pem);
    EXPECT_EQ(p.backend_tls().server_name(), c.server_name);
  }
}

TEST(TranslateIngress, SslRedirectWithoutTlsIsWarned) {
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(), Ingress("i", Rule("a.example.com"), "    doorman.dev/ssl-redirect: \"true\"\n")})));
  const ObjectStatus* st = Ing(r, "i");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "AnnotationIgnored");
  EXPECT_EQ(st->warnings[0].field, "metadata.annotations[doorman.dev/ssl-redirect]");
  // "false", or no annotation (the default): nothing to warn about.
  Translator t2;
  auto r2 = t2.Translate(Store(Docs({Fixture(), Ingress("i", Rule("a.example.com"), "    doorman.dev/ssl-redirect: \"false\"\n")})));
  EXPECT_TRUE(Ing(r2, "i")->warnings.empty());
}

TEST(TranslateIngress, BackendTlsAnnotationsWithoutHttpsAreIgnored) {
  for (const char* protocol : {"", "    doorman.dev/backend-protocol: HTTP\n", "    doorman.dev/backend-protocol: GRPC\n"}) {
    SCOPED_TRACE(protocol);
    Translator t;
    // The Secret does not even exist: an ignored annotation is not resolved.
    auto r = t.Translate(Store(Docs({Fixture(), Ingress("i", Rule("a.example.com"),
                                                        std::string(protocol) + "    doorman.dev/backend-tls-secret: gone\n"
                                                                   "    doorman.dev/backend-tls-server-name: backend.test\n")})));
    const ObjectStatus* st = Ing(r, "i");
    ASSERT_TRUE(st->accepted) << st->message;
    std::vector<StatusWarning> w = st->warnings;
    if (std::string(protocol).find("GRPC") != std::string::npos) {  // HTTP/2 to backends: not yet
      ASSERT_FALSE(w.empty());
      EXPECT_EQ(w[0].reason, "NotImplemented");
      EXPECT_EQ(w[0].field, "metadata.annotations[doorman.dev/backend-protocol]");
      w.erase(w.begin());
    }
    ASSERT_EQ(w.size(), 2u);
    EXPECT_EQ(w[0].reason, "AnnotationIgnored");
    EXPECT_EQ(w[0].field, "metadata.annotations[doorman.dev/backend-tls-secret]");
    EXPECT_NE(w[0].message.find("needs doorman.dev/backend-protocol: HTTPS"), std::string::npos) << w[0].message;
    EXPECT_EQ(w[1].reason, "AnnotationIgnored");
    EXPECT_EQ(w[1].field, "metadata.annotations[doorman.dev/backend-tls-server-name]");
    EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:i/r0-p0")->policy().has_backend_tls());
  }
}

// Backends reached over TLS are probed over TLS, as the requests reach them: the route's CA and
// server name, else the rule's one exact host. With a CA and no single name there is nothing to
// verify: not applied to those backends, and said (a chain alone proves nothing).
TEST(TranslateIngress, AHealthCheckOnHttpsBackendsProbesOverTls) {
  struct Case {
    const char* name;
    std::string annotations;  // besides the health-check path
    std::string rule;
    bool checked;
    bool tls;
    std::string server_name;
    bool ca;
    std::string why;  // in the AnnotationIgnored warning, "" = no warning
  };
  const std::string https = "    doorman.dev/backend-protocol: HTTPS\n";
  const std::string ca = https + "    doorman.dev/backend-tls-secret: ca\n";
  const std::vector<Case> cases = {
      {"plain HTTP", "    doorman.dev/backend-protocol: HTTP\n", Rule("a.example.com"), true, false, "", false, ""},
      {"HTTPS, the rule's host as SNI", https, Rule("a.example.com"), true, true, "a.example.com", false, ""},
      {"lowercase https", "    doorman.dev/backend-protocol: https\n", Rule("a.example.com"), true, true, "a.example.com",
       false, ""},
      {"HTTPS, wildcard host: no SNI", https, Rule("*.example.com"), true, true, "", false, ""},
      {"HTTPS, any host: no SNI", https, Rule(""), true, true, "", false, ""},
      {"the server-name annotation", https + "    doorman.dev/backend-tls-server-name: backend.test\n",
       Rule("*.example.com"), true, true, "backend.test", false, ""},
      {"a CA and the rule's host", ca, Rule("a.example.com"), true, true, "a.example.com", true, ""},
      {"a CA and the server name", ca + "    doorman.dev/backend-tls-server-name: backend.test\n", Rule(""), true, true,
       "backend.test", true, ""},
      {"a CA and a wildcard host", ca, Rule("*.example.com"), false, false, "", false, "they serve a wildcard host"},
      {"a CA and any host", ca, Rule(""), false, false, "", false, "they serve any host"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Translator t;
    auto r = t.Translate(Store(Docs({Fixture(), CaSecret("ca", kTestCa),
                                     Ingress("i", c.rule, c.annotations + "    doorman.dev/health-check-path: /healthz\n")})));
    const ObjectStatus* st = Ing(r, "i");
    ASSERT_TRUE(st->accepted) << st->message;
    ASSERT_EQ(st->warnings.size(), c.why.empty() ? 0u : 1u);
    if (!c.why.empty()) {
      EXPECT_EQ(st->warnings[0].reason, "AnnotationIgnored");
      EXPECT_EQ(st->warnings[0].field, "metadata.annotations[doorman.dev/health-check-path]");
      EXPECT_NE(st->warnings[0].message.find("default/web:80 (" + c.why + ")"), std::string::npos) << st->warnings[0].message;
      EXPECT_NE(st->warnings[0].message.find("set doorman.dev/backend-tls-server-name"), std::string::npos);
    }
    const v1::BackendSet* set = SetNamed(r.snapshot, "default/ingress:i/r0-p0/0");
    ASSERT_NE(set, nullptr);
    ASSERT_EQ(set->has_health_check(), c.checked);
    if (!c.checked) continue;
    EXPECT_EQ(set->health_check().path(), "/healthz");
    EXPECT_EQ(set->health_check().has_tls(), c.tls);
    EXPECT_EQ(set->health_check().tls().server_name(), c.server_name);
    EXPECT_EQ(!set->health_check().tls().ca_pem().empty(), c.ca);
  }
}

// A canary's pods are reached with the main Ingress's protocol (its own backend-protocol is
// ignored): the main one decides how the canary's check probes (helper-98).
TEST(TranslateIngress, ACanarysHealthCheckFollowsTheMainIngresssBackendProtocol) {
  struct Case {
    const char* name;
    std::string main_annotations;
    std::string host;
    bool checked;
    bool tls;
    std::string server_name;
  };
  const std::vector<Case> cases = {
      {"plain HTTP", "    doorman.dev/backend-protocol: HTTP\n", "a.example.com", true, false, ""},
      {"HTTPS", "    doorman.dev/backend-protocol: HTTPS\n", "a.example.com", true, true, "a.example.com"},
      {"HTTPS with a CA", "    doorman.dev/backend-protocol: HTTPS\n    doorman.dev/backend-tls-secret: ca\n",
       "a.example.com", true, true, "a.example.com"},
      {"HTTPS with a CA, wildcard host", "    doorman.dev/backend-protocol: HTTPS\n    doorman.dev/backend-tls-secret: ca\n",
       "*.example.com", false, false, ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string main = Ingress("main", Rule(c.host, "/app"), c.main_annotations, "2026-01-01T00:00:00Z");
    // The canary says HTTPS itself: ignored, as every policy annotation of a canary is.
    const std::string canary = Ingress("canary", Rule(c.host, "/app", "Prefix", "web-v2"),
                                       "    doorman.dev/canary: \"true\"\n    doorman.dev/canary-weight: \"5\"\n"
                                       "    doorman.dev/backend-protocol: HTTPS\n"
                                       "    doorman.dev/health-check-path: /healthz\n",
                                       "2026-01-02T00:00:00Z");
    Translator t;
    auto r = t.Translate(Store(Docs({Fixture(), CaSecret("ca", kTestCa), main, canary})));
    ASSERT_TRUE(Ing(r, "canary")->accepted) << Ing(r, "canary")->message;
    const v1::BackendSet* set = SetNamed(r.snapshot, "default/ingress:canary/r0-p0/0");
    ASSERT_NE(set, nullptr);
    ASSERT_EQ(set->has_health_check(), c.checked);
    if (c.checked) {
      EXPECT_EQ(set->health_check().has_tls(), c.tls);
      EXPECT_EQ(set->health_check().tls().server_name(), c.server_name);
    }
    bool said = false;
    for (const auto& w : Ing(r, "canary")->warnings) {
      if (w.field == "metadata.annotations[doorman.dev/health-check-path]") {
        said = true;
        EXPECT_EQ(w.reason, "AnnotationIgnored");
        EXPECT_NE(w.message.find("(they serve a wildcard host)"), std::string::npos) << w.message;
      }
    }
    EXPECT_EQ(said, !c.checked);
  }
}

// A canary that sets no health-check-path of its own is checked as the main backends are: the
// main Ingress's check, over TLS with its server name (helper-102: it was not checked at all, and
// a canary pod failing its /healthz kept its share of the traffic).
TEST(TranslateIngress, ACanaryWithoutACheckIsCheckedAsTheMainBackends) {
  for (const bool main_checked : {true, false}) {
    SCOPED_TRACE(main_checked);
    const std::string main =
        Ingress("main", Rule("a.example.com", "/app"),
                std::string("    doorman.dev/backend-protocol: HTTPS\n") +
                    (main_checked ? "    doorman.dev/health-check-path: /healthz\n" : ""),
                "2026-01-01T00:00:00Z");
    const std::string canary = Ingress("canary", Rule("a.example.com", "/app", "Prefix", "web-v2"),
                                       "    doorman.dev/canary-weight: \"50\"\n", "2026-01-02T00:00:00Z");
    Translator t;
    auto r = t.Translate(Store(Docs({Fixture(), main, canary})));
    ASSERT_TRUE(Ing(r, "canary")->accepted) << Ing(r, "canary")->message;
    const v1::BackendSet* set = SetNamed(r.snapshot, "default/ingress:canary/r0-p0/0");
    ASSERT_NE(set, nullptr);
    ASSERT_EQ(set->has_health_check(), main_checked);
    if (!main_checked) continue;
    EXPECT_EQ(set->health_check().path(), "/healthz");
    EXPECT_EQ(set->health_check().tls().server_name(), "a.example.com");
    EXPECT_EQ(set->health_check().SerializeAsString(),
              SetNamed(r.snapshot, "default/ingress:main/r0-p0/0")->health_check().SerializeAsString());
  }
}

// A backend CA Secret that is deleted or broken after the Ingress was accepted: not accepted
// (InvalidAnnotation), and its last good routing stays, verifying with the CA it was accepted
// with (helper-102: the routes went away and requests fell through to a catch-all). Fixed: the
// current Secret again.
TEST(TranslateIngress, ALostBackendCaSecretKeepsTheLastGoodRouting) {
  const std::string ing = Ingress("i", Rule("a.example.com"),
                                  "    doorman.dev/backend-protocol: HTTPS\n    doorman.dev/backend-tls-secret: ca\n"
                                  "    doorman.dev/backend-tls-server-name: backend.test\n");
  for (const std::string& broken : {std::string(), CaSecret("ca", "not a certificate\n")}) {
    SCOPED_TRACE(broken.empty() ? "deleted" : "broken");
    Translator t;
    auto r1 = t.Translate(Store(Docs({Fixture(), CaSecret("ca", kTestCa), ing})));
    ASSERT_TRUE(Ing(r1, "i")->accepted) << Ing(r1, "i")->message;
    const std::string ca = RouteNamed(r1.snapshot, "default/ingress:i/r0-p0")->policy().backend_tls().ca_pem();
    ASSERT_FALSE(ca.empty());
    auto r2 = t.Translate(Store(broken.empty() ? Docs({Fixture(), ing}) : Docs({Fixture(), ing, broken})));
    const ObjectStatus* st = Ing(r2, "i");
    EXPECT_FALSE(st->accepted);
    EXPECT_EQ(st->reason, "InvalidAnnotation");
    EXPECT_TRUE(st->serving_last_good);
    const v1::Route* route = RouteNamed(r2.snapshot, "default/ingress:i/r0-p0");
    ASSERT_NE(route, nullptr);
    EXPECT_EQ(route->policy().backend_tls().ca_pem(), ca);
    // A new CA Secret (another name's content would do): accepted, with it.
    auto r3 = t.Translate(Store(Docs({Fixture(), CaSecret("ca", kTestCa), ing})));
    EXPECT_TRUE(Ing(r3, "i")->accepted);
    EXPECT_FALSE(Ing(r3, "i")->serving_last_good);
  }
}

// Fail closed: a CA that cannot be used never becomes unverified TLS; the Ingress is not routed
// (others are), and no message carries key or certificate bytes.
TEST(TranslateIngress, AnUnusableBackendCaMakesTheIngressInvalid) {
  struct Case {
    const char* name;
    std::string secret;  // a Secret "default/ca", or "" for none
    std::string message;
  };
  std::string truncated = kTestCa;
  truncated.erase(truncated.find("1l3szs"), 10);  // still "PEM-looking", no longer one DER certificate
  const std::vector<Case> cases = {
      {"missing Secret", "", "annotation doorman.dev/backend-tls-secret: Secret default/ca not found"},
      {"no ca.crt", Secret("ca"), "Secret default/ca has no ca.crt"},
      {"not PEM", CaSecret("ca", "not a certificate\n"), "Secret default/ca: ca.crt is not a PEM certificate bundle"},
      {"a private key as ca.crt", CaSecret("ca", "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n"),
       "ca.crt is not a PEM certificate bundle"},
      {"PEM armour around garbage", CaSecret("ca", "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"),
       "ca.crt is not a PEM certificate bundle"},
      {"a truncated certificate", CaSecret("ca", truncated), "ca.crt is not a PEM certificate bundle"},
      {"an unterminated block", CaSecret("ca", kTestCa.substr(0, kTestCa.find("-----END"))),
       "ca.crt is not a PEM certificate bundle"},
      {"bad base64 in data", Secret("ca", "type: kubernetes.io/tls\ndata: {ca.crt: \"!!!\"}\n"),
       "Secret default/ca: data.ca.crt is not valid base64"},
      {"an Opaque Secret (never watched in a cluster)", CaSecret("ca", kTestCa, "Opaque"),
       "Secret default/ca has type \"Opaque\", want kubernetes.io/tls"},
  };
  const std::string good = Ingress("good", Rule("good.example.com"));
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Translator t;
    auto r = t.Translate(Store(Docs({Fixture(), good,
                                     Ingress("bad", Rule("bad.example.com"),
                                             "    doorman.dev/backend-protocol: HTTPS\n    doorman.dev/backend-tls-secret: ca\n")}) +
                               (c.secret.empty() ? "" : "---\n" + c.secret)));
    const ObjectStatus* st = Ing(r, "bad");
    ASSERT_NE(st, nullptr);
    EXPECT_FALSE(st->accepted);
    EXPECT_EQ(st->reason, "InvalidAnnotation");
    EXPECT_EQ(st->field, "metadata.annotations[doorman.dev/backend-tls-secret]");
    EXPECT_NE(st->message.find(c.message), std::string::npos) << st->message;
    for (const char* leak : {"BEGIN", kTestKeyBytes, "MII", "garbage"}) {
      EXPECT_EQ(st->message.find(leak), std::string::npos) << st->message;
    }
    EXPECT_TRUE(Ing(r, "good")->accepted);
    EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:bad/r0-p0"), nullptr);
    EXPECT_NE(RouteNamed(r.snapshot, "default/ingress:good/r0-p0"), nullptr);
  }
}

TEST(TranslateIngress, InvalidBackendTlsServerNames) {
  for (const char* name : {"\"\"", "\"a b\"", "a/b", "backend.test:8443", "\"[::1]\"", "a..b", "-a.b", "\"*.example.com\"",
                           "\"1:2:3\""}) {
    SCOPED_TRACE(name);
    Translator t;
    auto r = t.Translate(Store(Docs({Fixture(), Ingress("i", Rule("a.example.com"),
                                                        std::string("    doorman.dev/backend-protocol: HTTPS\n"
                                                                    "    doorman.dev/backend-tls-server-name: ") +
                                                            name + "\n")})));
    const ObjectStatus* st = Ing(r, "i");
    EXPECT_FALSE(st->accepted);
    EXPECT_EQ(st->reason, "InvalidAnnotation");
    EXPECT_EQ(st->field, "metadata.annotations[doorman.dev/backend-tls-server-name]");
    EXPECT_NE(st->message.find("(want a DNS name or an IP address)"), std::string::npos) << st->message;
  }
}

TEST(TranslateIngress, InvalidBackendTlsSecretNames) {
  for (const char* name : {"\"\"", "Shop_CA", "a/b"}) {
    SCOPED_TRACE(name);
    Translator t;
    auto r = t.Translate(Store(Docs({Fixture(), Ingress("i", Rule("a.example.com"),
                                                        std::string("    doorman.dev/backend-protocol: HTTPS\n"
                                                                    "    doorman.dev/backend-tls-secret: ") +
                                                            name + "\n")})));
    const ObjectStatus* st = Ing(r, "i");
    EXPECT_FALSE(st->accepted);
    EXPECT_EQ(st->field, "metadata.annotations[doorman.dev/backend-tls-secret]");
    EXPECT_NE(st->message.find("is not a valid Secret name"), std::string::npos) << st->message;
  }
}

TEST(TranslateIngress, ABackendCaOnACanaryIsIgnoredNotResolved) {
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(), Ingress("main", Rule("a.example.com")),
                                   Ingress("canary", Rule("a.example.com"),
                                           "    doorman.dev/canary: \"true\"\n    doorman.dev/canary-weight: \"10\"\n"
                                           "    doorman.dev/backend-protocol: HTTPS\n    doorman.dev/backend-tls-secret: gone\n")})));
  const ObjectStatus* canary = Ing(r, "canary");
  ASSERT_TRUE(canary->accepted) << canary->message;
  ASSERT_EQ(canary->warnings.size(), 2u);
  EXPECT_EQ(canary->warnings[0].field, "metadata.annotations[doorman.dev/backend-protocol]");
  EXPECT_EQ(canary->warnings[1].field, "metadata.annotations[doorman.dev/backend-tls-secret]");
  EXPECT_EQ(canary->warnings[1].reason, "AnnotationIgnored");
}

// ---- sharing the listeners -------------------------------------------------------------------------------

// A Service, an Ingress and a LoadBalancer may share a name: their route and backend-set names
// carry the kind, so the snapshot never names two things alike. (They did not: a dataplane
// refuses such a snapshot whole, which stopped every object's updates on every dataplane.)
TEST(TranslateIngress, ObjectsOfOneNameAndDifferentKindsGenerateDistinctNames) {
  const std::string lb = R"(apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {name: shop, namespace: default}
spec:
  listeners: [{name: h, port: 8081, protocol: HTTP}, {name: pg, port: 5433, protocol: TCP}]
  routes:
    - {name: r0-p0, listener: h, backends: [{endpoints: [{address: 127.0.0.1, port: 9001}]}]}
    - {name: "5432", listener: pg, backends: [{endpoints: [{address: 127.0.0.1, port: 9002}]}]}
)";
  const std::string svc = R"(apiVersion: v1
kind: Service
metadata: {name: shop, namespace: default}
spec: {type: LoadBalancer, loadBalancerClass: doorman.dev/lb, ports: [{port: 5432}]}
)";
  Translator t;
  auto r = t.Translate(Store(Fixture() + "---\n" + Ingress("shop", Rule("")) + "---\n" + lb + "---\n" + svc));
  for (const char* kind : {"Ingress", "LoadBalancer", "Service"}) {
    const ObjectStatus* st = StatusOf(r, kind, "shop");
    ASSERT_NE(st, nullptr) << kind;
    EXPECT_TRUE(st->accepted) << kind << ": " << st->message;
  }
  for (const char* route : {"default/ingress:shop/r0-p0", "default/shop/r0-p0", "default/service:shop/5432", "default/shop/5432"}) {
    EXPECT_NE(RouteNamed(r.snapshot, route), nullptr) << route;
    EXPECT_NE(SetNamed(r.snapshot, std::string(route) + "/0"), nullptr) << route;
  }
  std::set<std::string> names;
  for (const auto& route : r.snapshot.routes()) EXPECT_TRUE(names.insert(route.name()).second) << route.name();
  for (const auto& set : r.snapshot.backend_sets()) EXPECT_TRUE(names.insert(set.name()).second) << set.name();
}

// One host split over several Ingresses, TLS on one of them: as in ingress-nginx (one server per
// host), the others' paths for that host are served over HTTPS too, with that certificate, and
// their HTTP routes redirect unless their ssl-redirect says "false". A host no tls[] covers, or a
// wildcard's second label, stays plain HTTP.
TEST(TranslateIngress, TlsAppliesPerHostAcrossIngresses) {
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(), Secret("s"),
                                   Ingress("main", "  tls: [{hosts: [a.example.com], secretName: s}]\n" + Rule("a.example.com"),
                                           "", "2026-01-01T00:00:00Z"),
                                   Ingress("split", Rule("a.example.com", "/b"), "", "2026-02-01T00:00:00Z"),
                                   Ingress("noredir", Rule("a.example.com", "/c"),
                                           "    doorman.dev/ssl-redirect: \"false\"\n"
                                           "    doorman.dev/hsts: \"max-age=60\"\n"),
                                   Ingress("other", Rule("b.example.org", "/b")),
                                   // The test certificate covers *.example.com.
                                   Ingress("wild", "  tls: [{hosts: [\"*.example.com\"], secretName: s}]\n" +
                                                       Rule("*.example.com")),
                                   Ingress("sub", Rule("x.example.com", "/x")),
                                   Ingress("deeper", Rule("y.x.example.com", "/y"))})));
  for (const char* name : {"main", "split", "noredir", "other", "wild", "sub", "deeper"}) {
    ASSERT_TRUE(Ing(r, name)->accepted) << name << ": " << Ing(r, name)->message;
    EXPECT_TRUE(Ing(r, name)->warnings.empty()) << name << ": " << Ing(r, name)->warnings[0].message;
  }
  // split: its /b on HTTPS, with the backends; on HTTP a 308 to https.
  const v1::Route* https = RouteNamed(r.snapshot, "default/ingress:split/r0-p0-https");
  ASSERT_NE(https, nullptr);
  EXPECT_EQ(https->listener(), "https-443");
  EXPECT_EQ(https->backends_size(), 1);
  EXPECT_FALSE(https->filters().redirect().enabled());
  const v1::Route* http = RouteNamed(r.snapshot, "default/ingress:split/r0-p0");
  ASSERT_NE(http, nullptr);
  EXPECT_TRUE(http->filters().redirect().enabled());
  EXPECT_EQ(http->filters().redirect().status_code(), 308u);
  // noredir: HTTPS too (with its HSTS), no redirect.
  const v1::Route* noredir = RouteNamed(r.snapshot, "default/ingress:noredir/r0-p0-https");
  ASSERT_NE(noredir, nullptr);
  EXPECT_EQ(noredir->filters().response_headers().set().at("strict-transport-security"), "max-age=60");
  EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:noredir/r0-p0")->filters().redirect().enabled());
  EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:noredir/r0-p0")->backends_size(), 1);
  // sub: covered by *.example.com; deeper and other are not.
  EXPECT_NE(RouteNamed(r.snapshot, "default/ingress:sub/r0-p0-https"), nullptr);
  EXPECT_TRUE(RouteNamed(r.snapshot, "default/ingress:sub/r0-p0")->filters().redirect().enabled());
  for (const char* name : {"deeper", "other"}) {
    EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:" + std::string(name) + "/r0-p0-https"), nullptr) << name;
    EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:" + std::string(name) + "/r0-p0")->filters().redirect().enabled());
  }
  // One HTTPS listener, with the two certificates; the shared routes are on it, ranked with
  // main's (the longer prefix first).
  const v1::Listener* l = ListenerNamed(r.snapshot, "https-443");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->tls().certificates_size(), 1);  // both Ingresses name default/s
  // No --ingress-default-certificate: a ClientHello without a known SNI gets no tenant's certificate.
  EXPECT_TRUE(l->tls().default_self_signed());
  std::vector<std::string> routes(l->routes().begin(), l->routes().end());
  const auto at = [&](const std::string& n) { return std::find(routes.begin(), routes.end(), n) - routes.begin(); };
  EXPECT_LT(at("default/ingress:split/r0-p0-https"), at("default/ingress:main/r0-p0-https"));
  EXPECT_LT(at("default/ingress:noredir/r0-p0-https"), at("default/ingress:main/r0-p0-https"));
  EXPECT_LT(at("default/ingress:main/r0-p0-https"), static_cast<long>(routes.size()));

  // Without main, split is plain HTTP again.
  Translator alone;
  auto r2 = alone.Translate(Store(Docs({Fixture(), Secret("s"), Ingress("split", Rule("a.example.com", "/b"))})));
  EXPECT_EQ(RouteNamed(r2.snapshot, "default/ingress:split/r0-p0-https"), nullptr);
  EXPECT_EQ(ListenerNamed(r2.snapshot, "https-443"), nullptr);
  EXPECT_FALSE(RouteNamed(r2.snapshot, "default/ingress:split/r0-p0")->filters().redirect().enabled());
}

// TLS is shared within a namespace only, and only from an Ingress that routes the host: a tls[]
// entry alone claims nothing, and another namespace's Ingress keeps its plain HTTP (with a
// HostPartlyTls warning), so one tenant cannot turn another's HTTP into redirects to a
// certificate it chose.
TEST(TranslateIngress, TlsIsNotSharedAcrossNamespacesNorFromAHostNotRouted) {
  // Another namespace's Ingress routes the host only with --allow-cross-namespace-hosts; by
  // default its route loses the host (HostConflict, below).
  TranslateOptions shared_hosts;
  shared_hosts.allow_cross_namespace_hosts = true;
  Translator t(shared_hosts);
  auto r = t.Translate(Store(Docs({Fixture(), Secret("s"),
                                   // Routes a.example.com with its certificate, in default.
                                   Ingress("main", "  tls: [{hosts: [a.example.com], secretName: s}]\n" + Rule("a.example.com"),
                                           "", "2026-01-01T00:00:00Z"),
                                   InNamespace(Ingress("tenant", Rule("a.example.com", "/t"), "", "2026-02-01T00:00:00Z"), "other"),
                                   // Names b.example.com in tls[] without routing it.
                                   Ingress("squat", "  tls: [{hosts: [b.example.com], secretName: s}]\n" + Rule("c.example.com"),
                                           "", "2026-01-01T00:00:00Z"),
                                   Ingress("bank", Rule("b.example.com"), "", "2026-03-01T00:00:00Z")})));
  const v1::Route* tenant = RouteNamed(r.snapshot, "other/ingress:tenant/r0-p0");
  ASSERT_NE(tenant, nullptr);
  EXPECT_FALSE(tenant->filters().redirect().enabled());
  EXPECT_EQ(RouteNamed(r.snapshot, "other/ingress:tenant/r0-p0-https"), nullptr);
  bool warned = false;
  for (const auto& w : Ing(r, "tenant")->warnings) {
    warned = warned || (w.reason == "HostPartlyTls" && w.message.find("Ingress default/main") != std::string::npos);
  }
  EXPECT_TRUE(warned);
  EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:bank/r0-p0")->filters().redirect().enabled());
  EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:bank/r0-p0-https"), nullptr);
  EXPECT_TRUE(Ing(r, "bank")->warnings.empty()) << Ing(r, "bank")->warnings[0].message;
  Translator by_default;
  r = by_default.Translate(Store(Docs({Fixture(), Secret("s"),
                                       Ingress("main", "  tls: [{hosts: [a.example.com], secretName: s}]\n" + Rule("a.example.com"),
                                               "", "2026-01-01T00:00:00Z"),
                                       InNamespace(Ingress("tenant", Rule("a.example.com", "/t"), "", "2026-02-01T00:00:00Z"),
                                                   "other")})));
  EXPECT_EQ(RouteNamed(r.snapshot, "other/ingress:tenant/r0-p0"), nullptr);
  const auto& w = Ing(r, "tenant")->warnings;  // and BackendNotFound: no Service web in "other"
  const auto conflict = std::find_if(w.begin(), w.end(), [](const StatusWarning& x) { return x.reason == "HostConflict"; });
  ASSERT_NE(conflict, w.end());
  EXPECT_EQ(conflict->field, "spec.rules");
  EXPECT_NE(conflict->message.find("host a.example.com (Ingress default/main)"), std::string::npos) << conflict->message;
  EXPECT_EQ(std::count_if(w.begin(), w.end(), [](const StatusWarning& x) { return x.reason == "HostPartlyTls"; }), 0);
}

// A tls[] host the certificate is not valid for (no matching DNS SAN) is said so and is not
// covered: no ssl-redirect to a certificate every client refuses, nothing shared for it. The
// hosts it is valid for keep both.
TEST(TranslateIngress, ATlsHostTheCertificateDoesNotCoverIsWarnedAndNotRedirected) {
  Translator t;
  auto r = t.Translate(Store(Docs(
      {Fixture(), Secret("s"),
       Ingress("main",
               "  tls: [{hosts: [a.example.com, nr.example.org, \"*.w.example.com\"], secretName: s}]\n" +
                   Rule("a.example.com") + "    - host: nr.example.org\n      http:\n        paths:\n"
                   "          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n",
               "", "2026-01-01T00:00:00Z"),
       Ingress("split", Rule("nr.example.org", "/b"), "", "2026-02-01T00:00:00Z")})));
  const ObjectStatus* st = Ing(r, "main");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 2u);
  EXPECT_EQ(st->warnings[0].reason, "CertificateMismatch");
  EXPECT_EQ(st->warnings[0].field, "spec.tls[0].hosts[1]");
  EXPECT_NE(st->warnings[0].message.find("not valid for \"nr.example.org\""), std::string::npos) << st->warnings[0].message;
  EXPECT_EQ(st->warnings[1].field, "spec.tls[0].hosts[2]");  // *.example.com does not cover *.w.example.com
  EXPECT_TRUE(RouteNamed(r.snapshot, "default/ingress:main/r0-p0")->filters().redirect().enabled());
  EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:main/r1-p0")->filters().redirect().enabled());
  EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:split/r0-p0")->filters().redirect().enabled());
  EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:split/r0-p0-https"), nullptr);
}

// The same host and path in two Ingresses (here two namespaces): the older takes every request,
// and the younger is told its route is never used (ingress-nginx's webhook refuses it).
TEST(TranslateIngress, ADuplicateHostAndPathIsWarnedOnTheYoungerIngress) {
  TranslateOptions shared_hosts;  // else the other namespace's route loses the host (HostConflict)
  shared_hosts.allow_cross_namespace_hosts = true;
  Translator t(shared_hosts);
  auto r = t.Translate(Store(Docs({Fixture(), Ingress("first", Rule("a.example.com", "/x"), "", "2026-01-01T00:00:00Z"),
                                   InNamespace(Ingress("second", Rule("a.example.com", "/x"), "", "2026-02-01T00:00:00Z"), "other"),
                                   Ingress("third", Rule("a.example.com", "/y"), "", "2026-03-01T00:00:00Z")})));
  EXPECT_TRUE(Ing(r, "first")->warnings.empty());
  EXPECT_TRUE(Ing(r, "third")->warnings.empty());
  const ObjectStatus* second = StatusOf(r, "Ingress", "second");
  ASSERT_NE(second, nullptr);
  bool shadowed = false;
  for (const auto& w : second->warnings) {
    if (w.reason != "RouteShadowed") continue;
    shadowed = true;
    EXPECT_EQ(w.field, "spec.rules");
    EXPECT_NE(w.message.find("\"default/ingress:first/r0-p0\" of Ingress default/first"), std::string::npos) << w.message;
  }
  EXPECT_TRUE(shadowed);
}

// Two catch-alls (Ingresses with only a defaultBackend): the younger's is the shadowed one, and
// the warning names its defaultBackend, not spec.rules it does not have (helper-115).
TEST(TranslateIngress, AShadowedCatchAllIsWarnedOnItsDefaultBackend) {
  const std::string backend = "  defaultBackend: {service: {name: web, port: {number: 80}}}\n";
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(), Ingress("d3", backend, "", "2026-01-01T00:00:00Z"),
                                   Ingress("d4", backend, "", "2026-02-01T00:00:00Z")})));
  EXPECT_TRUE(Ing(r, "d3")->warnings.empty());
  const auto& w = Ing(r, "d4")->warnings;
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].reason, "RouteShadowed");
  EXPECT_EQ(w[0].field, "spec.defaultBackend");
}

// When the HTTPS port is taken by an older LoadBalancer's TCP listener, an Ingress loses its HTTPS
// listener (PortConflict) and its HTTP routes serve as declared instead of redirecting to a port
// it does not serve: its own TLS hosts and the ones shared with it alike.
TEST(TranslateIngress, AnIngressWithoutItsHttpsPortServesHttpInsteadOfRedirecting) {
  const std::string lb =
      "apiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: lb, namespace: default, "
      "creationTimestamp: \"2025-01-01T00:00:00Z\"}\nspec:\n  listeners: [{name: t, port: 443, protocol: TCP}]\n"
      "  routes: [{name: t, listener: t, backends: [{endpoints: [{address: 10.0.0.1, port: 443}]}]}]\n";
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(), Secret("s"), lb,
                                   Ingress("main", "  tls: [{hosts: [a.example.com], secretName: s}]\n" + Rule("a.example.com"),
                                           "", "2026-01-01T00:00:00Z"),
                                   Ingress("split", Rule("a.example.com", "/b"), "", "2026-02-01T00:00:00Z")})));
  for (const char* name : {"main", "split"}) {
    SCOPED_TRACE(name);
    const ObjectStatus* st = Ing(r, name);
    ASSERT_TRUE(st->accepted) << st->message;
    ASSERT_FALSE(st->warnings.empty());
    EXPECT_EQ(st->warnings[0].reason, "PortConflict");
    EXPECT_EQ(st->warnings[0].field, std::string(name) == "main" ? "spec.tls" : "spec.rules");
    const v1::Route* http = RouteNamed(r.snapshot, "default/ingress:" + std::string(name) + "/r0-p0");
    ASSERT_NE(http, nullptr);
    EXPECT_FALSE(http->filters().redirect().enabled());
    EXPECT_EQ(http->backends_size(), 1);
    EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:" + std::string(name) + "/r0-p0-https"), nullptr);
  }
  // Nor do the unmatched paths of a TLS host redirect (a path other than "/": a fallback would be
  // generated, and goes with the HTTPS listener).
  Translator t2;
  auto r2 = t2.Translate(Store(Docs({Fixture(), Secret("s"), lb,
                                     Ingress("main", "  tls: [{hosts: [a.example.com], secretName: s}]\n" +
                                                         Rule("a.example.com", "/app"), "", "2026-01-01T00:00:00Z")})));
  ASSERT_TRUE(Ing(r2, "main")->accepted) << Ing(r2, "main")->message;
  EXPECT_EQ(ListenerRoutes(r2.snapshot, "http-80"), std::vector<std::string>{"default/ingress:main/r0-p0"});
}

// request-timeout 0s is not "no timeout": said, and the default applies (the object still routes).
TEST(TranslateIngress, ARequestTimeoutOfZeroIsWarned) {
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(), Ingress("i", Rule("a.example.com"), "    doorman.dev/request-timeout: 0s\n")})));
  ASSERT_TRUE(Ing(r, "i")->accepted);
  ASSERT_EQ(Ing(r, "i")->warnings.size(), 1u);
  EXPECT_EQ(Ing(r, "i")->warnings[0].reason, "AnnotationIgnored");
  EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:i/r0-p0")->policy().timeouts().request_ms(), 0u);  // = the default
}

// doorman.dev/hsts: Strict-Transport-Security on the HTTPS routes' responses only; without a
// certificate it has no effect, and says so.
TEST(TranslateIngress, HstsIsSentOnHttpsResponses) {
  Translator t;
  const std::string hsts = "    doorman.dev/hsts: \"max-age=31536000; includeSubDomains\"\n";
  auto r = t.Translate(Store(Docs({Fixture(), Secret("s"),
                                   Ingress("i", "  tls: [{hosts: [a.example.com], secretName: s}]\n" + Rule("a.example.com"), hsts),
                                   Ingress("plain", Rule("b.example.com"), hsts)})));
  ASSERT_TRUE(Ing(r, "i")->accepted) << Ing(r, "i")->message;
  EXPECT_TRUE(Ing(r, "i")->warnings.empty());
  const auto& set = RouteNamed(r.snapshot, "default/ingress:i/r0-p0-https")->filters().response_headers().set();
  ASSERT_EQ(set.count("strict-transport-security"), 1u);
  EXPECT_EQ(set.at("strict-transport-security"), "max-age=31536000; includeSubDomains");
  EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:i/r0-p0")->filters().has_response_headers());  // the 308
  ASSERT_EQ(Ing(r, "plain")->warnings.size(), 1u);
  EXPECT_EQ(Ing(r, "plain")->warnings[0].reason, "AnnotationIgnored");
  EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:plain/r0-p0")->filters().has_response_headers());
  // RFC 6797 §6.1.1 allows max-age as a quoted-string; sent as written.
  Translator q;
  auto rq = q.Translate(Store(Docs({Fixture(), Secret("s"),
                                    Ingress("i", "  tls: [{hosts: [a.example.com], secretName: s}]\n" + Rule("a.example.com"),
                                            "    doorman.dev/hsts: 'max-age=\"100\"'\n")})));
  ASSERT_TRUE(Ing(rq, "i")->accepted) << Ing(rq, "i")->message;
  EXPECT_EQ(RouteNamed(rq.snapshot, "default/ingress:i/r0-p0-https")->filters().response_headers().set().at(
                "strict-transport-security"),
            "max-age=\"100\"");
}

// A TLS host's paths that none of the Ingress's paths match are redirected to HTTPS too
// (ingress-nginx redirects the whole server), not served over HTTP by the host-less catch-all;
// the fallback ranks after any route declared for the host, whoever declared it, and is never
// reported as shadowed. On HTTPS nothing is added: an unmatched path is a 404 there.
TEST(TranslateIngress, UnmatchedPathsOfATlsHostAreRedirectedNotCaughtByTheCatchAll) {
  const std::string tls = "  tls: [{hosts: [a.example.com, \"*.example.com\"], secretName: s}]\n";
  const std::string rules = R"(  rules:
    - host: a.example.com
      http: {paths: [{path: /app, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
    - host: "*.example.com"
      http: {paths: [{path: /app, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
)";
  const std::string catch_all = Ingress("catch", "  defaultBackend: {service: {name: web-v2, port: {number: 80}}}\n", "",
                                        "2020-01-01T00:00:00Z");
  // Another Ingress (older, other namespace: no TLS shared) serves a.example.com's host-only
  // default over plain HTTP: declared, so it wins over the fallback with the same match.
  std::string other = Ingress("other", "  defaultBackend: {service: {name: web, port: {number: 80}}}\n" + Rule("a.example.com", "/x"),
                              "", "2020-01-01T00:00:00Z");
  other.replace(other.find("namespace: default"), 18, "namespace: other");
  const std::string other_svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: other}\nspec: {ports: [{port: 80}]}\n";
  {
    Translator t;
    auto r = t.Translate(Store(Docs({Fixture(), Secret("s"), catch_all, Ingress("i", tls + rules)})));
    ASSERT_TRUE(Ing(r, "i")->accepted) << Ing(r, "i")->message;
    EXPECT_TRUE(Ing(r, "i")->warnings.empty()) << Ing(r, "i")->warnings[0].message;
    EXPECT_EQ(ListenerRoutes(r.snapshot, "http-80"),
              (std::vector<std::string>{"default/ingress:i/r0-p0", "default/ingress:i/https-redirect-h0",
                                        "default/ingress:i/r1-p0", "default/ingress:i/https-redirect-h1",
                                        "default/ingress:catch/default"}));
    EXPECT_EQ(ListenerRoutes(r.snapshot, "https-443"),
              (std::vector<std::string>{"default/ingress:i/r0-p0-https", "default/ingress:i/r1-p0-https"}));
    const v1::Route* fb = RouteNamed(r.snapshot, "default/ingress:i/https-redirect-h1");
    EXPECT_EQ(fb->match().hosts(0), "*.example.com");
    EXPECT_TRUE(fb->match().wildcard_one_label());
    EXPECT_FALSE(fb->match().has_path());
    EXPECT_EQ(fb->filters().redirect().scheme(), "https");
    EXPECT_EQ(fb->filters().redirect().status_code(), 308u);
    EXPECT_EQ(fb->backends_size(), 0);
    const auto& ls = Ing(r, "i")->listeners;
    ASSERT_FALSE(ls.empty());
    EXPECT_EQ(ls[0].attached_routes, 2u) << "the fallbacks are not declared routes";
  }
  {
    Translator t;
    auto r = t.Translate(Store(Docs({Fixture(), Secret("s"), other_svc, other, Ingress("i", tls + rules)})));
    ASSERT_TRUE(Ing(r, "i")->accepted) << Ing(r, "i")->message;
    EXPECT_TRUE(Ing(r, "other")->accepted) << Ing(r, "other")->message;
    const auto routes = ListenerRoutes(r.snapshot, "http-80");
    const auto at = [&](const std::string& n) { return std::find(routes.begin(), routes.end(), n) - routes.begin(); };
    EXPECT_LT(at("other/ingress:other/default-h0"), at("default/ingress:i/https-redirect-h0"));
    EXPECT_LT(at("other/ingress:other/r0-p0"), at("default/ingress:i/https-redirect-h0"));
    for (const char* name : {"i", "other"}) {
      for (const auto& w : Ing(r, name)->warnings) EXPECT_NE(w.reason, "RouteShadowed") << name << ": " << w.message;
    }
  }
  // Behind a trusted balancer too (an untrusted client would otherwise reach the catch-all over
  // plain HTTP): the redirect skips itself for the balancer's X-Forwarded-Proto: https, which the
  // route trusts only from those proxies.
  {
    TranslateOptions opts;
    opts.ingress_trusted_proxies = {"192.0.2.1/32"};
    Translator t(opts);
    auto r = t.Translate(Store(Docs({Fixture(), Secret("s"), catch_all, Ingress("i", tls + rules)})));
    ASSERT_TRUE(Ing(r, "i")->accepted) << Ing(r, "i")->message;
    EXPECT_EQ(ListenerRoutes(r.snapshot, "http-80"),
              (std::vector<std::string>{"default/ingress:i/r0-p0", "default/ingress:i/https-redirect-h0",
                                        "default/ingress:i/r1-p0", "default/ingress:i/https-redirect-h1",
                                        "default/ingress:catch/default"}));
    const v1::Route* fb = RouteNamed(r.snapshot, "default/ingress:i/https-redirect-h0");
    EXPECT_TRUE(fb->filters().redirect().enabled());
    EXPECT_TRUE(fb->filters().redirect().unless_forwarded_https());
    EXPECT_EQ(fb->backends_size(), 0);
    ASSERT_EQ(fb->forwarded_headers().trusted_proxies_size(), 1);
    EXPECT_EQ(fb->forwarded_headers().trusted_proxies(0), "192.0.2.1/32");
  }
  // ssl-redirect "false", or a Prefix "/" path of its own for the host: no fallback.
  for (const auto& [annotations, spec] :
       {std::pair{std::string("    doorman.dev/ssl-redirect: \"false\"\n"), tls + rules},
        std::pair{std::string(), "  tls: [{hosts: [a.example.com], secretName: s}]\n" + Rule("a.example.com")}}) {
    Translator t;
    auto r = t.Translate(Store(Docs({Fixture(), Secret("s"), Ingress("i", spec, annotations)})));
    ASSERT_TRUE(Ing(r, "i")->accepted) << Ing(r, "i")->message;
    for (const auto& route : r.snapshot.routes()) EXPECT_EQ(route.name().find("https-redirect"), std::string::npos) << route.name();
  }
}

// --manifests mode: a misspelt Ingress field is refused with the nearest known name ("tsl" would
// otherwise serve the host over plain HTTP only, silently).
TEST(TranslateIngress, UnknownFieldsAreRefusedInManifestsMode) {
  TranslateOptions strict;
  strict.check_known_fields = true;
  const std::string rules = Rule("a.example.com");
  for (const auto& [spec, field, message] :
       {std::tuple{"  tsl: [{hosts: [a.example.com], secretName: s}]\n" + rules, "spec.tsl", "did you mean \"tls\""},
        std::tuple{"  tls: [{hosts: [a.example.com], secret: s}]\n" + rules, "spec.tls[0].secret", "did you mean \"secretName\""},
        std::tuple{std::string("  defaultBackend: {service: {name: web, port: {numbr: 80}}}\n"), "spec.defaultBackend.service.port.numbr",
                   "did you mean \"number\""},
        std::tuple{std::string("  defaultBackend: {serviceName: web, servicePort: 80}\n"), "spec.defaultBackend.serviceName",
                   "that is networking.k8s.io/v1beta1"},
        std::tuple{std::string("  rules:\n    - host: a.example.com\n      http: {paths: [{path: /, pathTyp: Prefix, "
                               "backend: {service: {name: web, port: {number: 80}}}}]}\n"),
                   "spec.rules[0].http.paths[0].pathTyp", "did you mean \"pathType\""}}) {
    SCOPED_TRACE(field);
    Translator t(strict);
    auto r = t.Translate(Store(Docs({Fixture(), Secret("s"), Ingress("i", spec)})));
    ASSERT_NE(Ing(r, "i"), nullptr);
    EXPECT_FALSE(Ing(r, "i")->accepted);
    EXPECT_EQ(Ing(r, "i")->field, field) << Ing(r, "i")->message;
    EXPECT_NE(Ing(r, "i")->message.find(message), std::string::npos) << Ing(r, "i")->message;
  }
  Translator t(strict);
  auto r = t.Translate(Store(Docs({Fixture(), Secret("s"),
                                   Ingress("i", "  tls: [{hosts: [a.example.com], secretName: s}]\n"
                                                "  defaultBackend: {service: {name: web, port: {name: http}}}\n" + rules,
                                           "    doorman.dev/hsts: max-age=60\n")})));
  EXPECT_TRUE(Ing(r, "i")->accepted) << Ing(r, "i")->message;
}

// The affinity cookie's Path is each path's own (ingress-nginx's session-cookie-path default), so
// "/api" and "/" of one host, to different Services, keep a cookie each; the annotation sets one
// Path for all; a regular expression or the default backend gets "/".
TEST(TranslateIngress, AffinityCookiePathIsThePathsOwnUnlessAnnotated) {
  const std::string paths = R"(  defaultBackend: {service: {name: web, port: {number: 80}}}
  rules:
    - host: a.example.com
      http:
        paths:
          - {path: /api/, pathType: Prefix, backend: {service: {name: web-v2, port: {number: 80}}}}
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
          - {path: /login, pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}
          - {path: "/v[0-9]+/x", pathType: ImplementationSpecific, backend: {service: {name: web-v3, port: {number: 80}}}}
)";
  const std::string affinity = "    doorman.dev/affinity: cookie\n";
  {
    Translator t;
    auto r = t.Translate(Store(Docs({Fixture(), Ingress("i", paths, affinity)})));
    ASSERT_TRUE(Ing(r, "i")->accepted) << Ing(r, "i")->message;
    for (const auto& [route, path] : {std::pair{"default/ingress:i/r0-p0", "/api"}, std::pair{"default/ingress:i/r0-p1", "/"},
                                      std::pair{"default/ingress:i/r0-p2", "/login"},
                                      std::pair{"default/ingress:i/r0-p3", "/"},
                                      std::pair{"default/ingress:i/default-h0", "/"}}) {
      const v1::Route* rt = RouteNamed(r.snapshot, route);
      ASSERT_NE(rt, nullptr) << route;
      EXPECT_EQ(rt->policy().stickiness().type(), v1::Stickiness::COOKIE) << route;
      EXPECT_EQ(rt->policy().stickiness().cookie_path(), path) << route;
    }
  }
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(), Ingress("i", paths, affinity + "    doorman.dev/affinity-cookie-path: /\n")})));
  ASSERT_TRUE(Ing(r, "i")->accepted) << Ing(r, "i")->message;
  EXPECT_TRUE(Ing(r, "i")->warnings.empty());
  EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:i/r0-p0")->policy().stickiness().cookie_path(), "/");
  EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:i/r0-p2")->policy().stickiness().cookie_path(), "/");
  // A __Host- cookie is sent with Path=/ whatever is declared: a declared other path is said.
  Translator host;
  r = host.Translate(Store(Docs({Fixture(), Ingress("i", paths, affinity + "    doorman.dev/affinity-cookie-name: __Host-s\n"
                                                                     "    doorman.dev/affinity-cookie-path: /api\n")})));
  ASSERT_TRUE(Ing(r, "i")->accepted) << Ing(r, "i")->message;
  ASSERT_EQ(Ing(r, "i")->warnings.size(), 1u);
  EXPECT_EQ(Ing(r, "i")->warnings[0].reason, "AnnotationIgnored");
  EXPECT_EQ(Ing(r, "i")->warnings[0].field, "metadata.annotations[doorman.dev/affinity-cookie-path]");
  r = host.Translate(Store(Docs({Fixture(), Ingress("i", paths, affinity + "    doorman.dev/affinity-cookie-name: __Host-s\n")})));
  EXPECT_TRUE(Ing(r, "i")->warnings.empty());  // the per-path default is not the user's
}

// Behind another balancer (--ingress-trusted-proxies, --ingress-proxy-protocol): every Ingress
// route trusts those proxies' X-Forwarded-For, and both Ingress listeners expect a PROXY header.
TEST(TranslateIngress, IngressListenersCanSitBehindABalancer) {
  TranslateOptions opts;
  opts.ingress_trusted_proxies = {"10.0.0.0/8", "192.0.2.1/32"};
  opts.ingress_proxy_protocol = true;
  Translator t(opts);
  auto r = t.Translate(Store(Docs({Fixture(), Secret("s"),
                                   Ingress("i", "  tls: [{hosts: [a.example.com], secretName: s}]\n" + Rule("a.example.com") +
                                                    "    - host: b.example.com\n      http:\n        paths:\n"
                                                    "          - {path: /, pathType: Prefix, backend: {service: "
                                                    "{name: web, port: {number: 80}}}}\n")})));
  ASSERT_TRUE(Ing(r, "i")->accepted) << Ing(r, "i")->message;
  for (const char* l : {"http-80", "https-443"}) {
    ASSERT_NE(ListenerNamed(r.snapshot, l), nullptr) << l;
    EXPECT_TRUE(ListenerNamed(r.snapshot, l)->proxy_protocol().accept()) << l;
  }
  for (const char* route : {"default/ingress:i/r1-p0", "default/ingress:i/r0-p0-https", "default/ingress:i/r1-p0-https"}) {
    const v1::Route* rt = RouteNamed(r.snapshot, route);
    ASSERT_NE(rt, nullptr) << route;
    EXPECT_EQ(rt->forwarded_headers().x_forwarded_for(), v1::ForwardedHeaders::APPEND);
    ASSERT_EQ(rt->forwarded_headers().trusted_proxies_size(), 2) << route;
    EXPECT_EQ(rt->forwarded_headers().trusted_proxies(1), "192.0.2.1/32");
  }
  // ssl-redirect keeps the backends and skips itself for a trusted X-Forwarded-Proto: https.
  const v1::Route* redirect = RouteNamed(r.snapshot, "default/ingress:i/r0-p0");
  EXPECT_TRUE(redirect->filters().redirect().enabled());
  EXPECT_TRUE(redirect->filters().redirect().unless_forwarded_https());
  EXPECT_EQ(redirect->backends_size(), 1);
  // Without the flags: no PROXY header expected, nobody trusted.
  Translator plain;
  r = plain.Translate(Store(Docs({Fixture(), Ingress("i", Rule("a.example.com"))})));
  EXPECT_FALSE(ListenerNamed(r.snapshot, "http-80")->has_proxy_protocol());
  EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:i/r0-p0")->has_forwarded_headers());
  r = plain.Translate(Store(Docs({Fixture(), Secret("s"),
                                  Ingress("i", "  tls: [{hosts: [a.example.com], secretName: s}]\n" + Rule("a.example.com"))})));
  EXPECT_FALSE(RouteNamed(r.snapshot, "default/ingress:i/r0-p0")->filters().redirect().unless_forwarded_https());
  EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:i/r0-p0")->backends_size(), 0);
}

// Paths that look meant for the other path type are warned about; the Ingress still routes.
TEST(TranslateIngress, PathsThatLookMeantForTheOtherTypeAreWarned) {
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(), Ingress("is", Rule("a.example.com", "/", "ImplementationSpecific")),
                                   Ingress("rx", Rule("b.example.com", "/foo(/|$)(.*)")),
                                   Ingress("ok", Rule("c.example.com", "/items/[0-9]+", "ImplementationSpecific") +
                                                     "    - host: d.example.com\n      http:\n        paths:\n"
                                                     "          - {path: /v1, pathType: Prefix, backend: {service: "
                                                     "{name: web, port: {number: 80}}}}\n")})));
  const ObjectStatus* is = Ing(r, "is");
  ASSERT_TRUE(is->accepted);
  ASSERT_EQ(is->warnings.size(), 1u);
  EXPECT_EQ(is->warnings[0].reason, "PathIsRegex");
  EXPECT_EQ(is->warnings[0].field, "spec.rules[0].http.paths[0].path");
  const ObjectStatus* rx = Ing(r, "rx");
  ASSERT_TRUE(rx->accepted);
  ASSERT_EQ(rx->warnings.size(), 1u);
  EXPECT_EQ(rx->warnings[0].reason, "PathLooksLikeRegex");
  EXPECT_TRUE(Ing(r, "ok")->warnings.empty()) << Ing(r, "ok")->warnings[0].message;
}

TEST(TranslateIngress, IngressesMergeOnPort80AndTheDefaultBackendSortsLast) {
  const std::string lb =
      "apiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: lb, creationTimestamp: "
      "\"2026-03-01T00:00:00Z\"}\nspec:\n  listeners: [{name: web, port: 80, protocol: HTTP}]\n"
      "  routes: [{name: any, listener: web, backends: [{endpoints: [{address: 10.0.0.1, port: 80}]}]}]\n";
  // A rule without host: a's default backend is the listener's catch-all.
  const std::string a = Ingress("a", "  defaultBackend: {service: {name: web, port: {number: 80}}}\n" + Rule("", "/a"),
                                "", "2026-01-01T00:00:00Z");
  const std::string b = Ingress("b", Rule("", "/b"), "", "2026-02-01T00:00:00Z");
  Translator t;
  auto r = t.Translate(Store(Docs({Class(), a, b, lb})));
  for (const char* name : {"a", "b"}) EXPECT_TRUE(Ing(r, name)->accepted) << name;
  EXPECT_TRUE(StatusOf(r, "LoadBalancer", "lb")->accepted);
  ASSERT_EQ(r.snapshot.listeners_size(), 1);
  const v1::Listener& l = r.snapshot.listeners(0);
  EXPECT_EQ(l.name(), "http-80");
  ASSERT_EQ(l.owners_size(), 3);
  EXPECT_EQ(l.owners(0).name(), "a");
  EXPECT_EQ(l.owners(1).name(), "b");
  EXPECT_EQ(l.owners(2).name(), "lb");
  // The older Ingress's catch-all goes after the newer LoadBalancer's host-less, path-less route.
  EXPECT_EQ(ListenerRoutes(r.snapshot, "http-80"),
            (std::vector<std::string>{"default/ingress:a/r0-p0", "default/ingress:b/r0-p0", "default/lb/any", "default/ingress:a/default"}));
  EXPECT_EQ(Ing(r, "a")->listeners[0].attached_routes, 2u);
}

// An Ingress with rules (all with hosts) and a defaultBackend: the default backend serves its own
// hosts only (ingress-nginx), a rule without http included. Another team's host, in another
// namespace, never reaches it: a request there that no route matches is a 404.
TEST(TranslateIngress, ADefaultBackendServesItsOwnHostsOnly) {
  const std::string team_a = Ingress("team-a", "  defaultBackend: {service: {name: web, port: {number: 80}}}\n" +
                                                   Rule("x.plain.test", "/a") + "    - host: nohttp.plain.test\n");
  std::string team_b = Ingress("team-b", Rule("other.test", "/only", "Prefix", "web-v2"));
  team_b.replace(team_b.find("namespace: default"), 18, "namespace: other");
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(), team_a, team_b,
                                   "apiVersion: v1\nkind: Service\nmetadata: {name: web-v2, namespace: other}\nspec: {ports: [{port: 80}]}\n"})));
  EXPECT_TRUE(Ing(r, "team-a")->accepted) << Ing(r, "team-a")->message;
  EXPECT_EQ(ListenerRoutes(r.snapshot, "http-80"),
            (std::vector<std::string>{"default/ingress:team-a/default-h1", "default/ingress:team-a/r0-p0",
                                      "default/ingress:team-a/default-h0", "other/ingress:team-b/r0-p0"}));  // longer host first
  for (const auto& route : r.snapshot.routes()) {
    EXPECT_GT(route.match().hosts_size(), 0) << route.name() << " takes every host";
  }
  EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:team-a/default-h0")->match().hosts(0), "x.plain.test");
  EXPECT_EQ(RouteNamed(r.snapshot, "default/ingress:team-a/default-h1")->match().hosts(0), "nohttp.plain.test");
  EXPECT_EQ(r.snapshot.backend_sets_size(), 3);  // team-a's /a and default (shared), team-b's /only
}

TEST(TranslateIngress, PortConflictWithAnOlderTcpListener) {
  const std::string lb =
      "apiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: lb, creationTimestamp: "
      "\"2025-01-01T00:00:00Z\"}\nspec:\n  listeners: [{name: raw, port: 80, protocol: TCP}]\n";
  Translator t;
  auto r = t.Translate(Store(Docs({Class(), lb, Ingress("i", Rule("a.example.com"))})));
  const ObjectStatus* st = Ing(r, "i");
  EXPECT_FALSE(st->accepted);
  EXPECT_EQ(st->reason, "PortConflict");
  EXPECT_EQ(st->field, "spec.rules");
  EXPECT_NE(st->message.find("port 80/tcp is already used by LoadBalancer default/lb"), std::string::npos) << st->message;
  EXPECT_EQ(r.snapshot.routes_size(), 0);
}

TEST(TranslateIngress, MissingBackendServiceIsAWarningAndTheRouteStays) {
  Translator t;
  auto r = t.Translate(Store(Docs({Class(), Ingress("i", "  defaultBackend: {service: {name: gone, port: {name: http}}}\n")})));
  const ObjectStatus* st = Ing(r, "i");
  ASSERT_TRUE(st->accepted);
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "BackendNotFound");
  EXPECT_EQ(st->warnings[0].field, "spec.defaultBackend.service");
  EXPECT_EQ(SetNamed(r.snapshot, "default/ingress:i/default/0")->service(), "default/gone:http");
  EXPECT_EQ(SetNamed(r.snapshot, "default/ingress:i/default/0")->endpoints_size(), 0);
}

// An ExternalName Service has no EndpointSlices: said, rather than a silent 503 (helper-84).
TEST(TranslateIngress, AnExternalNameServiceBackendIsAWarning) {
  const std::string svc = R"(apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec: {type: ExternalName, externalName: api.example.com, ports: [{name: http, port: 80}]}
)";
  Translator t;
  auto r = t.Translate(Store(Docs({Class(), svc, Ingress("i", "  defaultBackend: {service: {name: ext, port: {number: 80}}}\n")})));
  const ObjectStatus* st = Ing(r, "i");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "BackendNotFound");
  EXPECT_EQ(st->warnings[0].field, "spec.defaultBackend.service");
  EXPECT_NE(st->warnings[0].message.find("Service default/ext is of type ExternalName (\"api.example.com\")"),
            std::string::npos) << st->warnings[0].message;
}

// Ingress backends are HTTP, so TCP: by number the TCP port of a Service that also has that
// number on UDP, and a port (by number or name) that is UDP only is a warning, not routed to.
TEST(TranslateIngress, BackendsTakeTheServicesTcpPort) {
  const std::string svc = R"(apiVersion: v1
kind: Service
metadata: {name: mixed, namespace: default}
spec: {ports: [{name: q, port: 80, protocol: UDP}, {name: h, port: 80, protocol: TCP}, {name: u, port: 81, protocol: UDP}]}
)";
  const std::string slice = R"(apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: mixed-a, namespace: default, labels: {kubernetes.io/service-name: mixed}}
ports: [{name: q, port: 8000, protocol: UDP}, {name: h, port: 8080}, {name: u, port: 8100, protocol: UDP}]
endpoints: [{addresses: [10.0.0.1]}]
)";
  const std::string spec = R"(  rules:
    - http:
        paths:
          - {path: /a, pathType: Prefix, backend: {service: {name: mixed, port: {number: 80}}}}
          - {path: /b, pathType: Prefix, backend: {service: {name: mixed, port: {number: 81}}}}
          - {path: /c, pathType: Prefix, backend: {service: {name: mixed, port: {name: u}}}}
)";
  Translator t;
  auto r = t.Translate(Store(Docs({Class(), svc, slice, Ingress("i", spec)})));
  const ObjectStatus* st = Ing(r, "i");
  ASSERT_TRUE(st->accepted) << st->message;
  const v1::BackendSet* a = SetNamed(r.snapshot, "default/ingress:i/r0-p0/0");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->endpoints_size(), 1);
  EXPECT_EQ(a->endpoints(0).port(), 8080u);
  ASSERT_EQ(st->warnings.size(), 2u);
  EXPECT_EQ(st->warnings[0].reason, "BackendNotFound");
  EXPECT_EQ(st->warnings[0].field, "spec.rules[0].http.paths[1].backend.service");
  EXPECT_EQ(st->warnings[0].message,
            "Service default/mixed has no TCP port 81 (its port 81 is UDP; a TCP, TLS, HTTP or HTTPS listener routes to a TCP Service port)");
  EXPECT_EQ(st->warnings[1].field, "spec.rules[0].http.paths[2].backend.service");
  EXPECT_EQ(st->warnings[1].message,
            "Service default/mixed has no TCP port named u (its port named u is UDP; a TCP, TLS, HTTP or HTTPS "
            "listener routes to a TCP Service port)");
}

// canary-by-header-value on an Ingress that is no canary: ignored with a warning, as
// ingress-nginx ignores it, not a refusal of the whole Ingress (helper-131). On a canary it is
// still refused (the canary test cases above).
TEST(TranslateIngress, CanaryByHeaderValueOnAnIngressThatIsNoCanaryIsIgnored) {
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(), Ingress("i", Rule("a.example.com"),
                                                      "    doorman.dev/canary-by-header-value: v2\n")})));
  const ObjectStatus* st = Ing(r, "i");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "AnnotationIgnored");
  EXPECT_EQ(st->warnings[0].field, "metadata.annotations[doorman.dev/canary-by-header-value]");
  EXPECT_NE(SetNamed(r.snapshot, "default/ingress:i/r0-p0/0"), nullptr);  // routed
}

// rewrite-target cannot apply to a defaultBackend (no matched path): said once (helper-131).
TEST(TranslateIngress, RewriteTargetOnTheDefaultBackendIsWarned) {
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(), R"(apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: i
  namespace: default
  annotations: {doorman.dev/rewrite-target: /x}
spec:
  ingressClassName: doorman
  defaultBackend: {service: {name: web, port: {number: 80}}}
)"})));
  const ObjectStatus* st = Ing(r, "i");
  ASSERT_TRUE(st->accepted) << st->message;
  ASSERT_EQ(st->warnings.size(), 1u);
  EXPECT_EQ(st->warnings[0].reason, "AnnotationIgnored");
  EXPECT_NE(st->warnings[0].message.find("on spec.defaultBackend"), std::string::npos) << st->warnings[0].message;
}

// HostPartlyTls across namespaces with host owners: another namespace's wildcard HTTPS routes do
// not take this Ingress's host, so the warning says where its HTTPS requests really go
// (helper-146); with --allow-cross-namespace-hosts they do reach the other Ingress.
TEST(TranslateIngress, HostPartlyTlsSaysWhereHttpsRequestsGoWithHostOwners) {
  auto objects = [] {
    return Store(Docs({Fixture(), Secret("s"),
                       Ingress("wild", "  tls: [{hosts: ['*.example.com'], secretName: s}]\n" + Rule("*.example.com"), "",
                               "2026-01-01T00:00:00Z"),
                       InNamespace(Ingress("blog", Rule("blog.example.com"), "", "2026-02-01T00:00:00Z"), "other")}));
  };
  for (const bool shared : {false, true}) {
    TranslateOptions opts;
    opts.allow_cross_namespace_hosts = shared;
    Translator t(opts);
    auto r = t.Translate(objects());
    std::string said;
    for (const auto& w : Ing(r, "blog")->warnings) {
      if (w.reason == "HostPartlyTls") said = w.message;
    }
    ASSERT_FALSE(said.empty()) << shared;
    EXPECT_EQ(said.find("reach the other Ingress's routes") != std::string::npos, shared) << said;
    EXPECT_EQ(said.find("get this namespace's HTTPS routes for it, if any, else 404") != std::string::npos, !shared) << said;
  }
}

// Snapshot.host_owners: an Ingress's "*." host owns one label (wildcard_one_label), unless a
// LoadBalancer of its namespace also routes that wildcard (one or more labels).
TEST(TranslateIngress, HostOwnersCarryTheWildcardSemantics) {
  const std::string lb =
      "apiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: lb, namespace: default, creationTimestamp: "
      "\"2026-03-01T00:00:00Z\"}\nspec:\n  listeners: [{name: web, port: 80, protocol: HTTP}]\n  routes:\n"
      "    - {name: w, listener: web, match: {hosts: [\"*.both.test\"]}, backends: [{endpoints: [{address: 10.0.0.1, port: 1}]}]}\n";
  Translator t;
  auto r = t.Translate(Store(Docs({Fixture(), Ingress("one", Rule("*.one.test"), "", "2026-01-01T00:00:00Z"),
                                   Ingress("both", Rule("*.both.test"), "", "2026-01-01T00:00:00Z"), lb})));
  std::map<std::string, std::string> owners;
  for (const auto& o : r.snapshot.host_owners()) owners[o.host()] = o.namespace_() + (o.wildcard_one_label() ? "/1" : "");
  EXPECT_EQ(owners["*.one.test"], "default/1");
  EXPECT_EQ(owners["*.both.test"], "default");
}

}  // namespace
}  // namespace doorman::controller
