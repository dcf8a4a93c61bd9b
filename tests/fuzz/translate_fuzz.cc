// libFuzzer target: the controller end to end on what a user can declare — manifest YAML
// (LoadBalancer, Service, EndpointSlice, Ingress, IngressClass, Secret) parsed as --manifests
// parses it, checked against the LoadBalancer CRD's schema as an API server would, translated
// into a Snapshot and per-object status — and that Snapshot compiled by the dataplane.
// Properties: never crashes; every object refused says why (reason and message); translating the
// same objects again gives the same snapshot (its version is a content hash); and the dataplane
// accepts every snapshot the controller builds — a NACK would hold back every object's update,
// where an invalid object must only ever affect itself.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "controller/source/manifest.h"
#include "controller/translate/openapi_check.h"
#include "controller/translate/translate.h"
#include "dataplane/config/compile.h"

namespace doorman::controller {
extern const char kLoadBalancerCrdYaml[];  // lb_crd.cc, generated from crds/ at build time
}  // namespace doorman::controller

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace doorman::controller;
  static const nlohmann::json schema = CrdSchema(YamlToJson(kLoadBalancerCrdYaml));
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const ParseResult parsed = ParseManifests(text, "/fuzz/m.yaml");
  ObjectStore store;
  for (const auto& o : parsed.objects) store.emplace(o.key, o.stored);  // the first of a key, as the file source
  if (store.empty()) return 0;
  TranslateOptions options;
  options.loadbalancer_schema = &schema;
  options.check_known_fields = true;
  Translator translator(options);
  const TranslateResult r = translator.Translate(store);
  for (const auto& st : r.statuses) {
    if (!st.accepted && (st.reason.empty() || st.message.empty())) std::abort();
  }
  Translator again(options);
  if (SerializeSnapshot(again.Translate(store).snapshot) != SerializeSnapshot(r.snapshot)) std::abort();
  const doorman::dataplane::CompileResult compiled = doorman::dataplane::Compile(r.snapshot, 1, {});
  if (!compiled.ok()) {
    std::fprintf(stderr, "dataplane NACK: %s\n", compiled.error.c_str());
    std::abort();
  }
  return 0;
}
