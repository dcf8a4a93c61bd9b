#include "controller/source/manifest.h"

#include <gtest/gtest.h>

namespace doorman::controller {
namespace {

TEST(YamlToJson, ScalarTypingFollowsYaml12CoreSchema) {
  const auto j = YamlToJson(R"(
port: 8080
quoted: "8080"
single: '1'
yes_plain: yes
t: true
f: False
q_true: "true"
n1: null
n2: ~
n3:
neg: -12
hex: 0x10
oct: 0o17
flt: 1.5
exp: 1e3
ver: 1.2.3
ip: 127.0.0.1
str_tag: !!str 123
block: |
  line1
  line2
dur: 2s
list: [1, "2", three]
)");
  EXPECT_TRUE(j["port"].is_number_integer());
  EXPECT_EQ(j["port"].get<int64_t>(), 8080);
  EXPECT_EQ(j["quoted"], "8080");
  EXPECT_EQ(j["single"], "1");
  EXPECT_EQ(j["yes_plain"], "yes");  // YAML 1.2: only true/false are booleans
  EXPECT_EQ(j["t"], true);
  EXPECT_EQ(j["f"], false);
  EXPECT_EQ(j["q_true"], "true");
  EXPECT_TRUE(j["n1"].is_null());
  EXPECT_TRUE(j["n2"].is_null());
  EXPECT_TRUE(j["n3"].is_null());
  EXPECT_EQ(j["neg"].get<int64_t>(), -12);
  EXPECT_EQ(j["hex"].get<int64_t>(), 16);
  EXPECT_EQ(j["oct"].get<int64_t>(), 15);
  EXPECT_TRUE(j["flt"].is_number_float());
  EXPECT_DOUBLE_EQ(j["flt"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(j["exp"].get<double>(), 1000.0);
  EXPECT_EQ(j["ver"], "1.2.3");
  EXPECT_EQ(j["ip"], "127.0.0.1");
  EXPECT_EQ(j["str_tag"], "123");
  EXPECT_EQ(j["block"], "line1\nline2\n");
  EXPECT_EQ(j["dur"], "2s");
  EXPECT_EQ(j["list"], nlohmann::json::parse(R"([1, "2", "three"])"));
}

TEST(YamlToJson, DuplicateKeysAreAnError) {
  EXPECT_THROW(YamlToJson("a: 1\na: 2\n"), std::runtime_error);
}

TEST(ParseManifests, MultiDocumentWithSourceLocationsAndDefaultNamespace) {
  const auto r = ParseManifests(R"(---
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {name: shop}
spec: {}
---
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: prod
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: doorman, namespace: ignored}
)",
                                "/m/lb.yaml");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].ToString();
  ASSERT_EQ(r.objects.size(), 3u);
  EXPECT_EQ(r.objects[0].key, (ObjectKey{"LoadBalancer", "default", "shop"}));
  EXPECT_EQ(r.objects[0].stored.object["metadata"]["namespace"], "default");
  EXPECT_EQ(r.objects[0].stored.source.file, "/m/lb.yaml");
  EXPECT_EQ(r.objects[0].stored.source.document, 0);
  EXPECT_EQ(r.objects[0].stored.source.line, 2);
  EXPECT_EQ(r.objects[1].key, (ObjectKey{"Service", "prod", "web"}));
  EXPECT_EQ(r.objects[1].stored.source.document, 2);  // the empty document counts
  EXPECT_EQ(r.objects[1].stored.source.line, 8);
  EXPECT_EQ(r.objects[2].key, (ObjectKey{"IngressClass", "", "doorman"}));  // cluster-scoped
}

// An alias that refers to itself, and aliases nested in aliases ("billion laughs"), are errors
// of their document: no crash, no unbounded memory, the other documents still parse.
TEST(ParseManifests, RecursiveAndExplodingAliasesAreErrors) {
  std::string bomb = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'i'; ++c) {
    const char prev = static_cast<char>(c - 1);
    bomb += std::string("  ") + c + ": &" + c + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev +
            ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n";
  }
  const std::string ok = "apiVersion: v1\nkind: Secret\nmetadata: {name: fine}\n";
  const struct {
    const char* name;
    std::string doc;
    const char* message;
  } cases[] = {
      {"self-referring alias", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cyc}\ndata: &a\n  x: *a\n",
       "an alias that refers to itself"},
      {"billion laughs", bomb, "expands to more than 500000 values"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = ParseManifests(c.doc + "---\n" + ok, "/m/x.yaml");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].document, 0);
    EXPECT_NE(r.errors[0].message.find(c.message), std::string::npos) << r.errors[0].message;
    ASSERT_EQ(r.objects.size(), 1u);
  }
}

// yaml-cpp 0.7's LoadAll never returned on a top-level document followed by "," (it added empty
// documents until memory ran out: a controller on such a manifest file hung and was OOM-killed,
// then crash-looped on the same file). Found by fuzzing. Each is now a syntax error of the file.
TEST(ParseManifests, ACommaAfterADocumentIsASyntaxErrorNotAHang) {
  for (const char* text : {"[],", "{},", "\"a\",", ",", "{\"apiVersion\": \"v1\", \"kind\": \"Service\"},\n{\"apiVersion\": \"v1\"}\n",
                           "apiVersion: v1\nkind: Secret\nmetadata: {name: ok}\n---\n[],\n"}) {
    SCOPED_TRACE(text);
    const auto r = ParseManifests(text, "/m/comma.yaml");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_TRUE(r.objects.empty());
    EXPECT_GE(r.errors[0].line, 1);
  }
  // Streams that only look alike still parse: empty documents, a trailing "---", flow documents.
  for (const char* text : {"---\n---\n", "{apiVersion: v1, kind: Secret, metadata: {name: a}}\n---\n[1, 2]\n", "---\napiVersion: v1\nkind: Secret\nmetadata: {name: a}\n---\n",
                           "{apiVersion: v1, kind: Secret, metadata: {name: a}}\n"}) {
    SCOPED_TRACE(text);
    const auto r = ParseManifests(text, "/m/ok.yaml");
    for (const auto& e : r.errors) EXPECT_EQ(e.message.find("between documents"), std::string::npos) << e.message;
  }
}

// yaml-cpp passes any byte through; a name that is not UTF-8 later made the JSON encoder throw
// (the controller aborted on /debug/status). The file is refused with the bad byte's position.
TEST(ParseManifests, TextThatIsNotUtf8IsRefusedWithItsPosition) {
  const auto r = ParseManifests("apiVersion: v1\nkind: Service\nmetadata: {name: caf\xe9}\n", "/m/latin1.yaml");
  EXPECT_TRUE(r.objects.empty());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 3);
  EXPECT_EQ(r.errors[0].message,
            "not valid UTF-8 (byte 0xE9, the line's byte 21); manifests must be UTF-8 (or UTF-16/32 with a byte order mark)");
  // UTF-8 names and values are fine (the translator judges the name).
  const auto ok = ParseManifests("apiVersion: v1\nkind: Service\nmetadata: {name: cafe, annotations: {k: caf\xc3\xa9}}\n", "/m/ok.yaml");
  EXPECT_TRUE(ok.errors.empty());
  EXPECT_EQ(ok.objects.size(), 1u);
  EXPECT_THROW(YamlToJson("a: \xff\n"), std::runtime_error);
  // UTF-16 with a byte order mark (PowerShell 5 writes it) is decoded, as kubectl does.
  const std::string utf8 = "apiVersion: v1\nkind: Service\nmetadata: {name: cafe, annotations: {k: caf\xc3\xa9}}\n";
  std::string utf16le = "\xFF\xFE";
  for (std::size_t i = 0; i < utf8.size(); ++i) {
    if (utf8.compare(i, 2, "\xc3\xa9") == 0) {
      utf16le += std::string("\xE9\x00", 2);  // U+00E9
      ++i;
    } else {
      utf16le += utf8[i];
      utf16le += '\0';
    }
  }
  const auto wide = ParseManifests(utf16le, "/m/utf16.yaml");
  EXPECT_TRUE(wide.errors.empty()) << (wide.errors.empty() ? "" : wide.errors[0].message);
  ASSERT_EQ(wide.objects.size(), 1u);
  EXPECT_EQ(wide.objects[0].stored.object["metadata"]["annotations"]["k"], "caf\xc3\xa9");
}

TEST(ParseManifests, SyntaxErrorNamesFileAndLine) {
  const auto r = ParseManifests("apiVersion: doorman.dev/v1alpha1\nkind: [unclosed\n", "/m/bad.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_TRUE(r.objects.empty());
  EXPECT_EQ(r.errors[0].file, "/m/bad.yaml");
  EXPECT_GT(r.errors[0].line, 0);
  EXPECT_EQ(r.errors[0].ToString().rfind("/m/bad.yaml:", 0), 0u) << r.errors[0].ToString();
}

TEST(ParseManifests, StructuralErrorsNameTheDocument) {
  struct Case {
    const char* yaml;
    const char* want;
  } cases[] = {
      {"kind: Service\nmetadata: {name: a}\n", "missing or non-string apiVersion"},
      {"apiVersion: v1\nmetadata: {name: a}\n", "missing or non-string kind"},
      {"apiVersion: v1\nkind: Service\nmetadata: {}\n", "missing or non-string metadata.name"},
      {"apiVersion: v1\nkind: Service\nmetadata: {name: 5}\n", "missing or non-string metadata.name"},
      {"- a\n- b\n", "a document must be a mapping"},
      {"apiVersion: doorman.dev/v2\nkind: LoadBalancer\nmetadata: {name: a}\n", "unsupported apiVersion"},
      {"apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: a}\n",
       "EndpointSlice a: unsupported apiVersion \"discovery.k8s.io/v1beta1\" (want discovery.k8s.io/v1)"},
      {"apiVersion: networking.k8s.io/v1beta1\nkind: IngressClass\nmetadata: {name: a}\n",
       "unsupported apiVersion \"networking.k8s.io/v1beta1\" (want networking.k8s.io/v1)"},
      {"apiVersion: core/v1\nkind: Secret\nmetadata: {name: a}\n", "(want v1)"},
  };
  for (const auto& c : cases) {
    const auto r = ParseManifests(std::string("apiVersion: v1\nkind: Secret\nmetadata: {name: ok}\n---\n") + c.yaml,
                                  "/m/x.yaml");
    ASSERT_EQ(r.errors.size(), 1u) << c.yaml;
    EXPECT_EQ(r.errors[0].document, 1) << c.yaml;
    EXPECT_EQ(r.errors[0].line, 5) << c.yaml;
    EXPECT_NE(r.errors[0].message.find(c.want), std::string::npos) << r.errors[0].message;
    EXPECT_EQ(r.objects.size(), 1u);
  }
}

// EndpointSlice, Secret and IngressClass carry no status: a field they do not have refuses the
// document with a manifest error that names the field and the nearest known name, as kubectl
// apply's strict validation would. A misspelt "ready: false" would otherwise serve the endpoint.
TEST(ParseManifests, UnknownFieldsOfKindsWithoutStatusRefuseTheDocument) {
  struct Case {
    const char* yaml;
    const char* want;
  } cases[] = {
      {"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\n"
       "endpoints: [{addresses: [127.0.0.1], conditions: {redy: false}}]\n",
       "EndpointSlice default/s: endpoints[0].conditions.redy: unknown field (did you mean \"ready\"?)"},
      {"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\n"
       "endpoints: [{addresses: [127.0.0.1]}]\nport: [{port: 80}]\n",
       "EndpointSlice default/s: port: unknown field (did you mean \"ports\"?)"},
      {"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\n"
       "endpoints: [{address: [127.0.0.1]}]\n",
       "endpoints[0].address: unknown field (did you mean \"addresses\"?)"},
      {"apiVersion: v1\nkind: Secret\nmetadata: {name: t}\ntype: kubernetes.io/tls\ndat: {}\n",
       "Secret default/t: dat: unknown field (did you mean \"data\"?)"},
      {"apiVersion: v1\nkind: Secret\nmetadata: {name: t, lables: {a: b}}\n",
       "metadata.lables: unknown field (did you mean \"labels\"?)"},
      {"apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: c}\nspec: {controler: doorman.dev/ingress}\n",
       "IngressClass c: spec.controler: unknown field (did you mean \"controller\"?)"},
  };
  for (const auto& c : cases) {
    const auto r = ParseManifests(std::string("apiVersion: v1\nkind: Secret\nmetadata: {name: ok}\n---\n") + c.yaml,
                                  "/m/x.yaml");
    ASSERT_EQ(r.errors.size(), 1u) << c.yaml;
    EXPECT_EQ(r.errors[0].document, 1) << c.yaml;
    EXPECT_NE(r.errors[0].message.find(c.want), std::string::npos) << r.errors[0].message;
    ASSERT_EQ(r.objects.size(), 1u) << c.yaml;  // the refused document is not served
    EXPECT_EQ(r.objects[0].key.name, "ok");
  }
}

// Their values are checked too: nothing else reads them strictly, and `ready: "false"` read as
// "not a boolean, so absent" means ready.
TEST(ParseManifests, WrongTypesInKindsWithoutStatusRefuseTheDocument) {
  const std::string slice = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\n";
  struct Case {
    std::string yaml;
    const char* want;
  } cases[] = {
      {slice + "addressType: IPv4\nendpoints: [{addresses: [127.0.0.1], conditions: {ready: \"false\"}}]\n",
       "endpoints[0].conditions.ready: must be a boolean, not a string (write true or false, unquoted"},
      {slice + "addressType: IPv4\nendpoints: [{addresses: [127.0.0.1], conditions: {ready: no}}]\n",
       "endpoints[0].conditions.ready: must be a boolean, not a string"},
      {slice + "addressType: IPv4\nendpoints: [{addresses: [127.0.0.1], conditions: {serving: 0}}]\n",
       "endpoints[0].conditions.serving: must be a boolean, not an integer"},
      {slice + "addressType: IPv4\nendpoints: [{addresses: 127.0.0.1}]\n",
       "endpoints[0].addresses: must be a list of strings, not a string"},
      {slice + "addressType: IPv4\nendpoints: [{addresses: [127.0.0.1, 5]}]\n",
       "endpoints[0].addresses: must be a list of strings, not a list with a value that is not a string"},
      {slice + "addressType: IPv4\nendpoints: {addresses: [127.0.0.1]}\n", "endpoints: must be a list, not an object"},
      {slice + "addressType: IPv4\nendpoints: [5]\n", "endpoints[0]: must be an object, not an integer"},
      {slice + "addressType: IPv4\nendpoints: []\nports: [{port: \"80\"}]\n",
       "ports[0].port: must be an integer, not a string (write it unquoted)"},
      {slice + "addressType: 4\nendpoints: []\n", "addressType: must be a string, not an integer (quote it)"},
      {"apiVersion: v1\nkind: Secret\nmetadata: {name: t}\ndata: {tls.crt: 5}\n",
       "Secret default/t: data: must be a map of strings, not an object with a value that is not a string"},
      {"apiVersion: v1\nkind: Secret\nmetadata: {name: t}\nimmutable: \"true\"\n", "immutable: must be a boolean"},
      {"apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: c}\nspec: {controller: [a]}\n",
       "IngressClass c: spec.controller: must be a string, not a list"},
  };
  for (const auto& c : cases) {
    const auto r = ParseManifests("apiVersion: v1\nkind: Secret\nmetadata: {name: ok}\n---\n" + c.yaml, "/m/x.yaml");
    ASSERT_EQ(r.errors.size(), 1u) << c.yaml;
    EXPECT_NE(r.errors[0].message.find(c.want), std::string::npos) << r.errors[0].message;
    EXPECT_NE(r.errors[0].message.find("which kubectl apply would refuse too"), std::string::npos);
    ASSERT_EQ(r.objects.size(), 1u) << c.yaml;
  }
  // null is absent, as the API server reads it.
  const auto nulls = ParseManifests(slice + "addressType: IPv4\nendpoints: [{addresses: [127.0.0.1], conditions: {ready: null}, "
                                            "hostname: ~}]\nports: null\n",
                                    "/m/n.yaml");
  EXPECT_TRUE(nulls.errors.empty()) << nulls.errors[0].ToString();
}

TEST(ParseManifests, EveryFieldOfTheKindsWithoutStatusIsAccepted) {
  const auto all = ParseManifests(R"(apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s, labels: {kubernetes.io/service-name: web}, annotations: {a: b}, ownerReferences: []}
addressType: IPv4
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: true, serving: true, terminating: false}
  hostname: h
  nodeName: n
  zone: z
  deprecatedTopology: {a: b}
  targetRef: {kind: Pod, namespace: default, name: p, uid: u, apiVersion: v1, resourceVersion: "1", fieldPath: f}
  hints: {forZones: [{name: z}], forNodes: [{name: n}]}
ports: [{name: http, protocol: TCP, port: 80, appProtocol: http}]
---
apiVersion: v1
kind: Secret
metadata: {name: t}
type: kubernetes.io/tls
immutable: true
data: {tls.crt: "", tls.key: ""}
stringData: {extra: x}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: c, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
spec:
  controller: doorman.dev/ingress
  parameters: {apiGroup: doorman.dev, kind: Params, name: p, namespace: default, scope: Namespace}
)",
                                  "/m/all.yaml");
  EXPECT_TRUE(all.errors.empty()) << all.errors[0].ToString();
  EXPECT_EQ(all.objects.size(), 3u);
}

TEST(ParseManifests, UnknownKindsAreReportedNotFatal) {
  const auto r = ParseManifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n", "/m/x.yaml");
  EXPECT_TRUE(r.errors.empty());
  EXPECT_TRUE(r.objects.empty());
  ASSERT_EQ(r.ignored.size(), 1u);
  EXPECT_NE(r.ignored[0].message.find("ConfigMap"), std::string::npos);
}

TEST(ParseManifests, SameObjectTwiceInAFileIsAnError) {
  const auto r = ParseManifests(
      "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: a}\n",
      "/m/x.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("declared twice"), std::string::npos);
}

constexpr const char* kSecretA = "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ntype: Opaque\n";
constexpr const char* kSecretA2 = "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ntype: Other\n";
constexpr const char* kSecretB = "apiVersion: v1\nkind: Secret\nmetadata: {name: b}\n";

std::vector<std::string> Events(const std::vector<WatchEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.type + " " + e.key.ToString());
  return out;
}

TEST(ManifestSet, EventsForAddModifyDelete) {
  ManifestSet set;
  std::vector<Diagnostic> logs;
  EXPECT_EQ(Events(set.ApplyFile("/m/a.yaml", ParseManifests(std::string(kSecretA) + "---\n" + kSecretB, "/m/a.yaml"), &logs)),
            (std::vector<std::string>{"ADDED Secret default/a", "ADDED Secret default/b"}));
  // Same content: no events.
  EXPECT_TRUE(set.ApplyFile("/m/a.yaml", ParseManifests(std::string(kSecretA) + "---\n" + kSecretB, "/m/a.yaml"), &logs).empty());
  EXPECT_EQ(Events(set.ApplyFile("/m/a.yaml", ParseManifests(kSecretA2, "/m/a.yaml"), &logs)),
            (std::vector<std::string>{"MODIFIED Secret default/a", "DELETED Secret default/b"}));
  EXPECT_EQ(Events(set.RemoveFile("/m/a.yaml")), (std::vector<std::string>{"DELETED Secret default/a"}));
  EXPECT_TRUE(set.objects().empty());
  EXPECT_TRUE(logs.empty());
}

// A batch ends where the same files one by one end (objects, sources, problems), with the events
// between the store before and after; the store is rebuilt once (helper-111).
TEST(ManifestSet, ABatchOfFilesEndsWhereTheFilesOneByOneEnd) {
  auto batch = [](ManifestSet& set, std::vector<std::pair<std::string, std::optional<std::string>>> files,
                  std::vector<Diagnostic>* logs) {
    std::vector<std::pair<std::string, std::optional<ParseResult>>> parsed;
    for (auto& [f, text] : files) {
      parsed.emplace_back(f, text ? std::optional<ParseResult>(ParseManifests(*text, f)) : std::nullopt);
    }
    return set.ApplyFiles(std::move(parsed), logs);
  };
  const std::vector<std::pair<std::string, std::optional<std::string>>> first = {
      {"/m/a.yaml", std::string(kSecretA)}, {"/m/b.yaml", std::string(kSecretB)}, {"/m/c.yaml", std::string(kSecretA2)},
      {"/m/d.yaml", std::string("kind: [unclosed\n")}};
  const std::vector<std::pair<std::string, std::optional<std::string>>> second = {
      {"/m/a.yaml", std::nullopt}, {"/m/b.yaml", std::string(kSecretA)}, {"/m/e.yaml", std::string(kSecretB)}};
  ManifestSet one_by_one, batched;
  std::vector<Diagnostic> logs1, logs2;
  for (int n = 0; n < 2; ++n) {
    const auto& step = n == 0 ? first : second;
    for (const auto& [f, text] : step) {
      if (text) {
        one_by_one.ApplyFile(f, ParseManifests(*text, f), &logs1);
      } else {
        one_by_one.RemoveFile(f, &logs1);
      }
    }
    const auto events = batch(batched, step, &logs2);
    EXPECT_EQ(batched.objects(), one_by_one.objects());
    EXPECT_EQ(batched.files(), one_by_one.files());
    EXPECT_EQ(batched.errors().size(), one_by_one.errors().size());
    if (n == 0) {
      // a.yaml wins default/a over c.yaml (path order), reported; d.yaml does not parse.
      EXPECT_EQ(Events(events), (std::vector<std::string>{"ADDED Secret default/a", "ADDED Secret default/b"}));
      EXPECT_EQ(batched.objects().at(ObjectKey{"Secret", "default", "a"}).source.file, "/m/a.yaml");
    } else {
      // a.yaml gone: b.yaml's default/a wins (it sorts before c.yaml), e.yaml holds default/b now;
      // both the same as before, so no event.
      EXPECT_TRUE(events.empty()) << Events(events).size();
      EXPECT_EQ(batched.objects().at(ObjectKey{"Secret", "default", "a"}).source.file, "/m/b.yaml");
      EXPECT_EQ(batched.objects().at(ObjectKey{"Secret", "default", "b"}).source.file, "/m/e.yaml");
    }
  }
  std::size_t dup_warnings = 0;
  for (const auto& d : logs2) dup_warnings += d.message == "object declared in two files, ignoring this one" ? 1 : 0;
  EXPECT_GE(dup_warnings, 1u);
}

TEST(ManifestSet, FileThatStopsParsingKeepsItsLastGoodObjects) {
  ManifestSet set;
  std::vector<Diagnostic> logs;
  set.ApplyFile("/m/a.yaml", ParseManifests(kSecretA, "/m/a.yaml"), &logs);
  const auto events = set.ApplyFile("/m/a.yaml", ParseManifests("kind: [unclosed\n", "/m/a.yaml"), &logs);
  EXPECT_TRUE(events.empty());  // the object itself did not change
  ASSERT_EQ(set.objects().size(), 1u);
  const auto& so = set.objects().begin()->second;
  EXPECT_EQ(so.object["type"], "Opaque");
  EXPECT_NE(so.stale_reason.find("/m/a.yaml"), std::string::npos);
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0].level, log::Level::kWarn);
  EXPECT_EQ(logs[0].Field("file"), "/m/a.yaml");
  EXPECT_EQ(set.errors().size(), 1u);
  // Fixed: fresh again.
  set.ApplyFile("/m/a.yaml", ParseManifests(kSecretA2, "/m/a.yaml"), &logs);
  EXPECT_EQ(set.objects().begin()->second.stale_reason, "");
  EXPECT_EQ(set.objects().begin()->second.object["type"], "Other");
  EXPECT_TRUE(set.errors().empty());
}

TEST(ManifestSet, FileThatNeverParsedCleanlyContributesItsValidDocuments) {
  ManifestSet set;
  std::vector<Diagnostic> logs;
  set.ApplyFile("/m/a.yaml", ParseManifests(std::string(kSecretA) + "---\nkind: Secret\n", "/m/a.yaml"), &logs);
  ASSERT_EQ(set.objects().size(), 1u);
  EXPECT_EQ(set.objects().begin()->second.stale_reason, "");
  EXPECT_EQ(logs.size(), 1u);
}

TEST(ManifestSet, DuplicateAcrossFilesFirstPathWins) {
  ManifestSet set;
  std::vector<Diagnostic> logs;
  set.ApplyFile("/m/b.yaml", ParseManifests(kSecretA2, "/m/b.yaml"), &logs);
  set.ApplyFile("/m/a.yaml", ParseManifests(kSecretA, "/m/a.yaml"), &logs);
  ASSERT_EQ(set.objects().size(), 1u);
  EXPECT_EQ(set.objects().begin()->second.source.file, "/m/a.yaml");
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0].Field("winner"), "/m/a.yaml");
  EXPECT_EQ(logs[0].Field("file"), "/m/b.yaml");
}

TEST(ResourceName, LowercasePlural) {
  EXPECT_EQ(ResourceName("LoadBalancer"), "loadbalancers");
  EXPECT_EQ(ResourceName("Ingress"), "ingresses");
  EXPECT_EQ(ResourceName("IngressClass"), "ingressclasses");
  EXPECT_EQ(ResourceName("EndpointSlice"), "endpointslices");
}

}  // namespace
}  // namespace doorman::controller
