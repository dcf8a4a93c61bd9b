// Service of type LoadBalancer → CompiledObject (API.md §1.1, the NLB role): one L4 listener
// per spec.ports[] entry, each with one route whose one backend set is that port's endpoints.
#include <map>
#include <optional>
#include <set>

#include "controller/translate/internal.h"
#include "controller/translate/known_fields.h"

namespace doorman::controller::internal {
namespace {

constexpr const char* kAnnScheduler = "doorman.dev/scheduler";
constexpr const char* kAnnLegacySourceRanges = "service.beta.kubernetes.io/load-balancer-source-ranges";
constexpr const char* kAnnProxyProtocol = "doorman.dev/proxy-protocol";
constexpr const char* kAnnIdleTimeout = "doorman.dev/idle-timeout";
constexpr const char* kAnnHealthCheck = "doorman.dev/health-check";
constexpr const char* kAnnTlsPassthroughSni = "doorman.dev/tls-passthrough-sni";

// sessionAffinityConfig.clientIP.timeoutSeconds: Kubernetes' default and maximum.
constexpr int64_t kDefaultClientIpTimeoutSeconds = 10800;
constexpr int64_t kMaxClientIpTimeoutSeconds = 86400;

// What the doorman.dev/* annotations ask for, validated.
struct ServiceAnnotations {
  std::string scheduler;                                             // "" = round-robin
  v1::ProxyProtocolVersion proxy_protocol = v1::PROXY_PROTOCOL_NONE;  // sent to backends
  uint32_t idle_timeout_ms = 0;
  v1::HealthCheck health_check;              // protocol NONE = no active check
  std::vector<std::string> passthrough_sni;  // non-empty: TCP ports become TLS passthrough
};

ServiceAnnotations ReadServiceAnnotations(AnnotationReader& a) {
  ServiceAnnotations out;
  if (auto s = a.String(kAnnScheduler)) {
    if (IsScheduler(*s)) {
      out.scheduler = *s;
    } else {
      a.Invalid(kAnnScheduler, "unknown scheduler " + Q(*s) + " (want " + kSchedulerNames + ")");
    }
  }
  if (auto s = a.String(kAnnProxyProtocol)) {
    if (*s == "v1") {
      out.proxy_protocol = v1::PROXY_PROTOCOL_V1;
    } else if (*s == "v2") {
      out.proxy_protocol = v1::PROXY_PROTOCOL_V2;
    } else {
      a.Invalid(kAnnProxyProtocol, "unknown PROXY protocol version " + Q(*s) + " (want v1 or v2)");
    }
  }
  if (auto d = a.DurationMs(kAnnIdleTimeout)) {
    if (*d == 0) {
      a.Invalid(kAnnIdleTimeout, "must be greater than 0 (omit it for the default)");
    } else {
      out.idle_timeout_ms = *d;
    }
  }
  if (auto s = a.String(kAnnHealthCheck)) {
    const std::string path = s->rfind("http:", 0) == 0 ? s->substr(5) : "";
    if (*s == "tcp") {
      out.health_check.set_protocol(v1::HealthCheck::TCP);
    } else if (*s == "grpc") {  // grpc.health.v1 Check of the whole server (service "")
      out.health_check.set_protocol(v1::HealthCheck::GRPC);
    } else if (!path.empty() && path.front() == '/' && path.find_first_of(" \t") == std::string::npos) {
      out.health_check.set_protocol(v1::HealthCheck::HTTP);
      out.health_check.set_path(path);
    } else {
      a.Invalid(kAnnHealthCheck, "invalid health check " + Q(*s) + " (want \"tcp\", \"grpc\" or \"http:<path>\", e.g. \"http:/healthz\")");
    }
  }
  if (auto s = a.String(kAnnTlsPassthroughSni)) {
    for (const auto& host : SplitComma(*s)) {
      if (!IsHostPattern(host)) {
        a.Invalid(kAnnTlsPassthroughSni, "invalid host " + Q(host) +
                                             " (want comma-separated lowercase DNS names, optionally starting with \"*.\")");
        out.passthrough_sni.clear();
        break;
      }
      out.passthrough_sni.push_back(host);
    }
  }
  return out;
}

}  // namespace

bool ClaimsService(const json& service, const TranslateOptions& options) {
  auto spec = service.find("spec");
  if (spec == service.end() || !spec->is_object() || StringOr(*spec, "type") != "LoadBalancer") return false;
  auto cls = spec->find("loadBalancerClass");
  if (cls == spec->end() || cls->is_null()) return options.default_lb_class;
  return cls->is_string() && *cls == options.load_balancer_class;
}

namespace {

// service.beta.kubernetes.io/load-balancer-source-ranges: comma-separated CIDRs; nullopt when
// absent. A value that is not a CIDR is refused (Invalid), not skipped: a typo must not widen
// access.
std::optional<std::vector<std::string>> LegacySourceRanges(const json& o, FieldReader& r) {
  const json* meta = o.contains("metadata") && o["metadata"].is_object() ? &o["metadata"] : nullptr;
  if (!meta || !meta->contains("annotations") || !(*meta)["annotations"].is_object()) return std::nullopt;
  const json& annotations = (*meta)["annotations"];
  auto it = annotations.find(kAnnLegacySourceRanges);
  if (it == annotations.end()) return std::nullopt;
  const std::string field = AnnotationReader::Field(kAnnLegacySourceRanges);
  if (!it->is_string()) {
    r.Invalid(field, "must be a string of comma-separated CIDRs, not " + FieldReader::TypeName(*it));
    return std::vector<std::string>{};
  }
  std::vector<std::string> out;
  const std::string value = it->get<std::string>();
  // As the API server validates it: only a blank value means "everyone"; an empty item ("," or
  // "a,,b") is refused there, so here too (helper-131: "," opened the Service to everyone).
  if (value.find_first_not_of(" \t") == std::string::npos) return out;
  for (const std::string& item : SplitComma(value)) {
    if (item.empty()) {
      r.Invalid(field, "an empty item in " + Q(value) + " (want comma-separated CIDRs)");
      continue;
    }
    const auto cidr = SloppyCidr(item);  // as kube-proxy reads it
    if (!cidr) {
      r.Invalid(field, "invalid CIDR " + Q(item) + " (want e.g. 192.0.2.0/24 or 2001:db8::/32)");
      continue;
    }
    out.push_back(*cidr);
  }
  return out;
}

}  // namespace

std::optional<CompiledObject> CompileService(const ObjectKey& key, const json& o, const CompileContext& ctx,
                                             std::vector<Problem>* problems) {
  FieldReader r;
  if (ctx.options.check_known_fields) CheckKnownFields("Service", o, r);
  CompiledObject c;
  c.key = key;
  c.generation = GenerationOf(o);
  c.created = CreationTimeOf(o);
  const json* spec = r.Member(o, "", "spec", true);
  const json* ports = spec ? r.Array(*spec, "spec", "ports", true) : nullptr;

  // An unsupported protocol is the Service's first problem: it is not routed at all (API.md §1.1),
  // rather than routed without the ports doorman cannot serve.
  if (ports) {
    for (size_t i = 0; i < ports->size(); ++i) {
      const std::string p = FieldReader::Index("spec.ports", i);
      const std::string protocol = StringOr((*ports)[i], "protocol", "TCP");
      if (protocol != "TCP" && protocol != "UDP") {
        r.Fail("UnsupportedProtocol", p + ".protocol",
               "protocol " + Q(protocol) + " is not supported (doorman balances TCP and UDP): this version of the "
                   "Service is refused as a whole, not served without that port");
      }
    }
  }

  AnnotationReader ann(o, {kAnnScheduler, kAnnProxyProtocol, kAnnIdleTimeout, kAnnHealthCheck, kAnnTlsPassthroughSni},
                       &r, &c.warnings);
  const ServiceAnnotations sa = ReadServiceAnnotations(ann);
  if (spec) {
    if (const auto ip = r.String(*spec, "spec", "loadBalancerIP"); ip && !ip->empty()) {
      c.warnings.push_back({"FieldIgnored", "spec.loadBalancerIP",
                            "doorman does not assign addresses: the Service is served on every dataplane's address "
                            "(spec.loadBalancerIP, deprecated since Kubernetes 1.24, is not used)"});
    }
  }
  if (!spec || !ports) {
    problems->insert(problems->end(), r.problems.begin(), r.problems.end());
    return std::nullopt;
  }

  v1::Stickiness stickiness;
  const std::optional<std::string> affinity = r.String(*spec, "spec", "sessionAffinity");
  if (affinity) {
    if (*affinity == "ClientIP") {
      int64_t seconds = kDefaultClientIpTimeoutSeconds;
      if (const json* cfg = r.Member(*spec, "spec", "sessionAffinityConfig")) {
        if (const json* ip = r.Member(*cfg, "spec.sessionAffinityConfig", "clientIP")) {
          auto t = RangedInt(r, *ip, "spec.sessionAffinityConfig.clientIP", "timeoutSeconds", 1, kMaxClientIpTimeoutSeconds);
          if (t) seconds = *t;
        }
      }
      stickiness.set_type(v1::Stickiness::SOURCE_IP);
      stickiness.set_ttl_ms(static_cast<uint32_t>(seconds * 1000));
    } else if (*affinity != "None") {
      r.Unsupported("spec.sessionAffinity", "unknown session affinity " + Q(*affinity) + " (want None or ClientIP)");
    }
  }
  if (affinity.value_or("None") == "None" && r.Member(*spec, "spec", "sessionAffinityConfig") != nullptr) {
    // The API server refuses this; from a file it is a stickiness the user expects and would not get.
    c.warnings.push_back({"FieldIgnored", "spec.sessionAffinityConfig",
                          "applies only with spec.sessionAffinity: ClientIP, which is not set: connections are not "
                          "pinned to an endpoint"});
  }
  bool local_only = false;
  if (auto policy = r.String(*spec, "spec", "externalTrafficPolicy")) {
    if (*policy == "Local") {
      local_only = true;
    } else if (*policy != "Cluster") {
      r.Unsupported("spec.externalTrafficPolicy", "unknown traffic policy " + Q(*policy) + " (want Cluster or Local)");
    }
  }
  google::protobuf::RepeatedPtrField<std::string> source_ranges;
  ReadCidrs(r, *spec, "spec", "loadBalancerSourceRanges", &source_ranges, /*sloppy=*/true);
  // The annotation kube-proxy and the cloud providers' controllers honour when the field is empty
  // (GetLoadBalancerSourceRanges): a Service that relies on it is not opened to every client.
  if (auto ranges = LegacySourceRanges(o, r)) {
    if (!spec->contains("loadBalancerSourceRanges") || (*spec)["loadBalancerSourceRanges"].empty()) {
      for (auto& cidr : *ranges) source_ranges.Add(std::move(cidr));
    } else {
      c.warnings.push_back({"AnnotationIgnored", AnnotationReader::Field(kAnnLegacySourceRanges),
                            "spec.loadBalancerSourceRanges is set and takes precedence (as for kube-proxy)"});
    }
  }

  if (ports->empty()) r.Invalid("spec.ports", "a Service of type LoadBalancer needs at least one port");
  std::map<std::string, std::string> names;                       // port name → field
  std::map<std::pair<std::string, uint32_t>, std::string> taken;  // (transport, port) → field
  bool udp_ignored_passthrough = false;
  bool udp_ignored_proxy = false;
  bool udp_ignored_health = false;
  for (size_t i = 0; i < ports->size(); ++i) {
    const json& pj = (*ports)[i];
    const std::string p = FieldReader::Index("spec.ports", i);
    if (!pj.is_object()) {
      r.Invalid(p, "must be an object, not " + FieldReader::TypeName(pj));
      continue;
    }
    const std::string protocol = r.String(pj, p, "protocol").value_or("TCP");
    if (protocol != "TCP" && protocol != "UDP") continue;  // reported above
    const std::string port_name = r.String(pj, p, "name").value_or("");
    if (!port_name.empty()) {
      if (!IsDns1123Label(port_name)) {
        r.Invalid(p + ".name", Q(port_name) + " is not a valid port name (lowercase letters, digits and '-')");
      } else if (auto [it, fresh] = names.emplace(port_name, p); !fresh) {
        r.Invalid(p + ".name", "duplicate port name " + Q(port_name) + " (also " + it->second + ")");
      }
    } else if (ports->size() > 1) {
      r.Invalid(p + ".name", "is required when a Service has more than one port");
    }
    auto port = RangedInt(r, pj, p, "port", 1, 65535, true);
    if (!port) continue;

    const bool udp = protocol == "UDP";
    const v1::Protocol proto = udp ? v1::UDP : sa.passthrough_sni.empty() ? v1::TCP : v1::TLS;
    if (auto [it, fresh] = taken.emplace(std::make_pair(std::string(Transport(proto)), *port), p); !fresh) {
      r.Invalid(p + ".port", "port " + std::to_string(*port) + "/" + protocol + " is already used by " + it->second);
      continue;
    }
    udp_ignored_passthrough = udp_ignored_passthrough || (udp && !sa.passthrough_sni.empty());
    udp_ignored_proxy = udp_ignored_proxy || (udp && sa.proxy_protocol != v1::PROXY_PROTOCOL_NONE);
    udp_ignored_health = udp_ignored_health || (udp && sa.health_check.protocol() != v1::HealthCheck::NONE);

    CompiledListener cl;
    cl.user_name = port_name.empty() ? std::to_string(*port) : port_name;
    cl.field = p;
    v1::Listener& lp = cl.proto;
    lp.set_name(Lower(v1::Protocol_Name(proto)) + "-" + std::to_string(*port));
    lp.set_port(*port);
    lp.set_protocol(proto);
    if (!udp && sa.proxy_protocol != v1::PROXY_PROTOCOL_NONE) lp.mutable_proxy_protocol()->set_send(sa.proxy_protocol);
    lp.set_idle_timeout_ms(sa.idle_timeout_ms);
    *lp.mutable_allowed_source_ranges() = source_ranges;

    CompiledRoute cr;
    cr.decl_index = i;
    cr.user_listener = cl.user_name;
    v1::Route& route = cr.proto;
    route.set_name(RouteObjectPath(key) + "/" + cl.user_name);
    route.set_listener(lp.name());
    if (proto == v1::TLS) {
      for (const auto& host : sa.passthrough_sni) route.mutable_match()->add_sni(host);
    }
    if (!sa.scheduler.empty()) route.mutable_policy()->set_scheduler(sa.scheduler);
    if (stickiness.type() != v1::Stickiness::NONE) *route.mutable_policy()->mutable_stickiness() = stickiness;

    v1::BackendSet set;
    set.set_name(route.name() + "/0");
    set.set_service(key.ns + "/" + key.name + ":" + std::to_string(*port));
    set.set_local_only(local_only);
    // A TCP/HTTP/gRPC probe cannot tell whether a UDP service answers: UDP ports are not checked.
    if (sa.health_check.protocol() != v1::HealthCheck::NONE && !udp) *set.mutable_health_check() = sa.health_check;
    for (auto& ep : SliceEndpoints(ctx.store, key.ns, key.name, port_name, protocol)) *set.add_endpoints() = std::move(ep);
    if (set.endpoints_size() == 0) {
      if (auto why = SlicePortMissing(ctx.store, key.ns, key.name, port_name, protocol)) {
        c.warnings.push_back({"BackendNotFound", p + (port_name.empty() ? ".port" : ".name"), *why});
      }
    }
    auto* wb = route.add_backends();
    wb->set_backend_set(set.name());
    wb->set_weight(1);

    c.listeners.push_back(std::move(cl));
    c.routes.push_back(std::move(cr));
    c.backend_sets.push_back(std::move(set));
  }
  if (udp_ignored_passthrough) {
    ann.Ignored(kAnnTlsPassthroughSni, "UDP ports are not TLS, they stay UDP listeners", "the UDP ports");
  }
  if (udp_ignored_proxy) {
    ann.Ignored(kAnnProxyProtocol, "no PROXY protocol header is sent on UDP ports", "the UDP ports");
  }
  if (udp_ignored_health) {
    ann.Ignored(kAnnHealthCheck, "UDP ports are not health-checked (a TCP, HTTP or gRPC probe cannot tell whether a "
                                 "UDP service answers); their endpoints count as healthy",
                "the UDP ports");
  }
  if (!r.problems.empty()) {
    problems->insert(problems->end(), r.problems.begin(), r.problems.end());
    return std::nullopt;
  }
  return c;
}

}  // namespace doorman::controller::internal
