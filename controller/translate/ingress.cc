// Ingress (+ IngressClass, Secret) → CompiledObject (API.md §1.2, the ALB role). Every claimed
// Ingress routes on the two shared L7 listeners (--ingress-http-port, and --ingress-https-port
// when it has a usable tls[] entry or --ingress-default-certificate is usable); the merge in
// translate.cc joins them with every other object on those ports.
#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "controller/translate/internal.h"
#include "controller/translate/known_fields.h"

namespace doorman::controller::internal {
namespace {

constexpr const char* kAnnSslRedirect = "doorman.dev/ssl-redirect";
constexpr const char* kAnnRewriteTarget = "doorman.dev/rewrite-target";
constexpr const char* kAnnAffinity = "doorman.dev/affinity";
constexpr const char* kAnnAffinityCookieName = "doorman.dev/affinity-cookie-name";
constexpr const char* kAnnAffinityCookieTtl = "doorman.dev/affinity-cookie-ttl";
constexpr const char* kAnnAffinityCookiePath = "doorman.dev/affinity-cookie-path";
constexpr const char* kAnnCanary = "doorman.dev/canary";
constexpr const char* kAnnCanaryWeight = "doorman.dev/canary-weight";
constexpr const char* kAnnCanaryByHeader = "doorman.dev/canary-by-header";
constexpr const char* kAnnCanaryByHeaderValue = "doorman.dev/canary-by-header-value";
constexpr std::size_t kMaxCanaryHeaderValues = 16;
constexpr const char* kAnnCanaryByCookie = "doorman.dev/canary-by-cookie";
constexpr const char* kAnnRateLimitRps = "doorman.dev/rate-limit-rps";
constexpr const char* kAnnRateLimitBurst = "doorman.dev/rate-limit-burst";
constexpr const char* kAnnRequestTimeout = "doorman.dev/request-timeout";
constexpr const char* kAnnRetries = "doorman.dev/retries";
constexpr const char* kAnnBackendProtocol = "doorman.dev/backend-protocol";
constexpr const char* kAnnHealthCheckPath = "doorman.dev/health-check-path";
constexpr const char* kAnnBackendTlsSecret = "doorman.dev/backend-tls-secret";
constexpr const char* kAnnBackendTlsServerName = "doorman.dev/backend-tls-server-name";
constexpr const char* kAnnHsts = "doorman.dev/hsts";

constexpr const char* kAnnLegacyClass = "kubernetes.io/ingress.class";
constexpr const char* kAnnDefaultClass = "ingressclass.kubernetes.io/is-default-class";

// ingress-nginx's ssl-redirect status code: 308 keeps the method and body.
constexpr uint32_t kSslRedirectStatus = 308;
constexpr int64_t kMaxRate = 1'000'000'000;

// What the doorman.dev/* annotations of one Ingress ask for, validated.
struct IngressAnnotations {
  bool ssl_redirect = true;  // only matters for hosts with a certificate
  std::string rewrite_target;
  v1::RoutePolicy policy;  // stickiness, retries, timeouts, rate limit, backend protocol
  bool canary = false;
  v1::Canary canary_rule;  // header, cookie, weight; backends are filled per path
  std::string health_check_path;
  std::string backend_tls_secret;  // backend-protocol HTTPS: verify backends with this Secret's ca.crt
  std::string hsts;                // Strict-Transport-Security value on HTTPS responses ("" = none)
};

// A Strict-Transport-Security value (RFC 6797 §6.1): max-age=<seconds> (required), and
// includeSubDomains / preload, separated by ';'. The problem, or "".
std::string HstsProblem(const std::string& value) {
  bool max_age = false;
  std::set<std::string> seen;  // RFC 6797 §6.1: a directive appears at most once (else the UA ignores the header)
  for (size_t start = 0; start <= value.size();) {
    const size_t end = std::min(value.find(';', start), value.size());
    const std::string d = Trim(value.substr(start, end - start));
    start = end + 1;
    if (d.empty()) continue;
    const std::string lower = Lower(d);
    if (!seen.insert(lower.substr(0, lower.find('='))).second) return "directive " + Q(d) + " appears twice";
    if (lower.rfind("max-age=", 0) == 0) {
      std::string n = d.substr(8);
      // RFC 6797 §6.1.1: delta-seconds, as a token or a quoted-string ("max-age=\"100\"").
      if (n.size() >= 2 && n.front() == '"' && n.back() == '"') n = n.substr(1, n.size() - 2);
      if (n.empty() || n.size() > 10 || n.find_first_not_of("0123456789") != std::string::npos) {
        return "max-age must be a number of seconds, not " + Q(n);
      }
      max_age = true;
    } else if (lower != "includesubdomains" && lower != "preload") {
      return "unknown directive " + Q(d) + " (want max-age=N, includeSubDomains, preload)";
    }
  }
  return max_age ? "" : "needs max-age=<seconds> (e.g. \"max-age=31536000; includeSubDomains\")";
}

IngressAnnotations ReadIngressAnnotations(AnnotationReader& a, std::vector<StatusWarning>* warnings) {
  IngressAnnotations out;
  if (auto v = a.Bool(kAnnSslRedirect)) out.ssl_redirect = *v;
  if (auto s = a.String(kAnnHsts)) {
    if (const std::string why = HstsProblem(*s); !why.empty()) {
      a.Invalid(kAnnHsts, why);
    } else {
      out.hsts = Trim(*s);
    }
  }
  if (auto s = a.String(kAnnRewriteTarget)) {
    if (s->find('$') != std::string::npos) {
      a.Invalid(kAnnRewriteTarget, "capture groups such as $1 are not supported in " + Q(*s) +
                                       " (the target replaces the matched path prefix)");
    } else if (const auto why = PathProblem(*s); !why.empty()) {
      a.Invalid(kAnnRewriteTarget, "path " + Q(*s) + " " + why);
    } else {
      out.rewrite_target = *s;
    }
  }
  // The values of annotations that depend on another are checked whether or not it is set (as
  // the canary ones are), so a bad one is reported now, not when the prerequisite is added.
  std::optional<std::string> cookie_name = a.String(kAnnAffinityCookieName);
  if (cookie_name && !IsToken(*cookie_name)) {
    a.Invalid(kAnnAffinityCookieName, "invalid cookie name " + Q(*cookie_name));
    cookie_name.reset();
  }
  const std::optional<uint32_t> cookie_ttl = a.DurationMs(kAnnAffinityCookieTtl);
  std::optional<std::string> cookie_path = a.String(kAnnAffinityCookiePath);
  if (cookie_path) {
    if (const auto why = CookiePathProblem(*cookie_path); !why.empty()) {
      a.Invalid(kAnnAffinityCookiePath, "cookie path " + Q(*cookie_path) + " " + why);
      cookie_path.reset();
    }
  }
  if (auto s = a.String(kAnnAffinity)) {
    if (*s == "cookie") {
      auto* st = out.policy.mutable_stickiness();
      st->set_type(v1::Stickiness::COOKIE);
      st->set_cookie_name(cookie_name.value_or(kDefaultCookieName));
      if (cookie_ttl) st->set_ttl_ms(*cookie_ttl);
      if (cookie_path) st->set_cookie_path(*cookie_path);  // else each path's own (AddRoutes)
      if (cookie_path && *cookie_path != "/" && IsHostPrefixedCookie(st->cookie_name())) {
        a.Ignored(kAnnAffinityCookiePath, HostPrefixedCookiePathWhy(st->cookie_name()));
      }
    } else {
      a.Invalid(kAnnAffinity, "unknown affinity " + Q(*s) + " (want cookie)");
    }
  } else {
    // Only those with a valid value (a bad one is already InvalidAnnotation).
    for (const auto& [k, valid] : {std::pair{kAnnAffinityCookieName, cookie_name.has_value()},
                                   std::pair{kAnnAffinityCookieTtl, cookie_ttl.has_value()},
                                   std::pair{kAnnAffinityCookiePath, cookie_path.has_value()}}) {
      if (valid) a.Ignored(k, std::string("needs ") + kAnnAffinity + ": cookie");
    }
  }
  const std::optional<int64_t> burst = a.Int(kAnnRateLimitBurst, 0, kMaxRate);
  if (auto rps = a.Int(kAnnRateLimitRps, 1, kMaxRate)) {
    auto* rl = out.policy.mutable_rate_limit();
    rl->set_requests_per_second(static_cast<uint32_t>(*rps));
    rl->set_key("ClientIP");
    if (burst) rl->set_burst(static_cast<uint32_t>(*burst));
  } else if (!a.Has(kAnnRateLimitRps) && burst) {
    a.Ignored(kAnnRateLimitBurst, std::string("needs ") + kAnnRateLimitRps);
  }
  if (auto t = a.DurationMs(kAnnRequestTimeout)) {
    if (*t == 0) {
      // The CRD refuses timeouts.request 0. Not refused here (an Ingress that routed with it
      // before keeps routing), but said: 0 is not "no timeout".
      a.Ignored(kAnnRequestTimeout, "0 is not \"no timeout\" (there is none); the default request timeout (60s) applies");
    } else {
      out.policy.mutable_timeouts()->set_request_ms(*t);
    }
  }
  if (auto n = a.Int(kAnnRetries, 0, kMaxRetries)) {
    auto* rt = out.policy.mutable_retries();
    rt->set_attempts(static_cast<uint32_t>(*n));
    if (*n > 0) {
      for (const char* on : {"connect-failure", "reset", "502", "503", "504"}) rt->add_on(on);
    }
  }
  if (auto s = a.String(kAnnBackendProtocol)) {
    // Case-insensitive, as ingress-nginx reads it ("https" is common in its manifests).
    std::transform(s->begin(), s->end(), s->begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (*s == "HTTP" || *s == "HTTPS" || *s == "GRPC") {
      if (*s != "HTTP") out.policy.set_backend_protocol(*s);
      if (*s == "GRPC") {
        warnings->push_back({"NotImplemented", AnnotationReader::Field(kAnnBackendProtocol),
                             "gRPC backends need HTTP/2, which doorman does not speak to backends yet: requests go "
                             "out as HTTP/1.1, which a gRPC server refuses"});
      }
    } else {
      a.Invalid(kAnnBackendProtocol, "unknown backend protocol " + Q(*s) + " (want HTTP, HTTPS or GRPC)");
    }
  }
  const bool https_backends = out.policy.backend_protocol() == "HTTPS";
  if (auto s = a.String(kAnnBackendTlsSecret)) {
    if (!IsObjectName(*s)) {
      a.Invalid(kAnnBackendTlsSecret, Q(*s) + " is not a valid Secret name");
    } else if (!https_backends) {
      a.Ignored(kAnnBackendTlsSecret, std::string("needs ") + kAnnBackendProtocol + ": HTTPS");
    } else {
      out.backend_tls_secret = *s;
    }
  }
  if (auto s = a.String(kAnnBackendTlsServerName)) {
    if (!IsIp(*s) && !IsDns1123Subdomain(Lower(*s))) {  // not "name:port", not "a..b"
      a.Invalid(kAnnBackendTlsServerName, "invalid server name " + Q(*s) + " (want a DNS name or an IP address)");
    } else if (!https_backends) {
      a.Ignored(kAnnBackendTlsServerName, std::string("needs ") + kAnnBackendProtocol + ": HTTPS");
    } else {
      out.policy.mutable_backend_tls()->set_server_name(*s);
    }
  }
  if (auto s = a.String(kAnnHealthCheckPath)) {
    if (const auto why = PathProblem(s->substr(0, s->find('?'))); !why.empty() || !FieldValueProblem(*s).empty() ||
                                                                s->find(' ') != std::string::npos) {
      a.Invalid(kAnnHealthCheckPath, "path " + Q(*s) + " " + (why.empty() ? "must not contain spaces or control characters" : why));
    } else {
      out.health_check_path = *s;
    }
  }

  // Canary (ingress-nginx semantics): header first ("always" → canary, "never" → not), then
  // cookie (same values), then weight.
  if (auto v = a.Bool(kAnnCanary)) out.canary = *v;
  if (auto w = a.Int(kAnnCanaryWeight, 0, 100)) out.canary_rule.set_weight_percent(static_cast<uint32_t>(*w));
  if (auto h = a.String(kAnnCanaryByHeader)) {
    if (IsToken(*h)) {
      out.canary_rule.set_header(Lower(*h));
    } else {
      a.Invalid(kAnnCanaryByHeader, "invalid header name " + Q(*h));
    }
  }
  // canary-by-header-value (ingress-nginx; here also a comma-separated list): these values of the
  // canary-by-header header select the canary instead of "always".
  if (auto vs = a.String(kAnnCanaryByHeaderValue)) {
    // On an Ingress that is no canary (as ingress-nginx, which ignores it there) it is a warning
    // (helper-131: the whole Ingress was refused); on a canary, a mistake that is refused.
    const bool canary_ingress = a.Has(kAnnCanary) ? out.canary : (a.Has(kAnnCanaryWeight) || a.Has(kAnnCanaryByCookie));
    if (!a.Has(kAnnCanaryByHeader) && !canary_ingress) {
      a.Ignored(kAnnCanaryByHeaderValue,
                std::string(a.Has(kAnnCanary) ? "doorman.dev/canary turns the canary off"
                                              : "this is not a canary Ingress (no canary-weight, canary-by-header or "
                                                "canary-by-cookie)") +
                    ", and it needs " + kAnnCanaryByHeader);
    } else if (!a.Has(kAnnCanaryByHeader)) {
      a.Invalid(kAnnCanaryByHeaderValue, "needs " + std::string(kAnnCanaryByHeader) + " (the header whose values it lists)");
    } else {
      std::vector<std::string> values;
      std::string why;
      for (auto& v : SplitComma(*vs)) {
        if (v.empty()) {
          why = "an empty value";
        } else if (std::any_of(v.begin(), v.end(), [](unsigned char ch) { return ch < 0x21 || ch > 0x7e; })) {
          why = "value " + Q(v) + " is not visible ASCII without spaces";
        } else {
          values.push_back(std::move(v));
          continue;
        }
        break;
      }
      if (why.empty() && values.size() > kMaxCanaryHeaderValues) why = "more than 16 values";
      if (!why.empty()) {
        a.Invalid(kAnnCanaryByHeaderValue, why + " (want e.g. \"v2\" or \"beta,internal\")");
      } else {
        for (auto& v : values) out.canary_rule.add_header_values(std::move(v));
      }
    }
  }
  if (auto ck = a.String(kAnnCanaryByCookie)) {
    if (IsToken(*ck)) {
      out.canary_rule.set_cookie(*ck);
    } else {
      a.Invalid(kAnnCanaryByCookie, "invalid cookie name " + Q(*ck));
    }
  }
  const char* const canary_keys[] = {kAnnCanaryWeight, kAnnCanaryByHeader, kAnnCanaryByCookie};
  const bool any_canary_key = std::any_of(std::begin(canary_keys), std::end(canary_keys), [&a](const char* k) { return a.Has(k); });
  // API.md names canary-weight, -by-header and -by-cookie alone: any of them makes the Ingress a
  // canary unless doorman.dev/canary says otherwise. ingress-nginx also wants canary: "true",
  // which is accepted; canary: "false" turns the canary off while keeping its settings.
  if (!a.Has(kAnnCanary) && any_canary_key) out.canary = true;
  if (!out.canary) {
    // doorman.dev/canary is false here ("false", "0"...; an invalid value already refuses the
    // Ingress).
    const std::string why = std::string(kAnnCanary) + " turns the canary off (this is not a canary Ingress)";
    for (const char* k : canary_keys) {
      if (a.Has(k)) a.Ignored(k, why);
    }
    // (Without canary-by-header, canary-by-header-value was warned above already.)
    if (a.Has(kAnnCanaryByHeaderValue) && a.Has(kAnnCanary) && a.Has(kAnnCanaryByHeader)) {
      a.Ignored(kAnnCanaryByHeaderValue, why);
    }
  } else {
    if (!any_canary_key) {
      warnings->push_back({"AnnotationIgnored", AnnotationReader::Field(kAnnCanary),
                           "a canary Ingress without canary-weight, canary-by-header or canary-by-cookie "
                           "receives no traffic"});
    }
    // The main Ingress's policy applies to canary traffic too, as in ingress-nginx.
    for (const char* k : {kAnnSslRedirect, kAnnRewriteTarget, kAnnAffinity, kAnnAffinityCookieName,
                          kAnnAffinityCookieTtl, kAnnAffinityCookiePath, kAnnRateLimitRps, kAnnRateLimitBurst, kAnnRequestTimeout, kAnnRetries,
                          kAnnBackendProtocol, kAnnBackendTlsSecret, kAnnBackendTlsServerName, kAnnHsts}) {
      if (a.Has(k)) a.Ignored(k, "a canary Ingress uses the policy of the main Ingress it attaches to");
    }
  }
  return out;
}

// Whether the tls[] host or pattern `pattern` covers `host`: equal, or "*.example.com" covering
// exactly one more label, as a certificate's wildcard does.
bool TlsHostCovers(const std::string& pattern, const std::string& host) {
  if (pattern == host) return true;
  const auto dot = host.find('.');
  return pattern.rfind("*.", 0) == 0 && !host.empty() && host[0] != '*' && dot != std::string::npos &&
         host.substr(dot) == pattern.substr(1);
}

// The affinity cookie's Path for a route without doorman.dev/affinity-cookie-path: the path it
// matches, as ingress-nginx's session-cookie-path defaults to the location's path. Two paths of
// one host to different Services then each keep their own cookie; a Path=/ cookie would be
// overwritten by each in turn and pin nothing. A Prefix without its trailing "/" ("/api/" → "/api",
// which the browser sends for "/api" and "/api/x" alike, segment-wise as the Prefix matches); "/"
// for a regular expression, no path, or a path a cookie cannot carry.
std::string StickyCookiePath(const v1::RouteMatch& match) {
  if (!match.has_path()) return "/";
  std::string path = match.path().value();
  if (match.path().type() == v1::PathMatch::PREFIX) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
  } else if (match.path().type() != v1::PathMatch::EXACT) {
    return "/";
  }
  return CookiePathProblem(path).empty() ? path : "/";
}

// --ingress-trusted-proxies on an Ingress route: whose X-Forwarded-For it keeps (mode Append, as
// untrusted routes) and whose X-Forwarded-Proto: https skips its ssl-redirect.
void TrustIngressProxies(v1::Route& route, const TranslateOptions& options) {
  for (const auto& cidr : options.ingress_trusted_proxies) route.mutable_forwarded_headers()->add_trusted_proxies(cidr);
}

// Turns an Ingress's HTTP route into its ssl-redirect: 308 to https (the HTTPS port unless 443).
void MakeSslRedirect(CompiledRoute& http, const TranslateOptions& options) {
  if (!http.before_redirect) http.before_redirect = http.proto;
  v1::Route& route = http.proto;
  const bool behind_balancer = !options.ingress_trusted_proxies.empty();
  if (!behind_balancer) {
    route.clear_backends();
    route.clear_policy();
    route.clear_filters();
  }
  auto* rd = route.mutable_filters()->mutable_redirect();
  // Behind a trusted balancer that terminated TLS (X-Forwarded-Proto: https), the route's
  // backends serve the request instead (ingress-nginx's use-forwarded-headers): a redirect
  // would send the client back to where it is, for ever.
  rd->set_unless_forwarded_https(behind_balancer);
  rd->set_enabled(true);
  rd->set_scheme("https");
  if (options.ingress_https_port != 443) rd->set_port(options.ingress_https_port);
  rd->set_status_code(kSslRedirectStatus);
}

// The HTTPS twin of an Ingress route (`route` as declared, before any redirect), on `listener`.
CompiledRoute HttpsTwin(v1::Route route, const std::string& listener, const std::string& hsts, size_t decl_index,
                        bool catch_all) {
  CompiledRoute https;
  https.proto = std::move(route);
  https.proto.set_name(https.proto.name() + "-https");
  if (!hsts.empty()) {  // HTTPS responses only: a browser ignores it over plain HTTP (RFC 6797 §8.1)
    (*https.proto.mutable_filters()->mutable_response_headers()->mutable_set())["strict-transport-security"] = hsts;
  }
  https.proto.set_listener(listener);
  https.user_listener = "https";
  https.decl_index = decl_index;
  https.catch_all = catch_all;
  return https;
}

// The Ingress HTTPS listener (--ingress-https-port) with `certificate_names`; `field`: what
// declared it (spec.tls, or spec.rules for one shared from another Ingress's tls[]).
CompiledListener IngressHttpsListener(const TranslateOptions& options, const std::vector<std::string>& certificate_names,
                                      const std::string& field = "spec.tls") {
  CompiledListener https;
  https.user_name = "https";
  https.field = field;
  https.conflict_field = field;
  https.proto.set_port(options.ingress_https_port);
  https.proto.set_protocol(v1::HTTPS);
  https.proto.set_name("https-" + std::to_string(options.ingress_https_port));
  if (options.ingress_proxy_protocol) https.proto.mutable_proxy_protocol()->set_accept(true);
  for (const auto& name : certificate_names) https.proto.mutable_tls()->add_certificates(name);
  // No usable --ingress-default-certificate (the caller clears this when there is one): a client
  // without a known SNI gets the dataplane's self-signed certificate, not a tenant's.
  https.proto.mutable_tls()->set_default_self_signed(true);
  return https;
}

// The certificates of an Ingress's tls[] and which hosts they cover (for ssl-redirect).
struct IngressTls {
  std::vector<v1::TlsCertificate> certificates;
  std::vector<std::string> hosts;
  bool any_host = false;  // a tls[] entry without hosts: Kubernetes means "every host"

  // Whether requests for `host` ("" = no host) are served with one of the certificates.
  bool Covers(const std::string& host) const {
    if (any_host) return true;
    return std::any_of(hosts.begin(), hosts.end(), [&](const std::string& h) { return TlsHostCovers(h, host); });
  }
};

// The --ingress-default-certificate Secret ("NAMESPACE/NAME"); nullopt when the flag is not set.
std::optional<CertificateLoad> LoadDefaultCertificate(const CompileContext& ctx) {
  const std::string& ref = ctx.options.ingress_default_certificate;
  if (ref.empty()) return std::nullopt;
  const auto slash = ref.find('/');
  CertificateLoad load = slash == std::string::npos
                             ? CertificateLoad{std::nullopt, true, "Secret " + ref + " not found", "", ""}
                             : LoadCertificate(ctx.store, ref.substr(0, slash), ref.substr(slash + 1),
                                               ctx.options.only_tls_secrets_watched);
  if (!load.cert) load.message = "the default certificate (--ingress-default-certificate): " + load.message;
  return load;
}

// Reads spec.tls[]. A missing or malformed Secret is a warning on that entry: the rest routes. An
// entry without secretName uses `default_cert` (--ingress-default-certificate) when there is one.
IngressTls ReadTls(FieldReader& r, const json& spec, const ObjectKey& key, const CompileContext& ctx, bool canary,
                   const std::optional<CertificateLoad>& default_cert, std::vector<StatusWarning>* warnings) {
  const ObjectStore& store = ctx.store;
  IngressTls out;
  const json* tls = r.Array(spec, "spec", "tls");
  if (!tls) return out;
  if (canary && !tls->empty()) {
    warnings->push_back({"FieldIgnored", "spec.tls",
                         "a canary Ingress serves on the main Ingress's listeners, its tls[] is not used"});
  }
  for (size_t i = 0; i < tls->size(); ++i) {
    const json& t = (*tls)[i];
    const std::string tp = FieldReader::Index("spec.tls", i);
    if (!t.is_object()) {
      r.Invalid(tp, "must be an object, not " + FieldReader::TypeName(t));
      continue;
    }
    const auto hosts = r.StringList(t, tp, "hosts");
    bool hosts_ok = true;
    for (size_t j = 0; j < hosts.size(); ++j) {
      if (!IsHostPattern(hosts[j])) {
        r.Invalid(FieldReader::Index(tp + ".hosts", j),
                  "invalid host " + Q(hosts[j]) + " (want a lowercase DNS name, optionally starting with \"*.\")");
        hosts_ok = false;
      }
    }
    const std::string secret = r.String(t, tp, "secretName").value_or("");
    if (canary || !hosts_ok) continue;
    const std::string which = hosts.empty() ? "any host" : JoinStrings(hosts, ", ");
    if (secret.empty() && !default_cert) {
      warnings->push_back({"SecretNotFound", tp + ".secretName",
                           "no secretName and no --ingress-default-certificate (" + which +
                               ": not served over HTTPS by this entry)"});
      continue;
    }
    const std::string secret_ref = secret.empty() ? ctx.options.ingress_default_certificate : key.ns + "/" + secret;
    CertificateLoad load =
        secret.empty() ? *default_cert : LoadCertificate(store, key.ns, secret, ctx.options.only_tls_secrets_watched);
    if (!load.cert) {
      warnings->push_back({load.not_found ? "SecretNotFound" : "InvalidSecret", tp + ".secretName",
                           load.message + " (" + which + ": not served over HTTPS by this entry)"});
      continue;
    }
    if (!load.validity_reason.empty()) warnings->push_back({load.validity_reason, tp + ".secretName", load.validity_message});
    // A host the certificate is not valid for is not covered by this entry (no ssl-redirect to a
    // certificate every client refuses, nothing shared), as ingress-nginx treats it.
    const std::vector<bool> covered = CertificateCoversHosts(load.cert->certificate_chain_pem(), hosts);
    for (size_t j = 0; j < hosts.size(); ++j) {
      if (covered[j]) {
        out.hosts.push_back(hosts[j]);
      } else {
        warnings->push_back({"CertificateMismatch", FieldReader::Index(tp + ".hosts", j),
                             "the certificate of Secret " + secret_ref + " is not valid for " + Q(hosts[j]) +
                                 " (no matching DNS subject alternative name): that host is not redirected to HTTPS "
                                 "nor served with this certificate by name"});
      }
    }
    if (std::none_of(out.certificates.begin(), out.certificates.end(),
                     [&](const v1::TlsCertificate& c) { return c.name() == load.cert->name(); })) {
      out.certificates.push_back(std::move(*load.cert));
    }
    out.any_host = out.any_host || hosts.empty();
  }
  return out;
}

// Reads an IngressBackend ({service: {name, port: {number | name}}}) into a backend set named
// `set_name`. A resource backend is refused (UnsupportedValue).
std::optional<v1::BackendSet> ReadBackend(FieldReader& r, const json& b, const std::string& bp, const std::string& set_name,
                                          const ObjectKey& key, const ObjectStore& store,
                                          std::vector<StatusWarning>* warnings) {
  if (!b.is_object()) {
    r.Invalid(bp, "must be an object, not " + FieldReader::TypeName(b));
    return std::nullopt;
  }
  if (r.Member(b, bp, "resource")) {
    r.Unsupported(bp + ".resource", "resource backends are not supported by doorman (use backend.service)");
    return std::nullopt;
  }
  const json* svc = r.Member(b, bp, "service", true);
  if (!svc) return std::nullopt;
  const std::string sp = bp + ".service";
  auto name = r.String(*svc, sp, "name", true);
  if (name && !IsDns1123Label(*name)) r.Invalid(sp + ".name", Q(*name) + " is not a valid Service name");
  const json* port = r.Member(*svc, sp, "port", true);
  if (!port) return std::nullopt;
  const std::string pp = sp + ".port";
  auto number = RangedInt(r, *port, pp, "number", 1, 65535);
  auto port_name = r.String(*port, pp, "name");
  if (port_name && !port_name->empty() && !IsDns1123Label(*port_name)) {
    r.Invalid(pp + ".name", Q(*port_name) + " is not a valid port name");
    return std::nullopt;
  }
  const bool by_name = port_name && !port_name->empty();
  if (by_name == (r.Member(*port, pp, "number") != nullptr)) {
    r.Invalid(pp, "give exactly one of number or name");
    return std::nullopt;
  }
  if (!name || !IsDns1123Label(*name) || (!by_name && !number)) return std::nullopt;
  v1::BackendSet set;
  set.set_name(set_name);
  ResolveServiceBackend(store, key.ns, *name, by_name ? ServicePortRef{0, *port_name} : ServicePortRef{*number, ""}, sp,
                        &set, warnings);
  return set;
}

// One Ingress being compiled: the listeners it declares and the routes each path becomes.
class IngressCompiler {
 public:
  IngressCompiler(const ObjectKey& key, const json& o, const CompileContext& ctx) : o_(o), ctx_(ctx) {
    c_.key = key;
    c_.generation = GenerationOf(o);
    c_.created = CreationTimeOf(o);
  }

  std::optional<CompiledObject> Compile(std::vector<Problem>* problems) {
    AnnotationReader ann(o_,
                         {kAnnSslRedirect, kAnnRewriteTarget, kAnnAffinity, kAnnAffinityCookieName, kAnnAffinityCookieTtl,
                          kAnnAffinityCookiePath,
                          kAnnCanary, kAnnCanaryWeight, kAnnCanaryByHeader, kAnnCanaryByHeaderValue, kAnnCanaryByCookie,
                          kAnnRateLimitRps,
                          kAnnRateLimitBurst, kAnnRequestTimeout, kAnnRetries, kAnnBackendProtocol, kAnnHealthCheckPath,
                          kAnnBackendTlsSecret, kAnnBackendTlsServerName, kAnnHsts},
                         &r_, &c_.warnings);
    ann_ = ReadIngressAnnotations(ann, &c_.warnings);
    // Claimed by spec.ingressClassName (ClaimsIngress), so a legacy class annotation naming
    // another class is not what decides: said, since the other controller may be reading it.
    if (auto legacy = AnnotationOf(o_, kAnnLegacyClass); legacy && *legacy != ctx_.options.ingress_class) {
      if (const auto spec = o_.find("spec"); spec != o_.end() && !StringOr(*spec, "ingressClassName").empty() &&
                                              StringOr(*spec, "ingressClassName") != *legacy) {
        c_.warnings.push_back({"AnnotationIgnored", AnnotationReader::Field(kAnnLegacyClass),
                               "spec.ingressClassName decides which controller serves this Ingress (as "
                               "ingress-nginx), not the legacy class annotation \"" + *legacy + "\""});
      }
    }
    // One bucket per client for the whole Ingress (every path, HTTP and HTTPS), as ingress-nginx's
    // limit_req zone, not one per path.
    if (ann_.policy.has_rate_limit()) ann_.policy.mutable_rate_limit()->set_bucket(RouteObjectPath(c_.key));
    if (!ann_.backend_tls_secret.empty() && !ann_.canary) {  // a canary's policy is ignored (warned)
      // Fail closed: a CA that cannot be read never turns into unverified TLS.
      CaBundleLoad ca = LoadCaBundle(ctx_.store, c_.key.ns, ann_.backend_tls_secret, ctx_.options.only_tls_secrets_watched);
      if (ca.pem) {
        ann_.policy.mutable_backend_tls()->set_ca_pem(*ca.pem);
        c_.backend_ca_secret = ObjectKey{kKindSecret, c_.key.ns, ann_.backend_tls_secret};
      } else {
        ann.Invalid(kAnnBackendTlsSecret, ca.message);
      }
    }
    if (ctx_.options.check_known_fields) CheckKnownFields("Ingress", o_, r_);
    const json* spec = r_.Member(o_, "", "spec", true);
    if (spec && !spec->is_object()) r_.Invalid("spec", "must be an object, not " + FieldReader::TypeName(*spec));
    if (spec && spec->is_object()) {
      const std::optional<CertificateLoad> default_cert = ann_.canary ? std::nullopt : LoadDefaultCertificate(ctx_);
      if (default_cert && default_cert->cert) {
        default_cert_ = default_cert->cert;
      } else if (default_cert) {
        c_.warnings.push_back({default_cert->not_found ? "SecretNotFound" : "InvalidSecret", "spec",
                               default_cert->message + " (" + std::string(kDefaultCertificateLost) + ")"});
      }
      tls_ = ReadTls(r_, *spec, c_.key, ctx_, ann_.canary, default_cert, &c_.warnings);
      if (!ann_.canary && !ann_.hsts.empty() && tls_.certificates.empty() && !default_cert_) {
        ann.Ignored(kAnnHsts, "the Ingress has no usable spec.tls certificate: HSTS is sent on HTTPS responses only");
      }
      if (!ann_.canary && ann.Has(kAnnSslRedirect) && ann_.ssl_redirect && tls_.certificates.empty()) {
        ann.Ignored(kAnnSslRedirect, default_cert_ ? "the Ingress has no usable spec.tls entry: only the hosts of its "
                                                     "spec.tls entries are redirected to HTTPS"
                                                   : "the Ingress has no usable spec.tls certificate: there is no "
                                                     "HTTPS to redirect to");
      }
      DeclareListeners();
      ReadRules(*spec, ann);
      const json* default_backend = r_.Member(*spec, "spec", "defaultBackend");
      if (default_backend) AddDefaultBackend(*default_backend, ann);
      AddHttpsFallbacks(default_backend != nullptr);
      if (!ann_.health_check_path.empty()) AddHealthChecks(ann);
    }
    if (!r_.problems.empty()) {
      problems->insert(problems->end(), r_.problems.begin(), r_.problems.end());
      return std::nullopt;
    }
    if (!ann_.canary) {
      // Not emplace(): clang 14 refuses it for a nested struct with default member initialisers.
      c_.ingress_tls = CompiledObject::IngressTlsInfo{};
      c_.ingress_tls->tls_hosts = tls_.hosts;
      c_.ingress_tls->any_host = tls_.any_host;
      c_.ingress_tls->ssl_redirect = ann_.ssl_redirect;
      c_.ingress_tls->hsts = ann_.hsts;
    }
    return std::move(c_);
  }

 private:
  void DeclareListeners() {
    if (ann_.canary) return;  // a canary only adds backends to the main Ingress's routes
    CompiledListener http;
    http.user_name = "http";
    http.field = "spec";
    http.conflict_field = "spec.rules";
    http.proto.set_port(ctx_.options.ingress_http_port);
    http.proto.set_protocol(v1::HTTP);
    http.proto.set_name("http-" + std::to_string(ctx_.options.ingress_http_port));
    if (ctx_.options.ingress_proxy_protocol) http.proto.mutable_proxy_protocol()->set_accept(true);
    http_listener_ = http.proto.name();
    c_.listeners.push_back(std::move(http));
    if (tls_.certificates.empty() && !default_cert_) return;
    if (ctx_.options.ingress_https_port == ctx_.options.ingress_http_port) {
      r_.Fail("PortConflict", "spec.tls", "--ingress-https-port and --ingress-http-port are both " +
                                              std::to_string(ctx_.options.ingress_http_port));
      return;
    }
    // The default certificate first: the listener's first certificate answers a ClientHello
    // without SNI or with a name no certificate has (ingress-nginx's --default-ssl-certificate);
    // without one, the dataplane's self-signed certificate does (ingress-nginx's fake one).
    std::vector<std::string> names;
    c_.certificates.clear();
    if (default_cert_) {
      names.push_back(default_cert_->name());
      c_.certificates.push_back(*default_cert_);
    }
    for (const auto& cert : tls_.certificates) {
      if (default_cert_ && cert.name() == default_cert_->name()) continue;
      names.push_back(cert.name());
      c_.certificates.push_back(cert);
    }
    // Only the default certificate: a PortConflict names the object, not a spec.tls it lacks.
    CompiledListener https = IngressHttpsListener(ctx_.options, names, tls_.certificates.empty() ? "spec" : "spec.tls");
    https.proto.mutable_tls()->set_default_self_signed(!default_cert_);
    https_listener_ = https.proto.name();
    c_.listeners.push_back(std::move(https));
  }

  void ReadRules(const json& spec, AnnotationReader& ann) {
    const json* rules = r_.Array(spec, "spec", "rules");
    if (!rules) return;
    for (size_t i = 0; i < rules->size(); ++i) {
      const json& rule = (*rules)[i];
      const std::string rp = FieldReader::Index("spec.rules", i);
      if (!rule.is_object()) {
        r_.Invalid(rp, "must be an object, not " + FieldReader::TypeName(rule));
        continue;
      }
      v1::RouteMatch base;
      if (auto host = r_.String(rule, rp, "host"); host && !host->empty()) {
        if (!IsHostPattern(*host)) {
          r_.Invalid(rp + ".host", "invalid host " + Q(*host) + " (want a lowercase DNS name, optionally starting with \"*.\")");
          continue;
        }
        if (in_addr ip{}; ::inet_pton(AF_INET, host->c_str(), &ip) == 1) {
          // As the Kubernetes API server validates it: a manifest that routes in --manifests mode
          // would otherwise be refused by a cluster.
          r_.Invalid(rp + ".host", "invalid host " + Q(*host) + ": must be a DNS name, not an IP address");
          continue;
        }
        base.add_hosts(*host);
        // Kubernetes Ingress: a wildcard host covers a single DNS label.
        if (host->rfind("*.", 0) == 0) base.set_wildcard_one_label(true);
        if (std::find(rule_hosts_.begin(), rule_hosts_.end(), *host) == rule_hosts_.end()) rule_hosts_.push_back(*host);
      } else {
        hostless_rule_ = true;
      }
      // A rule without http sends its host to the default backend (Kubernetes semantics): the
      // default backend's route for that host does that.
      const json* http = r_.Member(rule, rp, "http");
      if (!http) continue;
      const json* paths = r_.Array(*http, rp + ".http", "paths", true);
      if (!paths) continue;
      for (size_t j = 0; j < paths->size(); ++j) {
        const json& path = (*paths)[j];
        const std::string pp = FieldReader::Index(rp + ".http.paths", j);
        if (!path.is_object()) {
          r_.Invalid(pp, "must be an object, not " + FieldReader::TypeName(path));
          continue;
        }
        v1::RouteMatch match = base;
        if (!ReadPath(path, pp, &match)) continue;
        const json* backend = r_.Member(path, pp, "backend", true);
        if (!backend) continue;
        AddPath("r" + std::to_string(i) + "-p" + std::to_string(j), pp, match, *backend, pp + ".backend", ann, false);
      }
    }
  }

  // pathType Exact | Prefix (segment-wise) | ImplementationSpecific (= RE2, full match). Paths
  // that look meant for the other kind get a warning (ingress-nginx reads ImplementationSpecific
  // as a prefix unless regex is enabled, and Helm charts default to it with path "/").
  bool ReadPath(const json& path, const std::string& pp, v1::RouteMatch* match) {
    auto type = r_.String(path, pp, "pathType", true);
    auto value = r_.String(path, pp, "path");
    if (!type) return false;
    v1::PathMatch pm;
    if (*type == "Exact" || *type == "Prefix") {
      pm.set_type(*type == "Exact" ? v1::PathMatch::EXACT : v1::PathMatch::PREFIX);
      if (!value || value->empty() || value->front() != '/') {
        r_.Invalid(pp + ".path", value ? "path " + Q(*value) + " must start with \"/\"" : "is required for pathType " + *type);
        return false;
      }
      if (const auto why = NotNormalPathProblem(*value); !why.empty()) {
        r_.Invalid(pp + ".path", "path " + Q(*value) + " " + why);  // as the API server refuses it
        return false;
      }
      if (const auto why = UnmatchablePathProblem(*value); !why.empty()) {
        c_.warnings.push_back({"PathNeverMatches", pp + ".path", "path " + Q(*value) + " " + why});
      }
      if (value->find_first_of("()[]{}*+?|^$\\") != std::string::npos) {
        c_.warnings.push_back({"PathLooksLikeRegex", pp + ".path",
                               "pathType " + *type + " matches " + Q(*value) +
                                   " literally; a regular expression needs pathType ImplementationSpecific"});
      }
    } else if (*type == "ImplementationSpecific") {
      pm.set_type(v1::PathMatch::REGULAR_EXPRESSION);
      if (!value || value->empty()) return true;  // any path
      if (!CheckRegex(r_, pp + ".path", *value)) return false;
      if (const auto esc = LowercaseEscape(*value); !esc.empty()) {
        c_.warnings.push_back({"PathNeverMatches", pp + ".path",
                               "the regular expression has " + esc + ": requests are matched with upper-case hex digits "
                               "in their escapes, so it never matches that"});
      }
      if (value->find_first_of(".()[]{}*+?|^$\\") == std::string::npos) {
        c_.warnings.push_back({"PathIsRegex", pp + ".path",
                               "pathType ImplementationSpecific is a regular expression matched against the whole "
                               "path: " + Q(*value) + " matches only " + Q(*value) + " itself, not what is under it "
                               "(ingress-nginx would take it as a prefix); use pathType Prefix for that"});
      }
    } else {
      r_.Unsupported(pp + ".pathType", "unknown path type " + Q(*type) + " (want Exact, Prefix or ImplementationSpecific)");
      return false;
    }
    pm.set_value(*value);
    *match->mutable_path() = pm;
    return true;
  }

  // spec.defaultBackend, as ingress-nginx scopes it: for an Ingress without rules, or with a rule
  // without host, the listener's catch-all (any host, after every other route); otherwise the
  // backend of what this Ingress's own hosts do not match, one route per host (the host's
  // requests no path route takes; other hosts, other teams' included, are not its business).
  void AddDefaultBackend(const json& backend, AnnotationReader& ann) {
    const std::string field = "spec.defaultBackend";
    if (rule_hosts_.empty() || hostless_rule_) {
      AddPath("default", field, v1::RouteMatch(), backend, field, ann, true);
      return;
    }
    auto set = ReadBackend(r_, backend, field, RouteObjectPath(c_.key) + "/default/0", c_.key, ctx_.store, &c_.warnings);
    if (!set) return;
    for (size_t k = 0; k < rule_hosts_.size(); ++k) {
      v1::RouteMatch match;
      match.add_hosts(rule_hosts_[k]);
      if (rule_hosts_[k].rfind("*.", 0) == 0) match.set_wildcard_one_label(true);
      match.set_after_paths(true);  // the host's default: after every path of it (a canary's too)
      AddRoutes(RouteObjectPath(c_.key) + "/default-h" + std::to_string(k), field, match, *set, ann, false, k == 0);
    }
  }

  // For each host this Ingress redirects to HTTPS, a redirect of the paths none of its paths
  // match (ingress-nginx redirects a TLS server's every location, its default "/" included),
  // ranked after every route declared for the host on the HTTP listener — another Ingress's
  // plain-HTTP path for the host, or this one's, still wins — and before the host-less
  // catch-all, which would otherwise serve that host's unmatched paths over plain HTTP. Not
  // needed when the host has a Prefix "/" path or default-h<k> route here (they redirect
  // everything already). Behind a trusted balancer (--ingress-trusted-proxies) too: a request
  // such a proxy received over HTTPS (X-Forwarded-Proto: https) skips this route as if it were
  // not there (the dataplane's IsForwardedHttpsFallback) and goes to the next route that
  // matches, a catch-all, or 404; every other request is redirected, so an untrusted client
  // cannot reach the host's unmatched paths over plain HTTP through the catch-all.
  void AddHttpsFallbacks(bool has_default_backend) {
    if (ann_.canary || https_listener_.empty() || !ann_.ssl_redirect) return;
    if (has_default_backend && !rule_hosts_.empty() && !hostless_rule_) return;  // default-h<k> per host
    for (size_t k = 0; k < rule_hosts_.size(); ++k) {
      const std::string& host = rule_hosts_[k];
      if (!tls_.Covers(host)) continue;
      const bool has_root = std::any_of(c_.routes.begin(), c_.routes.end(), [&](const CompiledRoute& r) {
        const auto& m = r.proto.match();
        return r.user_listener == "http" && m.hosts_size() == 1 && m.hosts(0) == host && m.has_path() &&
               m.path().type() == v1::PathMatch::PREFIX && m.path().value() == "/";
      });
      if (has_root) continue;
      CompiledRoute http;
      http.proto.set_name(RouteObjectPath(c_.key) + "/https-redirect-h" + std::to_string(k));
      http.proto.mutable_match()->add_hosts(host);
      if (host.rfind("*.", 0) == 0) http.proto.mutable_match()->set_wildcard_one_label(true);
      http.proto.mutable_match()->set_after_paths(true);  // after every path of the host
      http.proto.set_listener(http_listener_);
      http.user_listener = "http";
      http.decl_index = decl_++;
      http.https_fallback = true;
      TrustIngressProxies(http.proto, ctx_.options);
      MakeSslRedirect(http, ctx_.options);
      c_.routes.push_back(std::move(http));
    }
  }

  // doorman.dev/health-check-path on every backend set. Backends reached over TLS are probed over
  // TLS, as the requests reach them (HealthCheckTls); a canary's sets get the main Ingress's
  // protocol when they attach (AttachCanaries).
  void AddHealthChecks(AnnotationReader& ann) {
    v1::HealthCheck hc;
    hc.set_protocol(v1::HealthCheck::HTTP);
    hc.set_path(ann_.health_check_path);
    std::vector<std::string> unchecked;
    for (auto& set : c_.backend_sets) {
      *set.mutable_health_check() = hc;
      if (ann_.policy.backend_protocol() != "HTTPS") continue;
      std::set<std::string> hosts;
      for (const auto& r : c_.routes) {
        const auto& backends = r.proto.backends();
        if (std::none_of(backends.begin(), backends.end(), [&](const auto& b) { return b.backend_set() == set.name(); })) {
          continue;
        }
        if (r.proto.match().hosts_size() == 0) hosts.insert("");
        hosts.insert(r.proto.match().hosts().begin(), r.proto.match().hosts().end());
      }
      std::string why;
      if (auto tls = HealthCheckTls(ann_.policy.backend_tls(), hosts, &why)) {
        *set.mutable_health_check()->mutable_tls() = *tls;
      } else {
        set.clear_health_check();
        unchecked.push_back(BackendsOf(set) + " (they " + why + ")");
      }
    }
    if (!unchecked.empty()) {
      ann.Ignored(kAnnHealthCheckPath, std::string("not applied to the backends of ") + JoinStrings(unchecked, ", ") +
                                           ": " + kAnnBackendTlsSecret + " verifies the name their certificate carries, "
                                           "and no single name is known; set " + kAnnBackendTlsServerName);
    }
    for (auto& att : c_.canaries) {
      for (auto& set : att.backend_sets) *set.mutable_health_check() = hc;
    }
  }

  // One path (or the default backend): its backend set, and its route on the HTTP listener (a
  // redirect to HTTPS when ssl-redirect applies) and on the HTTPS listener. A canary Ingress
  // contributes a CanaryAttachment instead.
  void AddPath(const std::string& id, const std::string& field, const v1::RouteMatch& match, const json& backend,
               const std::string& backend_field, AnnotationReader& ann, bool catch_all) {
    const std::string route_name = RouteObjectPath(c_.key) + "/" + id;
    auto set = ReadBackend(r_, backend, backend_field, route_name + "/0", c_.key, ctx_.store, &c_.warnings);
    if (set) AddRoutes(route_name, field, match, *set, ann, catch_all, true);
  }

  // The routes of AddPath to `set`; `own_set`: the set enters the object with them (a set shared
  // by several routes enters once).
  void AddRoutes(const std::string& route_name, const std::string& field, const v1::RouteMatch& match,
                 const v1::BackendSet& set, AnnotationReader& ann, bool catch_all, bool own_set) {
    v1::WeightedBackend wb;
    wb.set_backend_set(set.name());
    wb.set_weight(1);
    if (ann_.canary) {
      CanaryAttachment att;
      att.field = field;
      att.match = match;
      att.canary = ann_.canary_rule;
      *att.canary.add_backends() = wb;
      att.backend_sets.push_back(set);  // AttachCanaries adds a set shared by attachments once
      c_.canaries.push_back(std::move(att));
      return;
    }
    v1::Route route;
    route.set_name(route_name);
    if (match.hosts_size() > 0 || match.has_path()) *route.mutable_match() = match;
    *route.add_backends() = wb;
    *route.mutable_policy() = ann_.policy;
    if (route.policy().stickiness().type() == v1::Stickiness::COOKIE && route.policy().stickiness().cookie_path().empty()) {
      route.mutable_policy()->mutable_stickiness()->set_cookie_path(StickyCookiePath(match));
    }
    TrustIngressProxies(route, ctx_.options);
    if (!ann_.rewrite_target.empty() && match.has_path()) {
      if (match.path().type() == v1::PathMatch::REGULAR_EXPRESSION) {
        ann.Invalid(kAnnRewriteTarget, "cannot replace the prefix of the regular-expression path at " + field +
                                           " (pathType ImplementationSpecific): use Prefix or Exact paths");
      }
      auto* rw = route.mutable_filters()->mutable_rewrite();
      rw->set_enabled(true);
      rw->set_path_prefix(ann_.rewrite_target);
    } else if (!ann_.rewrite_target.empty() && !rewrite_default_warned_) {
      // The default backend's route has no path whose prefix could be replaced (helper-131: an
      // Ingress with only a defaultBackend took the annotation in silence).
      rewrite_default_warned_ = true;
      ann.Ignored(kAnnRewriteTarget, "its requests keep their path (no matched path prefix to replace)",
                  "spec.defaultBackend");
    }
    const std::string host = match.hosts_size() ? match.hosts(0) : "";
    const bool redirect = !https_listener_.empty() && ann_.ssl_redirect && tls_.Covers(host);

    CompiledRoute http;
    http.proto = route;
    http.proto.set_listener(http_listener_);
    http.user_listener = "http";
    http.decl_index = decl_++;
    http.catch_all = catch_all;
    if (redirect) MakeSslRedirect(http, ctx_.options);
    c_.routes.push_back(std::move(http));
    if (!https_listener_.empty()) c_.routes.push_back(HttpsTwin(std::move(route), https_listener_, ann_.hsts, decl_++, catch_all));
    if (own_set) c_.backend_sets.push_back(set);
  }

  const json& o_;
  const CompileContext& ctx_;
  FieldReader r_;
  CompiledObject c_;
  IngressAnnotations ann_;
  IngressTls tls_;
  std::optional<v1::TlsCertificate> default_cert_;  // --ingress-default-certificate, when usable
  std::string http_listener_;
  std::string https_listener_;  // "" = this Ingress has no usable certificate
  std::vector<std::string> rule_hosts_;  // the rules' hosts, first occurrence order
  bool hostless_rule_ = false;           // a rule without host (it takes every host)
  size_t decl_ = 0;
  bool rewrite_default_warned_ = false;  // rewrite-target said to miss the default backend once
};

}  // namespace

std::optional<CompiledObject> CompileIngress(const ObjectKey& key, const json& o, const CompileContext& ctx,
                                             std::vector<Problem>* problems) {
  return IngressCompiler(key, o, ctx).Compile(problems);
}

IngressClasses ResolveIngressClasses(const ObjectStore& store, const TranslateOptions& options) {
  IngressClasses out;
  std::vector<std::tuple<bool, CreationTime, std::string>> defaults;  // (no timestamp, timestamp, name)
  std::map<std::string, size_t> status_of;
  for (auto it = store.lower_bound(ObjectKey{kKindIngressClass, "", ""});
       it != store.end() && it->first.kind == kKindIngressClass; ++it) {
    const json& o = it->second.object;
    const auto spec = o.find("spec");
    if (spec == o.end() || StringOr(*spec, "controller") != options.ingress_controller) continue;
    const std::string& name = it->first.name;
    out.ours.insert(name);
    ObjectStatus st;
    st.key = it->first;
    st.source = it->second.source;
    st.generation = GenerationOf(o);
    st.serving_generation = st.generation;
    st.accepted = true;
    st.reason = "Accepted";
    st.message = "Accepted";
    if (auto p = spec->find("parameters"); p != spec->end() && !p->is_null()) {
      st.warnings.push_back({"FieldIgnored", "spec.parameters", "doorman takes no IngressClass parameters"});
    }
    {
      // Its one annotation is Kubernetes' is-default-class; a doorman.dev/ or ingress-nginx one
      // set here (rather than on the Ingresses) is said, not dropped in silence.
      FieldReader r;
      AnnotationReader ann(o, {}, &r, &st.warnings);
    }
    if (AnnotationOf(o, kAnnDefaultClass) == "true") {
      const auto created = CreationTimeOf(o);
      defaults.emplace_back(!created, created.value_or(CreationTime{}), name);
    }
    status_of[name] = out.statuses.size();
    out.statuses.push_back(std::move(st));
  }
  std::sort(defaults.begin(), defaults.end());
  if (!defaults.empty()) out.default_class = std::get<2>(defaults.front());
  for (size_t i = 1; i < defaults.size(); ++i) {
    // Older first; among classes of the same (or no) creationTimestamp, the first name.
    const bool older = !std::get<0>(defaults.front()) && (std::get<0>(defaults[i]) || std::get<1>(defaults.front()) < std::get<1>(defaults[i]));
    out.statuses[status_of[std::get<2>(defaults[i])]].warnings.push_back(
        {"MultipleDefaultClasses", AnnotationReader::Field(kAnnDefaultClass),
         "IngressClass " + out.default_class + " is also marked default and " +
             (older ? std::string("is older") : "sorts first by name (neither is older)") + ", so it is the default"});
  }
  return out;
}

std::string WhyIngressNotClaimed(const json& ingress, const IngressClasses& classes, const TranslateOptions& options) {
  const auto spec = ingress.find("spec");
  const std::string cls = spec == ingress.end() ? "" : StringOr(*spec, "ingressClassName");
  if (!cls.empty()) {
    return "spec.ingressClassName " + cls + " names no IngressClass with spec.controller " + options.ingress_controller;
  }
  if (auto legacy = AnnotationOf(ingress, kAnnLegacyClass)) {
    return "the kubernetes.io/ingress.class annotation is " + *legacy + ", not " + options.ingress_class;
  }
  return "no spec.ingressClassName, and no IngressClass with spec.controller " + options.ingress_controller +
         " is marked ingressclass.kubernetes.io/is-default-class: \"true\"";
}

bool ClaimsIngress(const json& ingress, const IngressClasses& classes, const TranslateOptions& options) {
  // spec.ingressClassName first, then the legacy annotation, then the default class: ingress-nginx's
  // order (store.go GetIngressClass). The API server refuses a mismatched pair on create only, so
  // an Ingress given a class later may still carry an old annotation; the field decides.
  const auto spec = ingress.find("spec");
  const std::string cls = spec == ingress.end() ? "" : StringOr(*spec, "ingressClassName");
  if (!cls.empty()) return classes.ours.count(cls) > 0;
  if (auto legacy = AnnotationOf(ingress, kAnnLegacyClass)) return *legacy == options.ingress_class;
  return !classes.default_class.empty();
}

void AddIngressTlsHosts(const CompiledObject& c, IngressTlsHostMap* tls_hosts) {
  if (!c.ingress_tls) return;
  for (const auto& pattern : c.ingress_tls->tls_hosts) {
    // Only a host the Ingress routes itself (a tls[] entry alone claims nothing).
    const bool routed = std::any_of(c.routes.begin(), c.routes.end(), [&](const CompiledRoute& r) {
      return r.proto.match().hosts_size() > 0 && TlsHostCovers(pattern, r.proto.match().hosts(0));
    });
    if (routed) tls_hosts->emplace(std::pair{c.key.ns, pattern}, c.key);
  }
}

void ShareIngressTls(CompiledObject& c, const IngressTlsHostMap& tls_hosts, const TranslateOptions& options) {
  if (!c.ingress_tls || c.ingress_tls->any_host) return;  // not an Ingress, a canary, or all its hosts are its own
  const auto& own = c.ingress_tls->tls_hosts;
  // Whether another Ingress of this namespace covers `host` (an exact name or a "*." pattern).
  auto shared_from_other = [&](const std::string& host) {
    for (auto it = tls_hosts.lower_bound({c.key.ns, ""}); it != tls_hosts.end() && it->first.first == c.key.ns; ++it) {
      if (it->second != c.key && TlsHostCovers(it->first.second, host)) return true;
    }
    return false;
  };
  const CompiledListener* https = FindListener(c, "https");
  const bool had_https = https != nullptr;
  const std::string https_name = had_https ? https->proto.name() : IngressHttpsListener(options, {}).proto.name();
  std::vector<CompiledRoute> twins;
  bool any_shared = false, all_shared = true;
  for (auto& r : c.routes) {
    if (r.user_listener != "http" || r.proto.match().hosts_size() == 0) continue;
    const std::string& host = r.proto.match().hosts(0);
    if (std::any_of(own.begin(), own.end(), [&](const std::string& h) { return TlsHostCovers(h, host); })) continue;
    if (!shared_from_other(host)) {
      all_shared = false;
      continue;
    }
    any_shared = true;
    if (!had_https) twins.push_back(HttpsTwin(r.proto, https_name, c.ingress_tls->hsts, r.decl_index, r.catch_all));
    if (c.ingress_tls->ssl_redirect) MakeSslRedirect(r, options);
  }
  if (!any_shared) return;
  if (!had_https) c.listeners.push_back(IngressHttpsListener(options, {}, "spec.rules"));
  for (auto& t : twins) c.routes.push_back(std::move(t));
  // hsts and ssl-redirect were said to have no effect without a certificate of its own: when every
  // host of the Ingress has HTTPS now, they have.
  if (all_shared && own.empty()) {
    std::erase_if(c.warnings, [](const StatusWarning& w) {
      return w.reason == "AnnotationIgnored" &&
             (w.field == AnnotationReader::Field(kAnnHsts) || w.field == AnnotationReader::Field(kAnnSslRedirect));
    });
  }
}

}  // namespace doorman::controller::internal
