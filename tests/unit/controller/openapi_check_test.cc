// The CRD schema check of --manifests mode, against the real LoadBalancer CRD (crds/).
#include "controller/translate/openapi_check.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "controller/source/manifest.h"
#include "controller/translate/translate.h"

namespace doorman::controller {
namespace {

using nlohmann::json;

const json& Schema() {
  static const json schema = [] {
    std::ifstream f(DOORMAN_LB_CRD);
    std::stringstream ss;
    ss << f.rdbuf();
    return CrdSchema(YamlToJson(ss.str()));
  }();
  return schema;
}

const json& SpecSchema() { return Schema()["properties"]["spec"]; }

json Spec(const std::string& yaml) { return YamlToJson(yaml); }

std::string Fields(const std::vector<SchemaViolation>& v) {
  std::string out;
  for (const auto& x : v) out += x.field + ": " + x.message + "\n";
  return out;
}

TEST(OpenApiCheck, TheCrdHasASchema) {
  ASSERT_TRUE(Schema().is_object());
  EXPECT_TRUE(SpecSchema().is_object());
}

TEST(OpenApiCheck, AValidSpecPasses) {
  const json spec = Spec(R"(
listeners: [{name: web, port: 80, protocol: HTTP}, {name: dns, port: 53, protocol: UDP}]
routes:
  - name: app
    listener: web
    match: {path: {type: Prefix, value: /api}}
    policy: {timeouts: {connect: 2s}, rateLimit: {requestsPerSecond: 100, burst: 50, key: ClientIP}}
    backends: [{endpoints: [{address: 10.0.0.1, port: 8080}], weight: 3}]
healthCheck: {protocol: HTTP, path: /healthz, interval: 5s, timeout: 2s}
)");
  const auto v = CheckOpenApi(SpecSchema(), spec, "spec");
  EXPECT_TRUE(v.empty()) << Fields(v);
}

TEST(OpenApiCheck, LimitsTheCrdSetsAreFound) {
  std::string many = "listeners:\n";
  for (int i = 0; i < 65; ++i) many += "  - {name: l" + std::to_string(i) + ", port: " + std::to_string(1000 + i) + ", protocol: TCP}\n";
  struct Case {
    std::string yaml;
    std::string field;
    std::string message;
  } cases[] = {
      {many, "spec.listeners", "too many items: 65, at most 64"},
      {"listeners: []", "spec.listeners", "at least 1"},
      {"listeners: [{name: Web, port: 80, protocol: HTTP}]", "spec.listeners[0].name", "must match the pattern"},
      {"listeners: [{name: web, port: 0, protocol: HTTP}]", "spec.listeners[0].port", "greater than or equal to 1"},
      {"listeners: [{name: web, port: 80, protocol: SCTP}]", "spec.listeners[0].protocol", "unsupported value \"SCTP\""},
      {"listeners: [{name: web, protocol: HTTP}]", "spec.listeners[0].port", "required value"},
      {"listeners: [{name: web, port: \"80\", protocol: HTTP}]", "spec.listeners[0].port", "must be of type integer, not string"},
      {"listeners: [{name: web, port: 80, protocol: HTTP}]\nroutes: [{name: a, listener: web, match: {path: {type: Prefix, value: /" +
           std::string(1100, 'a') + "}}}]",
       "spec.routes[0].match.path.value", "may not be longer than"},
      {"listeners: [{name: web, port: 80, protocol: HTTP}]\nroutes: [{name: a, listener: web, policy: {rateLimit: {requestsPerSecond: 2000000}}}]",
       "spec.routes[0].policy.rateLimit.requestsPerSecond", "less than or equal to"},
      {"listeners: [{name: web, port: 80, protocol: HTTP, idleTimeout: 5 minutes}]", "spec.listeners[0].idleTimeout",
       "must match the pattern"},
  };
  for (const auto& c : cases) {
    const auto v = CheckOpenApi(SpecSchema(), Spec(c.yaml), "spec");
    bool found = false;
    for (const auto& x : v) found = found || (x.field == c.field && x.message.find(c.message) != std::string::npos);
    EXPECT_TRUE(found) << c.field << " / " << c.message << "\ngot:\n" << Fields(v);
  }
}

TEST(OpenApiCheck, CharactersNotBytesAndBoundedOutput) {
  json schema = {{"type", "string"}, {"maxLength", 3}};
  EXPECT_TRUE(CheckOpenApi(schema, "\xC2\xB5\xC2\xB5\xC2\xB5", "x").empty());  // 3 characters, 6 bytes
  EXPECT_EQ(CheckOpenApi(schema, "abcd", "x").size(), 1u);
  json arr = {{"type", "array"}, {"items", {{"type", "integer"}}}};
  EXPECT_EQ(CheckOpenApi(arr, json::array({"a", "b", "c", "d"}), "x", 2).size(), 2u);
}

TEST(OpenApiCheck, TheTranslatorAppliesTheSchemaWhenGivenOne) {
  std::string spec = "  listeners:\n";
  for (int i = 0; i < 65; ++i) spec += "    - {name: l" + std::to_string(i) + ", port: " + std::to_string(1000 + i) + ", protocol: TCP}\n";
  const std::string lb = "apiVersion: doorman.dev/v1alpha1\nkind: LoadBalancer\nmetadata: {name: big, namespace: default}\nspec:\n" + spec;
  ManifestSet set;
  set.ApplyFile("/m/big.yaml", ParseManifests(lb, "/m/big.yaml"), nullptr);
  TranslateOptions with;
  with.loadbalancer_schema = &Schema();
  Translator checked(with);
  const auto r = checked.Translate(set.objects());
  ASSERT_EQ(r.statuses.size(), 1u);
  EXPECT_FALSE(r.statuses[0].accepted);
  EXPECT_NE(r.statuses[0].message.find("at most 64 (the LoadBalancer CRD's schema)"), std::string::npos)
      << r.statuses[0].message;
  Translator unchecked;  // in a cluster the API server did this; the translator alone accepts it
  EXPECT_TRUE(unchecked.Translate(set.objects()).statuses[0].accepted);
}

}  // namespace
}  // namespace doorman::controller
