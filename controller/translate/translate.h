// The translator: object store → immutable, deterministically ordered Snapshot + per-object
// status. Pure (no I/O, no clock); the only state is the last accepted version of each object,
// which the "last good" rule needs.
//
// Translated kinds (API.md §1): LoadBalancer (loadbalancer.cc), Service of type LoadBalancer
// (service.cc), Ingress with its IngressClass (ingress.cc). Services, EndpointSlices and Secrets
// are inputs they refer to. The merge of all objects into one snapshot is in translate.cc.
//
// Rules (binding for the dataplane, see docs/controller.md):
// * Listener.name = "<protocol>-<port>" lowercase ("http-8080", "tcp-6379"); one snapshot
//   listener per port and transport. Two objects may share an HTTP or HTTPS port when their
//   listener settings (tls.minVersion, proxyProtocol, idleTimeout, allowedSourceRanges) agree:
//   routes merge, certificates union (the oldest owner's first certificate is the default),
//   owners lists both. Any other clash goes to the oldest object (metadata.creationTimestamp as
//   a time, RFC 3339 with any offset; objects without a valid one count as newest; then
//   namespace/name), port by port; the others get
//   PortConflict: a warning when only some of their listeners clash (those are left out, the
//   rest is served, as Gateway API does), Accepted=False when all of them do.
// * Route.name = "<ns>/<obj>/<route>", BackendSet.name = "<ns>/<obj>/<route>/<backendIndex>",
//   TlsCertificate.name = "<ns>/<secret>".
//   Service: Route.name = "<ns>/<svc>/<portName-or-port>". Ingress: Route.name =
//   "<ns>/<ing>/r<rule>-p<path>" (HTTP listener; "-https" appended on the HTTPS listener),
//   "<ns>/<ing>/default" for spec.defaultBackend.
// * Listener.routes are in match-precedence order (see RoutePrecedence in translate.cc).
// * Equal input → byte-identical serialized snapshot (SerializeSnapshot) → equal version.
// * Last good: an object that was accepted and becomes invalid keeps routing with its last
//   accepted version and is reported not accepted; one that never was valid is left out. An
//   invalid object never changes what other objects route.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "controller/model/diagnostic.h"
#include "controller/model/object.h"
#include "doorman/v1/routing.pb.h"

namespace doorman::controller {

// What the controller was started with (flags); pure input, equal options + equal store → equal
// snapshot. Defaults are the flags' defaults.
struct TranslateOptions {
  // --default-lb-class: also claim Services of type LoadBalancer that have no loadBalancerClass.
  bool default_lb_class = false;
  // --ingress-class: the value of the legacy kubernetes.io/ingress.class annotation that selects
  // doorman (IngressClass objects are matched by spec.controller, see ingress.cc).
  std::string ingress_class = "doorman";
  // --controller-class: the spec.controller of the IngressClasses doorman claims (ingress-nginx's
  // --controller-class). Two installs in one cluster each take their own, with an IngressClass
  // naming it.
  std::string ingress_controller = "doorman.dev/ingress-controller";
  // --load-balancer-class: the spec.loadBalancerClass of the Services doorman claims.
  std::string load_balancer_class = "doorman.dev/lb";
  // --ingress-http-port / --ingress-https-port: where every Ingress's rules listen (they must
  // differ; an Ingress with TLS is refused otherwise).
  uint32_t ingress_http_port = 80;
  uint32_t ingress_https_port = 443;
  // --manifests mode: the LoadBalancer CRD's openAPIV3Schema (JSON), applied to each
  // LoadBalancer as an API server would (openapi_check.h); null in a cluster, where the API
  // server already did. Not owned.
  const nlohmann::json* loadbalancer_schema = nullptr;
  // --manifests mode: a field a Service, Ingress or LoadBalancer (or any object's metadata) does
  // not have is refused (known_fields.h), as kubectl apply's strict validation would; in a
  // cluster the API server already did.
  bool check_known_fields = false;
  // --manifests mode: an Ingress, or a Service of type LoadBalancer, that doorman does not claim
  // is logged once (why not), since every file was written for doorman; in a cluster other
  // controllers' objects are the norm.
  bool report_unclaimed = false;
  // A cluster: only kubernetes.io/tls Secrets are watched (field selector), so a Secret "not
  // found" may exist with another type; the message says so.
  bool only_tls_secrets_watched = false;
  // A cluster (unless --allow-node-local-endpoints): a LoadBalancer's static endpoint in a
  // loopback, link-local or unspecified range is refused, as the API server refuses it in an
  // EndpointSlice. --manifests mode takes them (the files are the operator's own).
  bool refuse_node_local_endpoints = false;
  // --allow-cross-namespace-hosts: routes of several namespaces may name one host on one port
  // (ingress-nginx's merging). Off, a host belongs to the namespace of the oldest object routing
  // it there, and others' routes lose it (HostConflict warnings; translate.cc ClaimHosts).
  bool allow_cross_namespace_hosts = false;
  // --ingress-trusted-proxies: CIDRs whose X-Forwarded-For (and X-Forwarded-*) Ingress routes
  // keep (ingress-nginx's use-forwarded-headers + proxy-real-ip-cidr); empty = trust nobody.
  std::vector<std::string> ingress_trusted_proxies;
  // --ingress-proxy-protocol: Ingress listeners expect a PROXY v1/v2 header on every connection
  // (ingress-nginx's use-proxy-protocol), as behind an NLB that sends one.
  bool ingress_proxy_protocol = false;
  // --ingress-default-certificate: "NAMESPACE/NAME" of a kubernetes.io/tls Secret (ingress-nginx's
  // --default-ssl-certificate). Every claimed Ingress is served on the HTTPS port with it (those
  // without tls[] too, not redirected), a tls[] entry without secretName uses it, and it is the
  // HTTPS listener's default certificate (no SNI, or a name no certificate has). "" = none.
  std::string ingress_default_certificate;
};

// Comma-separated CIDRs as the translators accept them ("10.0.0.0/8, 2001:db8::/32"; blank items
// skipped), for flags. False, with `*bad` the first item that is not one.
bool ParseCidrList(const std::string& text, std::vector<std::string>* out, std::string* bad);

struct ListenerStatus {
  std::string name;  // the object's listener name ("web")
  uint32_t attached_routes = 0;
  std::string snapshot_name{};  // the snapshot listener it is part of ("http-8080")
};

// A problem that does not stop the object from being accepted (e.g. a Service not found yet:
// that backend set is empty until it appears).
struct StatusWarning {
  // BackendNotFound | NoBackends | SecretNotFound | InvalidSecret | CanaryNotAttached |
  // AnnotationIgnored | UnknownAnnotation | FieldIgnored | MultipleDefaultClasses |
  // HealthCheckNotRun | PortConflict (a listener lost its port; the others are served) |
  // PathIsRegex | PathLooksLikeRegex | HostPartlyTls | CertificateMismatch | CertificateExpired |
  // CertificateNotYetValid | NotImplemented |
  // RouteShadowed
  std::string reason;
  std::string field;   // spec.routes[0].backends[1].service
  std::string message;
};

// What the controller would write into status.conditions[Accepted] and status.listeners.
struct ObjectStatus {
  ObjectKey key;
  SourceLocation source;
  int64_t generation = 0;
  bool accepted = false;
  // Accepted | InvalidSpec | UnsupportedValue | PortConflict | InvalidCertificateRef |
  // InvalidManifest | InvalidAnnotation | UnsupportedProtocol
  std::string reason;
  std::string field;    // field path of the first problem, e.g. "spec.routes[1].match.path.type"
  std::string message;  // human-readable; names the field; "(and N more problems)" when several
  std::string first_problem;  // the first problem's message alone (for a log line's error=)
  size_t problem_count = 0;
  bool serving_last_good = false;  // not accepted, but its last accepted version still routes
  int64_t serving_generation = 0;  // generation whose routes are in the snapshot (when routed)
  std::vector<ListenerStatus> listeners;
  std::vector<StatusWarning> warnings;
};

struct TranslateResult {
  doorman::v1::Snapshot snapshot;
  std::vector<ObjectStatus> statuses;   // sorted by key
  std::vector<Diagnostic> diagnostics;  // log lines for problems that are new since last call
};

// Deterministic serialization (map fields sorted) — the bytes the version is computed from.
std::string SerializeSnapshot(const doorman::v1::Snapshot& snapshot);
// doorman::ContentVersion of SerializeSnapshot(); never 0.
uint64_t SnapshotVersion(const doorman::v1::Snapshot& snapshot);
// Protobuf JSON of the snapshot with every private_key_pem replaced by "REDACTED".
std::string RedactedSnapshotJson(const doorman::v1::Snapshot& snapshot);

class Translator {
 public:
  explicit Translator(TranslateOptions options = {});
  ~Translator();
  Translator(const Translator&) = delete;
  Translator& operator=(const Translator&) = delete;

  // Translates the whole store: every LoadBalancer, every Service of type LoadBalancer and
  // every Ingress that doorman claims (objects it does not claim get no status). Remembers accepted objects for the last-good rule and which
  // problems were already logged, so an unchanged problem is logged once.
  TranslateResult Translate(const ObjectStore& store);

  // The last accepted versions the last Translate served in place of an object's current one
  // (ObjectStatus.serving_last_good), as stored: what another replica, or this one restarted,
  // needs to route the same (kube/last_good_lease.h persists them).
  std::map<ObjectKey, nlohmann::json> LastGoodServed() const;
  // Adopts `object` as the last accepted version of `key` unless this translator has one of its
  // own (seen accepted here, which is at least as recent). Used at start-up with what
  // LastGoodServed() of the replica that wrote it held.
  void SeedLastGood(const ObjectKey& key, nlohmann::json object);

 private:
  // The last accepted version of each object. Kept as the object itself (not its compiled
  // form) so that it is re-resolved against current Services, EndpointSlices and Secrets.
  std::map<ObjectKey, StoredObject> last_good_;
  // The TLS Secrets each last good version was accepted with. When re-resolving the last good
  // version against the current Secrets fails (a rotation gone wrong: a key that does not match,
  // a deleted Secret), it is compiled with these instead, so its listeners keep serving the
  // certificates they had rather than closing.
  std::map<ObjectKey, std::map<ObjectKey, StoredObject>> last_good_secrets_;
  // The backend CA Secret (doorman.dev/backend-tls-secret) of each last good version, as it was
  // accepted: it stands in while the current one does not load, so a deleted or broken CA Secret
  // keeps the Ingress's last good routing (and never turns into unverified TLS).
  std::map<ObjectKey, std::map<ObjectKey, StoredObject>> last_good_ca_secrets_;
  std::set<ObjectKey> served_last_good_;  // of the last Translate
  std::map<ObjectKey, std::string> reported_;  // last problem logged per object ("" = none)
  std::map<ObjectKey, std::set<std::string>> reported_warnings_;  // warnings already logged
  std::map<ObjectKey, std::string> reported_unclaimed_;  // report_unclaimed: logged, and why
  TranslateOptions options_;
};

}  // namespace doorman::controller
