// Translate-internal: the compiled form of one object, and the helpers the per-kind compilers
// (loadbalancer.cc, service.cc, ingress.cc) share with the merge (translate.cc). Not a public
// interface: only controller/translate/ includes it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/address.h"
#include "common/cookie_prefix.h"
#include "controller/model/object.h"
#include "controller/translate/json_fields.h"
#include "controller/translate/translate.h"
#include "doorman/v1/routing.pb.h"

namespace doorman::controller::internal {

namespace v1 = doorman::v1;
using nlohmann::json;

inline constexpr const char* kDefaultCookieName = "DOORMAN";
inline constexpr int64_t kMaxWeight = 1000;  // as the CRD's schema (backends[].weight maximum)
inline constexpr int64_t kMaxRetries = 10;
// As the CRD's schema (healthCheck.healthyThreshold/unhealthyThreshold maximum, expectedStatuses
// maxItems): what a cluster refuses, standalone mode refuses too.
inline constexpr int64_t kMaxHealthThreshold = 10;
inline constexpr size_t kMaxExpectedStatuses = 16;

// ---- validators and small helpers (internal.cc) ------------------------------------------------

using doorman::IsDns1123Label;      // common/address.h
using doorman::IsDns1123Subdomain;
using doorman::IsHostPrefixedCookie;  // common/cookie_prefix.h
using doorman::IsObjectName;
using doorman::NodeLocalAddressProblem;
bool IsHostPattern(const std::string& s);  // "api.example.com" or "*.example.com"
bool IsToken(const std::string& s);        // an HTTP header/cookie name
// An origin-form path as sent on a request line or in a Location header (RFC 3986 path-absolute:
// "/" then pchar and "/"; %XX escapes well-formed; no query, fragment, space or control
// character). Empty when valid, else why not.
std::string PathProblem(const std::string& s);
// An Exact or Prefix path match value the router could never match, because requests are matched
// in normal form (docs/l7.md): empty when fine, else why (in words a status message can carry).
// `NotNormalPathProblem`: "//", "/./", "/../", a trailing "/." or "/..", or an encoded '/'
// (%2F) — what the Kubernetes API server refuses in an Ingress path and Gateway API in an
// HTTPRoute path. `UnmatchablePathProblem`: a ';' (requests are matched without ';' path
// parameters), an escape of an unreserved character (matched decoded: "%7E" is "~") or with
// lower-case hex digits (matched upper-case, RFC 3986 §6.2.2.1).
std::string NotNormalPathProblem(const std::string& s);
// The first %XX escape in `s` with a lower-case hex digit ("%c3"), or "" (for regular
// expressions, which are not refused for it: the router upper-cases escapes before matching).
std::string LowercaseEscape(const std::string& s);
std::string UnmatchablePathProblem(const std::string& s);
// A cookie's Path attribute (RFC 6265 §4.1.1 path-value, starting with "/"): PathProblem and
// no ';' (it would end the attribute). Empty when valid, else why not.
std::string CookiePathProblem(const std::string& s);
// A __Host- cookie (common/cookie_prefix.h IsHostPrefixedCookie) is always sent with Path=/: why
// a declared other path is ignored.
std::string HostPrefixedCookiePathWhy(const std::string& name);
// A header field value the proxy may emit (RFC 9110 §5.5): visible characters, spaces and tabs
// inside, obs-text; never CR, LF, NUL or another control character. Empty when valid.
std::string FieldValueProblem(const std::string& s);
inline bool IsIp(const std::string& s) { return IsIpLiteral(s); }
bool IsCidr(const std::string& s);
// The end of the warning an Ingress gets when --ingress-default-certificate is unusable (the
// translator rewrites it when the last accepted version's Secret still serves).
inline constexpr std::string_view kDefaultCertificateLost =
    "served over HTTPS only with the certificates of its own spec.tls entries";
// A CIDR as Kubernetes accepts it in a Service's loadBalancerSourceRanges (ValidateService trims
// spaces, netutils.ParseCIDRSloppy takes IPv4 octets with leading zeros as decimal), in the
// spelling IsCidr takes: " 010.0.0.0/8" → "10.0.0.0/8". nullopt when it is not one.
std::optional<std::string> SloppyCidr(std::string_view s);
bool IsScheduler(const std::string& s);
extern const char* const kSchedulerNames;  // "round-robin, weighted-round-robin, ... or p2c"
std::string Lower(std::string s);
// The object part of the route and backend-set names it generates (docs/controller.md "Naming"):
// "<ns>/<name>" for a LoadBalancer, "<ns>/service:<name>" and "<ns>/ingress:<name>" for the
// others. The kind keeps a Service, an Ingress and a LoadBalancer of one name apart (a name
// cannot hold ':'): their routes would otherwise share names, and the dataplane refuses a
// snapshot whose names repeat.
std::string RouteObjectPath(const ObjectKey& key);
std::string Trim(const std::string& s);
std::string JoinStrings(const std::vector<std::string>& items, const char* sep);
std::vector<std::string> SplitComma(const std::string& s);  // trimmed, empty items kept
inline std::string Q(const std::string& s) { return FieldReader::Quote(s); }

bool IsL7(v1::Protocol p);
const char* Transport(v1::Protocol p);  // "tcp" | "udp": what a port number is unique within
std::optional<v1::Protocol> ParseProtocol(const std::string& s);

// Reads a uint32 field in [lo, hi].
std::optional<uint32_t> RangedInt(FieldReader& r, const json& o, const std::string& path, const char* key,
                                  int64_t lo, int64_t hi, bool required = false);
// Reports an invalid RE2 expression at `field`; returns whether it compiled.
bool CheckRegex(FieldReader& r, const std::string& field, const std::string& re);
// `sloppy`: as Kubernetes takes a Service's loadBalancerSourceRanges (SloppyCidr).
void ReadCidrs(FieldReader& r, const json& o, const std::string& path, const char* key,
               google::protobuf::RepeatedPtrField<std::string>* out, bool sloppy = false);
bool EndpointLess(const v1::Endpoint& a, const v1::Endpoint& b);

// o[key] when `o` is an object and that member is a string; `fallback` otherwise (never throws,
// unlike json::value on a member of another type).
std::string StringOr(const json& o, const char* key, const std::string& fallback = "");
// A creationTimestamp as a point in time (UTC), to microseconds (Kubernetes' finest, MicroTime).
using CreationTime = std::chrono::sys_time<std::chrono::microseconds>;

// An RFC 3339 date-time (section 5.6): "2023-05-05T00:00:00Z", "2023-05-05T00:00:00+02:00",
// optional fractional seconds (digits past microseconds are dropped), "t"/"z" in either case.
// nullopt when it is not one (or names no real date, such as February 30).
std::optional<CreationTime> ParseRfc3339(const std::string& s);

// metadata.generation (0 when absent), metadata.creationTimestamp (nullopt when absent or not
// RFC 3339), metadata.annotations[name] when it is a string.
int64_t GenerationOf(const json& o);
std::optional<CreationTime> CreationTimeOf(const json& o);
std::optional<std::string> AnnotationOf(const json& o, const std::string& name);

// ---- compiled form of one object ---------------------------------------------------------------

struct CompiledListener {
  std::string user_name;  // the object's name for it: "web" (LoadBalancer), "dns" (Service), "http" (Ingress)
  std::string field;      // "spec.listeners[0]"
  // Where a port conflict is reported; "" = field + ".port" (and field + ".<setting>" for settings).
  std::string conflict_field;
  v1::Listener proto;  // everything but routes and owners, which the merge fills in
};

struct CompiledRoute {
  v1::Route proto;
  std::string user_listener;
  size_t decl_index = 0;
  bool catch_all = false;  // Ingress spec.defaultBackend: after every other route of the listener
  // An Ingress's ssl-redirect for the paths of a TLS host that none of its paths match (ingress-
  // nginx redirects the whole server): after every route with the same match keys, never
  // reported as shadowed, dropped with the HTTPS listener.
  bool https_fallback = false;
  // An Ingress HTTP route turned into its ssl-redirect: the route as declared, restored when the
  // object's HTTPS listener cannot be placed (PortConflict), so that HTTP keeps serving.
  std::optional<v1::Route> before_redirect;
};

// A canary Ingress's contribution to the main Ingress's route with the same host and path: the
// merge sets route.policy.canary on it (see AttachCanaries in translate.cc).
struct CanaryAttachment {
  std::string field;                        // "spec.rules[0].http.paths[0]"
  v1::RouteMatch match;                     // host + path, compared with the main route's match
  v1::Canary canary;                        // backends name backend_sets below
  std::vector<v1::BackendSet> backend_sets;
};

struct CompiledObject {
  ObjectKey key;
  int64_t generation = 0;
  std::optional<CreationTime> created;  // nullopt: no (valid) creationTimestamp, counts as newest
  std::vector<CompiledListener> listeners;
  std::vector<CompiledRoute> routes;
  std::vector<v1::BackendSet> backend_sets;
  std::vector<v1::TlsCertificate> certificates;
  std::optional<ObjectKey> backend_ca_secret;  // an Ingress's doorman.dev/backend-tls-secret, loaded
  std::vector<StatusWarning> warnings;
  std::vector<CanaryAttachment> canaries;  // only a canary Ingress has these (and no listeners)
  // An Ingress that is not a canary: what ShareIngressTls needs.
  struct IngressTlsInfo {
    std::vector<std::string> tls_hosts;  // spec.tls[].hosts of entries with a usable certificate
    bool any_host = false;               // such an entry without hosts (it covers every host)
    bool ssl_redirect = true;            // doorman.dev/ssl-redirect
    std::string hsts;                    // doorman.dev/hsts
  };
  std::optional<IngressTlsInfo> ingress_tls;
};

inline const CompiledListener* FindListener(const CompiledObject& c, const std::string& user_name) {
  for (const auto& l : c.listeners) {
    if (l.user_name == user_name) return &l;
  }
  return nullptr;
}

// ---- references: Secrets and Services (internal.cc) ---------------------------------------------

// A kubernetes.io/tls Secret as a TlsCertificate. On failure `cert` is empty, `not_found` says
// whether the Secret is missing (vs. malformed), and `message` names the Secret and the key,
// never the content.
struct CertificateLoad {
  std::optional<v1::TlsCertificate> cert;
  bool not_found = false;
  std::string message;
  // A usable certificate that is not valid now (checked when translated): the warning's reason
  // ("CertificateExpired" | "CertificateNotYetValid") and what to say; "" when valid.
  std::string validity_reason, validity_message;
};
// `only_tls_watched`: the store holds only kubernetes.io/tls Secrets (a cluster: the controller's
// field selector), so "not found" may be a Secret of another type; the message says so.
CertificateLoad LoadCertificate(const ObjectStore& store, const std::string& ns, const std::string& secret_name,
                                bool only_tls_watched = false);
// For each of `hosts`, whether the first certificate of `chain_pem` is valid for it (its DNS SANs,
// else its CN, as a TLS client checks; a "*." pattern host is checked as one name under it).
std::vector<bool> CertificateCoversHosts(const std::string& chain_pem, const std::vector<std::string>& hosts);

// The `ca.crt` of a Secret (cert-manager writes it into kubernetes.io/tls Secrets) as a PEM CA
// bundle, for verifying HTTPS backends. On failure `pem` is empty and `message` says why.
struct CaBundleLoad {
  std::optional<std::string> pem;
  std::string message;
};
CaBundleLoad LoadCaBundle(const ObjectStore& store, const std::string& ns, const std::string& secret_name,
                          bool only_tls_watched = false);

// A Service port, as a backend names it: by number (LoadBalancer, Ingress port.number) or by name
// (Ingress port.name), and the protocol the listener in front of it speaks: a Service may have
// TCP 53 and UDP 53 (kube-dns), and kube-proxy keys a port by number and protocol.
struct ServicePortRef {
  uint32_t number = 0;  // 0 = by name
  std::string name;
  std::string protocol = "TCP";  // "UDP" behind a UDP listener; "TCP" behind every other one
  std::string ToString() const { return number ? std::to_string(number) : name; }
};

// The endpoints of Service `svc`'s port named `port_name` ("" = the unnamed port) with
// `protocol`, from the EndpointSlices labelled kubernetes.io/service-name=<svc> in `ns`, the way
// kube-proxy reads them: the endpoint port is the slice's port of that name; one Endpoint per
// address; conditions ready (absent = ready), serving (absent = ready), terminating; an endpoint
// that is terminating is never ready. FQDN and non-IP addresses are skipped. Deduplicated across
// slices and sorted by (address, port).
std::vector<v1::Endpoint> SliceEndpoints(const ObjectStore& store, const std::string& ns, const std::string& svc,
                                         const std::string& port_name, const std::string& protocol);

// While one lives (on this thread), the EndpointSlices of `store` are found through an index by
// namespace and Service, built once, instead of by a walk over the namespace's slices for each
// Service port (helper-111: a translation was quadratic in the Services of a namespace). Any
// other store (an overlay with saved Secrets) is still walked. The store must not change while
// the scope lives.
class SliceIndexScope {
 public:
  explicit SliceIndexScope(const ObjectStore& store);
  ~SliceIndexScope();
  SliceIndexScope(const SliceIndexScope&) = delete;
  SliceIndexScope& operator=(const SliceIndexScope&) = delete;

 private:
  const SliceIndexScope* previous_;
  std::map<std::pair<std::string, std::string>, std::vector<const nlohmann::json*>> slices_;
  const ObjectStore* store_;
  friend std::vector<const nlohmann::json*> IndexedSlices(const ObjectStore&, const std::string&, const std::string&,
                                                          bool*);
};

// When `svc`'s EndpointSlices list ports but none is named `port_name` with `protocol` (so
// SliceEndpoints finds nothing however many endpoints they hold: a Service port renamed, or a
// hand-written slice whose port name differs), why, naming the ports they have; else nullopt. A
// slice without ports (Kubernetes writes one while a Service has no endpoints) is no evidence.
std::optional<std::string> SlicePortMissing(const ObjectStore& store, const std::string& ns, const std::string& svc,
                                            const std::string& port_name, const std::string& protocol);

// Fills `set` (service and endpoints) for a {service, port} backend: the Service port with
// `port`'s number (or name) and protocol. A missing Service or port, or a port that has only
// another protocol, is a BackendNotFound warning, not an error: the set stays empty until it
// appears.
void ResolveServiceBackend(const ObjectStore& store, const std::string& ns, const std::string& svc,
                           const ServicePortRef& port, const std::string& field, v1::BackendSet* set,
                           std::vector<StatusWarning>* warnings);

// ---- annotations (internal.cc) ------------------------------------------------------------------

// Reads the doorman.dev/* annotations of one object. Kubernetes annotations are strings: a YAML
// number must be quoted. Problems have reason InvalidAnnotation, field
// "metadata.annotations[<name>]" and a message that starts with the annotation's name; the object
// is then not accepted. Unknown doorman.dev/* keys become UnknownAnnotation warnings.
class AnnotationReader {
 public:
  AnnotationReader(const json& object, const std::set<std::string>& known, FieldReader* r,
                   std::vector<StatusWarning>* warnings);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // The value, or nullopt when absent or not a string (reported).
  std::optional<std::string> String(const std::string& name);
  std::optional<bool> Bool(const std::string& name);  // "true" | "false"
  std::optional<int64_t> Int(const std::string& name, int64_t lo, int64_t hi);
  std::optional<uint32_t> DurationMs(const std::string& name);
  void Invalid(const std::string& name, const std::string& message);
  // A valid annotation that has no effect here: an AnnotationIgnored warning.
  // `on`: where it has no effect when it has elsewhere ("the UDP ports"); "" = nowhere.
  void Ignored(const std::string& name, const std::string& why, const std::string& on = "");

  static std::string Field(const std::string& name) { return "metadata.annotations[" + name + "]"; }

 private:
  std::map<std::string, const json*> values_;  // doorman.dev/* only
  FieldReader* r_;
  std::vector<StatusWarning>* warnings_;
};

// ---- per-kind compilers ---------------------------------------------------------------------------

// Everything a compiler reads besides the object itself.
struct CompileContext {
  const ObjectStore& store;
  const TranslateOptions& options;
};

// Each returns nullopt (and appends problems) when the object is not valid; warnings are in the
// compiled object.
std::optional<CompiledObject> CompileLoadBalancer(const ObjectKey& key, const json& o, const CompileContext& ctx,
                                                  std::vector<Problem>* problems);
std::optional<CompiledObject> CompileService(const ObjectKey& key, const json& o, const CompileContext& ctx,
                                             std::vector<Problem>* problems);
std::optional<CompiledObject> CompileIngress(const ObjectKey& key, const json& o, const CompileContext& ctx,
                                             std::vector<Problem>* problems);

// TLS per host across the Ingresses of one namespace, as ingress-nginx applies it (one server per
// host): the routes of `c` (a compiled Ingress) for a host that its own tls[] does not cover but
// another Ingress of its namespace both routes and covers also go on the HTTPS listener, served
// with that Ingress's certificate (the listener is shared by port), and their HTTP routes become
// ssl-redirects unless `doorman.dev/ssl-redirect: "false"`. Not across namespaces: a tenant must
// not turn another tenant's plain HTTP into redirects to a certificate it chose.
// `tls_hosts`: IngressTlsHosts of the Ingresses about to be placed.
using IngressTlsHostMap = std::map<std::pair<std::string, std::string>, ObjectKey>;  // (namespace, tls host) → Ingress
void AddIngressTlsHosts(const CompiledObject& c, IngressTlsHostMap* tls_hosts);  // keeps the first (oldest) per host
void ShareIngressTls(CompiledObject& c, const IngressTlsHostMap& tls_hosts, const TranslateOptions& options);

// The TLS of an HTTP health check of backends that routes reach over TLS (backend_protocol
// HTTPS), so the probes go as the requests do: the routes' CA and server name, else the one exact
// host they serve (`hosts`: the hosts of the routes that use the backends, "" = any host; no SNI
// when there is none). nullopt and *why when a CA is set and no single name is known: a chain
// alone proves nothing about which backend answered.
std::optional<v1::BackendTls> HealthCheckTls(const v1::BackendTls& route_tls, const std::set<std::string>& hosts,
                                             std::string* why);
// How warnings name a backend set's backends: its Service ("ns/svc:port"), else the set's name.
inline std::string BackendsOf(const v1::BackendSet& set) { return set.service().empty() ? set.name() : set.service(); }

// Whether doorman serves this Service (type LoadBalancer, class doorman.dev/lb, or no class and
// --default-lb-class).
bool ClaimsService(const json& service, const TranslateOptions& options);

// The IngressClasses whose spec.controller is doorman's, and which of them is the default.
struct IngressClasses {
  std::set<std::string> ours;
  std::string default_class;                // the oldest of ours marked default; "" = none
  std::vector<ObjectStatus> statuses;       // one per class of ours
};
IngressClasses ResolveIngressClasses(const ObjectStore& store, const TranslateOptions& options);
bool ClaimsIngress(const json& ingress, const IngressClasses& classes, const TranslateOptions& options);
// Why ClaimsIngress is false for `ingress`, in words for a log line.
std::string WhyIngressNotClaimed(const json& ingress, const IngressClasses& classes, const TranslateOptions& options);

}  // namespace doorman::controller::internal
