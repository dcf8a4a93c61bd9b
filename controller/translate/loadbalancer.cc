// LoadBalancer (doorman.dev/v1alpha1) → CompiledObject: every field of API.md §1.3, validated
// with a field path for each problem.
#include <algorithm>
#include <optional>
#include <set>

#include "common/health_defaults.h"
#include "controller/translate/internal.h"
#include "controller/translate/known_fields.h"
#include "controller/translate/openapi_check.h"

namespace doorman::controller::internal {
namespace {

// Loads a certificate for a LoadBalancer listener; any problem makes the object invalid. One that
// is not valid now (expired) is served, with a warning.
std::optional<v1::TlsCertificate> ResolveCertificate(FieldReader& r, const CompileContext& ctx, const std::string& ns,
                                                     const std::string& secret_name, const std::string& field,
                                                     std::vector<StatusWarning>* warnings) {
  CertificateLoad load = LoadCertificate(ctx.store, ns, secret_name, ctx.options.only_tls_secrets_watched);
  if (!load.cert) r.Fail("InvalidCertificateRef", field, load.message);
  if (load.cert && !load.validity_reason.empty()) warnings->push_back({load.validity_reason, field, load.validity_message});
  return std::move(load.cert);
}

// ---- LoadBalancer → CompiledObject -------------------------------------------------------------

// `unusable`: names of listeners that were refused for their port or protocol (reported there), so
// routes naming them are not also told that no such listener exists.
void CompileListeners(FieldReader& r, const json& spec, const CompileContext& ctx, CompiledObject& c,
                      std::set<std::string>* unusable) {
  const json* listeners = r.Array(spec, "spec", "listeners");
  if (!listeners) return;
  std::map<std::string, std::string> names;                          // name → field
  std::map<std::pair<std::string, uint32_t>, std::string> ports;     // (transport, port) → field
  for (size_t i = 0; i < listeners->size(); ++i) {
    const json& l = (*listeners)[i];
    const std::string p = FieldReader::Index("spec.listeners", i);
    if (!r.Object(l, p, {"name", "port", "protocol", "tls", "proxyProtocol", "idleTimeout", "allowedSourceRanges"})) {
      continue;
    }
    CompiledListener cl;
    cl.field = p;
    auto name = r.String(l, p, "name", true);
    if (name) {
      if (!IsDns1123Label(*name)) {
        r.Invalid(p + ".name", Q(*name) + " is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)");
      } else if (auto [it, fresh] = names.emplace(*name, p); !fresh) {
        r.Invalid(p + ".name", "duplicate listener name " + Q(*name) + " (also " + it->second + ")");
      }
      cl.user_name = *name;
    }
    auto port = RangedInt(r, l, p, "port", 1, 65535, true);
    auto proto_name = r.String(l, p, "protocol", true);
    std::optional<v1::Protocol> proto;
    if (proto_name) {
      proto = ParseProtocol(*proto_name);
      if (!proto) {
        r.Unsupported(p + ".protocol", "unknown protocol " + Q(*proto_name) + " (want TCP, UDP, TLS, HTTP or HTTPS)");
      }
    }
    if (name && (!port || !proto)) unusable->insert(*name);
    if (!name || !port || !proto) continue;
    if (auto [it, fresh] = ports.emplace(std::make_pair(std::string(Transport(*proto)), *port), p); !fresh) {
      r.Invalid(p + ".port", "port " + std::to_string(*port) + " is already used by " + it->second);
    }
    v1::Listener& lp = cl.proto;
    lp.set_port(*port);
    lp.set_protocol(*proto);
    lp.set_name(Lower(*proto_name) + "-" + std::to_string(*port));

    if (const json* tls = r.Member(l, p, "tls")) {
      const std::string tp = p + ".tls";
      if (r.Object(*tls, tp, {"certificates", "minVersion"})) {
        const json* certs = r.Array(*tls, tp, "certificates");
        if (certs && !certs->empty() && *proto != v1::HTTPS) {
          r.Unsupported(tp + ".certificates", std::string("only HTTPS listeners terminate TLS: ") +
                                                  (*proto == v1::TLS ? "remove tls (a TLS listener passes TLS through)"
                                                                     : "use protocol HTTPS, or remove tls"));
        } else if (certs) {
          for (size_t j = 0; j < certs->size(); ++j) {
            const std::string cp = FieldReader::Index(tp + ".certificates", j);
            if (!r.Object((*certs)[j], cp, {"secretName"})) continue;
            auto secret = r.String((*certs)[j], cp, "secretName", true);
            if (!secret) continue;
            if (!IsObjectName(*secret)) {
              r.Invalid(cp + ".secretName", Q(*secret) + " is not a valid Secret name");
              continue;
            }
            auto cert = ResolveCertificate(r, ctx, c.key.ns, *secret, cp + ".secretName", &c.warnings);
            if (!cert) continue;
            lp.mutable_tls()->add_certificates(cert->name());
            c.certificates.push_back(std::move(*cert));
          }
        }
        if (auto mv = r.String(*tls, tp, "minVersion")) {
          if (*proto != v1::HTTPS) {
            r.Unsupported(tp + ".minVersion", std::string("only HTTPS listeners terminate TLS: ") +
                                                (*proto == v1::TLS ? "remove tls (a TLS listener passes TLS through)"
                                                                   : "use protocol HTTPS, or remove tls"));
          } else if (*mv != "1.2" && *mv != "1.3") {
            r.Unsupported(tp + ".minVersion", "unsupported TLS version " + Q(*mv) + " (want \"1.2\" or \"1.3\")");
          } else {
            lp.mutable_tls()->set_min_version(*mv);
          }
        }
      }
    }
    if (*proto == v1::HTTPS && lp.tls().certificates_size() == 0 &&
        std::none_of(r.problems.begin(), r.problems.end(),
                     [&p](const Problem& pr) { return pr.field.rfind(p + ".tls", 0) == 0; })) {
      r.Invalid(p + ".tls.certificates", "an HTTPS listener needs at least one certificate");
    }
    if (const json* pp = r.Member(l, p, "proxyProtocol")) {
      const std::string ppp = p + ".proxyProtocol";
      if (r.Object(*pp, ppp, {"send", "accept"})) {
        if (auto send = r.String(*pp, ppp, "send")) {
          if (*send == "v1" || *send == "v2") {
            if (*proto != v1::TCP && *proto != v1::TLS) {
              r.Unsupported(ppp + ".send", "only TCP and TLS listeners send a PROXY protocol header to backends");
            }
            lp.mutable_proxy_protocol()->set_send(*send == "v1" ? v1::PROXY_PROTOCOL_V1 : v1::PROXY_PROTOCOL_V2);
          } else if (!send->empty() && *send != "none") {
            r.Unsupported(ppp + ".send", "unknown PROXY protocol version " + Q(*send) + " (want v1 or v2)");
          }
        }
        if (auto accept = r.Bool(*pp, ppp, "accept"); accept && *accept) {
          lp.mutable_proxy_protocol()->set_accept(true);
        }
      }
    }
    if (auto idle = r.DurationMs(l, p, "idleTimeout", true)) lp.set_idle_timeout_ms(*idle);
    ReadCidrs(r, l, p, "allowedSourceRanges", lp.mutable_allowed_source_ranges());
    c.listeners.push_back(std::move(cl));
  }
}

void CompileMatch(FieldReader& r, const json& m, const std::string& p, v1::Protocol proto, v1::RouteMatch* out,
                  std::vector<StatusWarning>* warnings) {
  if (!r.Object(m, p, {"hosts", "path", "methods", "headers", "queryParams", "cookies", "sni"})) return;
  const bool l7 = IsL7(proto);
  if (!l7) {
    for (const char* k : {"hosts", "path", "methods", "headers", "queryParams", "cookies"}) {
      if (r.Member(m, p, k)) {
        r.Unsupported(p + "." + k, std::string("matches HTTP requests; not supported on a ") +
                                       v1::Protocol_Name(proto) + " listener" +
                                       (proto == v1::TLS ? " (use match.sni)" : ""));
      }
    }
  }
  if (proto != v1::TLS && r.Member(m, p, "sni")) {
    r.Unsupported(p + ".sni", "sni matches TLS passthrough listeners only" +
                                  std::string(l7 ? " (use match.hosts)" : ""));
  }
  auto hosts = [&](const char* key, google::protobuf::RepeatedPtrField<std::string>* dst) {
    const auto list = r.StringList(m, p, key);
    for (size_t i = 0; i < list.size(); ++i) {
      if (!IsHostPattern(list[i])) {
        r.Invalid(FieldReader::Index(p + "." + key, i),
                  "invalid host " + Q(list[i]) + " (want a lowercase DNS name, optionally starting with \"*.\")");
        continue;
      }
      dst->Add(std::string(list[i]));
    }
  };
  hosts("hosts", out->mutable_hosts());
  hosts("sni", out->mutable_sni());
  if (const json* path = r.Member(m, p, "path")) {
    const std::string pp = p + ".path";
    if (r.Object(*path, pp, {"type", "value"})) {
      auto type = r.String(*path, pp, "type");
      auto value = r.String(*path, pp, "value", true);
      v1::PathMatch pm;
      const std::string t = type.value_or("Prefix");
      if (t == "Exact") {
        pm.set_type(v1::PathMatch::EXACT);
      } else if (t == "Prefix") {
        pm.set_type(v1::PathMatch::PREFIX);
      } else if (t == "RegularExpression") {
        pm.set_type(v1::PathMatch::REGULAR_EXPRESSION);
      } else {
        r.Unsupported(pp + ".type", "unknown path type " + Q(t) + " (want Exact, Prefix or RegularExpression)");
      }
      if (value) {
        if (pm.type() == v1::PathMatch::REGULAR_EXPRESSION) {
          CheckRegex(r, pp + ".value", *value);
          if (const auto esc = LowercaseEscape(*value); !esc.empty() && warnings != nullptr) {
            warnings->push_back({"PathNeverMatches", pp + ".value",
                                 "the regular expression has " + esc + ": requests are matched with upper-case hex "
                                 "digits in their escapes, so it never matches that"});
          }
        } else if (value->front() != '/') {
          r.Invalid(pp + ".value", "path " + Q(*value) + " must start with \"/\"");
        } else if (std::string why = PathProblem(*value); !why.empty() ||
                                                         !(why = NotNormalPathProblem(*value)).empty() ||
                                                         !(why = UnmatchablePathProblem(*value)).empty()) {
          r.Invalid(pp + ".value", "path " + Q(*value) + " " + why);
        }
        pm.set_value(*value);
      }
      *out->mutable_path() = pm;
    }
  }
  static const std::set<std::string> kMethods = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                                 "CONNECT", "OPTIONS", "TRACE", "PATCH"};
  const auto methods = r.StringList(m, p, "methods");
  for (size_t i = 0; i < methods.size(); ++i) {
    if (!kMethods.count(methods[i])) {
      r.Unsupported(FieldReader::Index(p + ".methods", i),
                    "unknown HTTP method " + Q(methods[i]) + " (want uppercase, e.g. GET, POST)");
      continue;
    }
    out->add_methods(methods[i]);
  }
  std::map<std::string, std::string> header_names;  // lowercase name → field
  if (const json* headers = r.Array(m, p, "headers")) {
    for (size_t i = 0; i < headers->size(); ++i) {
      const std::string hp = FieldReader::Index(p + ".headers", i);
      const json& h = (*headers)[i];
      if (!r.Object(h, hp, {"name", "type", "value"})) continue;
      auto name = r.String(h, hp, "name", true);
      auto type = r.String(h, hp, "type");
      auto value = r.String(h, hp, "value");
      v1::HeaderMatch hm;
      if (name) {
        if (!IsToken(*name)) r.Invalid(hp + ".name", "invalid header name " + Q(*name));
        hm.set_name(Lower(*name));
        // Gateway API ignores a later entry with an equivalent name: refused here, not ignored.
        if (auto [it, fresh] = header_names.emplace(Lower(*name), hp); !fresh) {
          r.Invalid(hp + ".name", "header " + Q(*name) + " is also matched by " + it->second +
                                      " (header names are case-insensitive)");
        }
      }
      const std::string t = type.value_or("Exact");
      if (t == "Exact") {
        hm.set_type(v1::HeaderMatch::EXACT);
      } else if (t == "RegularExpression") {
        hm.set_type(v1::HeaderMatch::REGULAR_EXPRESSION);
      } else if (t == "Present") {
        hm.set_type(v1::HeaderMatch::PRESENT);
      } else {
        r.Unsupported(hp + ".type", "unknown header match type " + Q(t) + " (want Exact, RegularExpression or Present)");
      }
      if (hm.type() == v1::HeaderMatch::PRESENT) {
        if (value) r.Invalid(hp + ".value", "a Present match takes no value");
      } else if (!value) {
        r.Invalid(hp + ".value", "is required (for a " + t + " match)");
      } else {
        if (hm.type() == v1::HeaderMatch::REGULAR_EXPRESSION) CheckRegex(r, hp + ".value", *value);
        // No request carries such a value: the route can never match. Warned, not refused
        // (queryParams and cookies always were): an object accepted before keeps its other routes
        // on an upgrade (helper-134).
        if (hm.type() == v1::HeaderMatch::EXACT) {
          if (const auto why = FieldValueProblem(*value); !why.empty()) {
            warnings->push_back({"NeverMatches", hp + ".value",
                                 "header value " + Q(*value) + " " + why + ": no request carries it, so the route never matches"});
          }
        }
        hm.set_value(*value);
      }
      *out->add_headers() = hm;
    }
  }
  // Query parameters are compared as written in the request target, cookies as sent: a name or
  // value that no request can carry (a space, a control character, a delimiter) never matches,
  // and a second entry with the same name is refused (Gateway API would ignore it).
  auto name_values = [&](const char* key, auto add) {
    const json* arr = r.Array(m, p, key);
    if (!arr) return;
    const bool query = std::string_view(key) == "queryParams";
    std::map<std::string, std::string> names;
    for (size_t i = 0; i < arr->size(); ++i) {
      const std::string ip = FieldReader::Index(p + "." + key, i);
      if (!r.Object((*arr)[i], ip, {"name", "value"})) continue;
      auto name = r.String((*arr)[i], ip, "name", true);
      auto value = r.String((*arr)[i], ip, "value", true);
      auto bad = [query](const std::string& v, bool is_name) -> std::string {
        for (const char c : v) {
          const auto u = static_cast<unsigned char>(c);
          // A cookie value may hold inner spaces (browsers send them; the match trims the ends).
          const bool cookie_value = !query && !is_name;
          if (u < 0x20 || u == 0x7f || (u == 0x20 && !cookie_value)) {
            return "contains a space or control character, which no request carries there";
          }
          if (query && (c == '&' || c == '#' || (is_name && c == '='))) {
            return std::string("contains '") + c + "', which delimits the query";
          }
          if (!query && c == ';') return "contains ';', which ends a cookie in the Cookie header";
        }
        return "";
      };
      if (name) {
        if (name->empty()) {
          r.Invalid(ip + ".name", "must not be empty");
        } else if (!query && !IsToken(*name)) {
          r.Invalid(ip + ".name", "invalid cookie name " + Q(*name));
        } else if (const auto why = bad(*name, true); !why.empty()) {
          r.Invalid(ip + ".name", Q(*name) + " " + why);
        } else if (auto [it, fresh] = names.emplace(*name, ip); !fresh) {
          r.Invalid(ip + ".name", Q(*name) + " is also matched by " + it->second);
        }
      }
      if (value) {
        if (const auto why = bad(*value, false); !why.empty()) {
          r.Invalid(ip + ".value", Q(*value) + " " + why);
        } else if (!query && !value->empty() && (value->front() == ' ' || value->back() == ' ')) {
          r.Invalid(ip + ".value", Q(*value) + " has a leading or trailing space, which the match trims from the "
                                               "cookie sent (RFC 6265), so it never matches");
        }
      }
      if (name && value) add(*name, *value);
    }
  };
  name_values("queryParams", [out](const std::string& n, const std::string& v) {
    auto* q = out->add_query_params();
    q->set_name(n);
    q->set_value(v);
  });
  name_values("cookies", [out](const std::string& n, const std::string& v) {
    auto* q = out->add_cookies();
    q->set_name(n);
    q->set_value(v);
  });
}

void CompilePolicy(FieldReader& r, const json& pol, const std::string& p, v1::Protocol proto, v1::RoutePolicy* out) {
  if (!r.Object(pol, p, {"scheduler", "stickiness", "retries", "timeouts", "rateLimit"})) return;
  const bool l7 = IsL7(proto);
  if (auto s = r.String(pol, p, "scheduler")) {
    if (!IsScheduler(*s)) {
      r.Unsupported(p + ".scheduler", "unknown scheduler " + Q(*s) + " (want " + kSchedulerNames + ")");
    } else {
      out->set_scheduler(*s);
    }
  }
  if (const json* st = r.Member(pol, p, "stickiness")) {
    const std::string sp = p + ".stickiness";
    if (r.Object(*st, sp, {"type", "cookieName", "ttl", "path"})) {
      auto type = r.String(*st, sp, "type", true);
      auto cookie = r.String(*st, sp, "cookieName");
      auto path = r.String(*st, sp, "path");
      auto ttl = r.DurationMs(*st, sp, "ttl");
      auto* so = out->mutable_stickiness();
      if (type && *type == "Cookie") {
        if (!l7) r.Unsupported(sp + ".type", "Cookie stickiness needs an HTTP or HTTPS listener (use SourceIP)");
        so->set_type(v1::Stickiness::COOKIE);
        if (cookie && !IsToken(*cookie)) r.Invalid(sp + ".cookieName", "invalid cookie name " + Q(*cookie));
        so->set_cookie_name(cookie && !cookie->empty() ? *cookie : kDefaultCookieName);
        if (path) {
          if (const auto why = CookiePathProblem(*path); !why.empty()) {
            r.Invalid(sp + ".path", "cookie path " + Q(*path) + " " + why);
          } else {
            so->set_cookie_path(*path);
          }
        }
      } else if (type && *type == "SourceIP") {
        so->set_type(v1::Stickiness::SOURCE_IP);
        if (cookie) r.Invalid(sp + ".cookieName", "only Cookie stickiness takes a cookieName");
        if (path) r.Invalid(sp + ".path", "only Cookie stickiness takes a path");
        // 0 would silently be the 3 h default (kube-proxy's timeoutSeconds must be > 0 too).
        if (ttl && *ttl == 0) r.Invalid(sp + ".ttl", "must be greater than 0 (omit it for the 3h default)");
      } else if (type && *type != "None") {
        r.Unsupported(sp + ".type", "unknown stickiness type " + Q(*type) + " (want Cookie, SourceIP or None)");
      }
      if (ttl) so->set_ttl_ms(*ttl);
      if (so->type() == v1::Stickiness::NONE) out->clear_stickiness();
    }
  }
  if (const json* rt = r.Member(pol, p, "retries")) {
    const std::string rp = p + ".retries";
    if (proto == v1::UDP) r.Unsupported(rp, "a UDP listener has no connect to retry (datagrams are forwarded once)");
    // kubectl reads YAML 1.1, where an unquoted `on:` key (as API.md §1.3 writes it) is the
    // boolean true, so the API server stores "true" (the CRD declares it): it is read as "on".
    // Messages name the key as stored (retries.true[i]), as the API server's own do.
    json with_on;
    std::string on_field = rp + ".on";
    if (rt->is_object() && rt->contains("true")) {
      with_on = *rt;
      if (with_on.contains("on")) {
        r.Invalid(rp + ".true", "both \"on\" and \"true\" (an unquoted on: as YAML 1.1 reads it) are given; keep \"on\"");
      } else {
        with_on["on"] = std::move(with_on["true"]);
        on_field = rp + ".true";
      }
      with_on.erase("true");  // read as "on", or reported above: not an unknown field as well
      rt = &with_on;
    }
    if (r.Object(*rt, rp, {"attempts", "on", "perTryTimeout"})) {
      auto* ro = out->mutable_retries();
      if (auto a = RangedInt(r, *rt, rp, "attempts", 0, kMaxRetries)) {
        ro->set_attempts(*a);
      } else if (!l7 && !rt->contains("attempts")) {
        ro->set_attempts(2);  // L4: as without a retries policy (3 endpoints), not 0
      }
      static const std::set<std::string> kOn = {"connect-failure", "reset",         "timeout",
                                                "5xx",             "gateway-error", "non-idempotent"};
      const auto on = r.StringList(*rt, rp, "on");
      for (size_t i = 0; i < on.size(); ++i) {
        const std::string& o = on[i];
        const bool status = o.size() == 3 && std::all_of(o.begin(), o.end(), ::isdigit) && o[0] >= '4' && o[0] <= '5';
        if (!kOn.count(o) && !status) {
          r.Unsupported(FieldReader::Index(on_field, i),
                        "unknown retry condition " + Q(o) +
                            " (want connect-failure, reset, timeout, 5xx, gateway-error, non-idempotent or a "
                            "4xx/5xx status such as \"503\")");
          continue;
        }
        if (!l7 && o != "connect-failure") {
          r.Unsupported(FieldReader::Index(on_field, i),
                        "a " + v1::Protocol_Name(proto) + " listener can only retry on connect-failure");
          continue;
        }
        ro->add_on(o);
      }
      // No `on` means the connection errors (Gateway API GEP-1731: disconnect, reset, timeout,
      // TCP failure; nginx's proxy_next_upstream default "error timeout"), so `attempts` or
      // `perTryTimeout` alone does what it says; `on: []` retries on nothing.
      // `non-idempotent` widens the methods, it is no condition: listed alone, the conditions
      // are those of a missing `on`, for every method (not a policy that never retries).
      const bool only_methods = ro->on_size() > 0 && std::all_of(ro->on().begin(), ro->on().end(),
                                                                 [](const std::string& o) { return o == "non-idempotent"; });
      if (l7 && (!rt->contains("on") || only_methods)) {
        for (const char* o : {"connect-failure", "reset", "timeout"}) ro->add_on(o);
      }
      // Conditions without a count mean one retry (Envoy's num_retries default), not none.
      if (l7 && !rt->contains("attempts") && ro->on_size() > 0) ro->set_attempts(1);
      if (auto t = r.DurationMs(*rt, rp, "perTryTimeout", true)) {
        if (!l7) r.Unsupported(rp + ".perTryTimeout", "needs an HTTP or HTTPS listener");
        ro->set_per_try_timeout_ms(*t);
      }
    }
  }
  if (const json* to = r.Member(pol, p, "timeouts")) {
    const std::string tp = p + ".timeouts";
    if (r.Object(*to, tp, {"connect", "request", "idle"})) {
      auto* t = out->mutable_timeouts();
      if (auto v = r.DurationMs(*to, tp, "connect", true)) {
        if (proto == v1::UDP) r.Unsupported(tp + ".connect", "a UDP listener does not connect (use idle)");
        t->set_connect_ms(*v);
      }
      if (auto v = r.DurationMs(*to, tp, "request", true)) {
        if (!l7) r.Unsupported(tp + ".request", "request timeouts need an HTTP or HTTPS listener (use idle)");
        t->set_request_ms(*v);
      }
      if (auto v = r.DurationMs(*to, tp, "idle", true)) t->set_idle_ms(*v);
    }
  }
  if (const json* rl = r.Member(pol, p, "rateLimit")) {
    const std::string lp = p + ".rateLimit";
    if (!l7) r.Unsupported(lp, "rate limits need an HTTP or HTTPS listener");
    if (r.Object(*rl, lp, {"requestsPerSecond", "burst", "key"})) {
      auto* o = out->mutable_rate_limit();
      if (auto v = RangedInt(r, *rl, lp, "requestsPerSecond", 1, 1'000'000'000, true)) o->set_requests_per_second(*v);
      if (auto v = RangedInt(r, *rl, lp, "burst", 0, 1'000'000'000)) o->set_burst(*v);
      const std::string key = r.String(*rl, lp, "key").value_or("ClientIP");
      if (key == "ClientIP" || (key.rfind("Header:", 0) == 0 && IsToken(key.substr(7)))) {
        o->set_key(key.rfind("Header:", 0) == 0 ? "Header:" + Lower(key.substr(7)) : key);
      } else {
        r.Unsupported(lp + ".key", "unknown rate-limit key " + Q(key) + " (want ClientIP or Header:<name>)");
      }
    }
  }
}

// Fields that frame the message or belong to one connection: a rule touching them would make
// the proxy and the peer disagree on where a message ends (request smuggling, response splitting).
bool IsFramingOrHopByHop(const std::string& lower_name) {
  static const std::set<std::string> kNames = {"content-length", "transfer-encoding", "connection", "keep-alive",
                                               "te",             "trailer",           "upgrade",    "proxy-connection"};
  return kNames.count(lower_name) > 0;
}

void CompileHeaderRules(FieldReader& r, const json& h, const std::string& p, bool request, v1::HeaderRules* out,
                        std::vector<StatusWarning>* warnings) {
  if (!r.Object(h, p, {"set", "add", "remove"})) return;
  // An HTTP/1.1 request carries exactly one Host (RFC 9112 §3.2): it may be set, not added or
  // removed.
  auto host_kept = [&r, request](const std::string& field, const std::string& name) {
    if (request && Lower(name) == "host") {
      r.Invalid(field, "the Host header may only be set (or rewritten with rewrite.host): a request needs exactly one");
    }
  };
  auto check = [&r](const std::string& field, const std::string& name) {
    if (!IsToken(name)) {
      r.Invalid(field, "invalid header name " + Q(name));
    } else if (IsFramingOrHopByHop(Lower(name))) {
      r.Invalid(field, "header " + Q(name) + " frames the message or belongs to one connection; the proxy manages it");
    }
    return Lower(name);
  };
  auto value = [&r](const std::string& field, const std::string& v) {
    if (const auto why = FieldValueProblem(v); !why.empty()) r.Invalid(field, "header value " + Q(v) + " " + why);
    return v;
  };
  std::map<std::string, std::string> set_names;  // lowercase → as written: names are case-insensitive
  for (const auto& [k, v] : r.StringMap(h, p, "set")) {
    if (auto [it, fresh] = set_names.emplace(Lower(k), k); !fresh) {
      r.Invalid(p + ".set." + k, "header " + Q(k) + " is also set as " + Q(it->second) +
                                     " (header names are case-insensitive: one value would be lost)");
    }
    if (request && Lower(k) == "host" && FieldValueProblem(v).empty() && !IsHostHeaderValue(v)) {
      r.Invalid(p + ".set." + k, "invalid Host " + Q(v) + " (want a DNS name or IP address, with an optional :port)");
    }
    (*out->mutable_set())[check(p + ".set." + k, k)] = value(p + ".set." + k, v);
  }
  std::map<std::string, std::string> add_names;
  for (const auto& [k, v] : r.StringMap(h, p, "add")) {
    if (auto [it, fresh] = add_names.emplace(Lower(k), k); !fresh) {
      r.Invalid(p + ".add." + k, "header " + Q(k) + " is also added as " + Q(it->second) +
                                     " (header names are case-insensitive: one value would be lost)");
    }
    host_kept(p + ".add." + k, k);
    if (!request && Lower(k) == "date") {
      // Accepted before (not refused now: objects accepted before must keep routing), but a
      // response carries exactly one Date: the add replaces it, as set does.
      const bool also_set = set_names.count("date") > 0;
      warnings->push_back({"FieldIgnored", p + ".add." + k,
                           also_set ? "a response carries exactly one Date (RFC 9110 §6.6.1): set gives it, this "
                                      "value is not sent"
                                    : "a response carries exactly one Date (RFC 9110 §6.6.1): this value replaces "
                                      "it, as set would (use set)"});
      if (!also_set) (*out->mutable_set())["date"] = value(p + ".add." + k, v);
      continue;
    }
    (*out->mutable_add())[check(p + ".add." + k, k)] = value(p + ".add." + k, v);
  }
  const auto remove = r.StringList(h, p, "remove");
  for (size_t i = 0; i < remove.size(); ++i) {
    host_kept(FieldReader::Index(p + ".remove", i), remove[i]);
    if (!request && Lower(remove[i]) == "date") {
      warnings->push_back({"FieldIgnored", FieldReader::Index(p + ".remove", i),
                           "a response needs a Date (RFC 9110 §6.6.1): the backend's is removed and the proxy adds its own"});
    }
    out->add_remove(check(FieldReader::Index(p + ".remove", i), remove[i]));
  }
}

void CompileFilters(FieldReader& r, const json& f, const std::string& p, const v1::Route& route, v1::Protocol proto,
                    v1::RouteFilters* out, std::vector<StatusWarning>* warnings) {
  if (!IsL7(proto)) {
    r.Unsupported(p, "filters need an HTTP or HTTPS listener");
    return;
  }
  if (!r.Object(f, p, {"redirect", "rewrite", "requestHeaders", "responseHeaders"})) return;
  if (const json* rd = r.Member(f, p, "redirect")) {
    const std::string rp = p + ".redirect";
    if (r.Object(*rd, rp, {"scheme", "host", "port", "path", "statusCode"})) {
      auto* o = out->mutable_redirect();
      o->set_enabled(true);
      if (auto s = r.String(*rd, rp, "scheme"); s && !s->empty()) {
        if (*s != "http" && *s != "https") r.Unsupported(rp + ".scheme", "unknown scheme " + Q(*s) + " (want http or https)");
        o->set_scheme(*s);
      }
      if (auto h = r.String(*rd, rp, "host"); h && !h->empty()) {
        // An IPv6 literal may be written bracketed, as in a URL; it is sent bracketed either way.
        const bool bracketed = h->size() > 2 && h->front() == '[' && h->back() == ']';
        const std::string bare = bracketed ? h->substr(1, h->size() - 2) : *h;
        const bool v6 = IsIp(bare) && bare.find(':') != std::string::npos;
        if (bracketed ? !v6 : (!IsDns1123Subdomain(*h) && !IsIp(*h))) r.Invalid(rp + ".host", "invalid host " + Q(*h));
        o->set_host(v6 ? "[" + bare + "]" : *h);
      }
      if (auto v = RangedInt(r, *rd, rp, "port", 0, 65535)) o->set_port(*v);
      if (auto s = r.String(*rd, rp, "path"); s && !s->empty()) {
        if (const auto why = PathProblem(*s); !why.empty()) r.Invalid(rp + ".path", "path " + Q(*s) + " " + why);
        o->set_path(*s);
      }
      if (auto v = r.Int(*rd, rp, "statusCode")) {
        if (*v != 0 && *v != 301 && *v != 302 && *v != 303 && *v != 307 && *v != 308) {
          r.Unsupported(rp + ".statusCode", "unsupported redirect status " + std::to_string(*v) +
                                                " (want 301, 302, 303, 307 or 308)");
        } else {
          o->set_status_code(*v == 0 ? 302 : static_cast<uint32_t>(*v));
        }
      } else {
        o->set_status_code(302);
      }
    }
  }
  if (const json* rw = r.Member(f, p, "rewrite")) {
    const std::string rp = p + ".rewrite";
    if (out->has_redirect()) r.Invalid(rp, "a route cannot both redirect and rewrite");
    if (r.Object(*rw, rp, {"pathPrefix", "host"})) {
      auto* o = out->mutable_rewrite();
      o->set_enabled(true);
      const bool regex = route.match().path().type() == v1::PathMatch::REGULAR_EXPRESSION;
      if (auto s = r.String(*rw, rp, "pathPrefix"); s && s->empty() && regex) {
        // Accepted before "" meant "strip": still accepted, and said to do nothing here.
        warnings->push_back({"FieldIgnored", rp + ".pathPrefix",
                             "an empty pathPrefix strips the matched prefix, and a RegularExpression match has none: "
                             "the path is not rewritten"});
      } else if (s) {
        // "" strips the matched prefix, as "/" does (Gateway API ReplacePrefixMatch: "/foo/bar"
        // with prefix "/foo" and "" becomes "/bar"); not "no rewrite".
        if (s->empty()) *s = "/";
        if (const auto why = PathProblem(*s); !why.empty()) r.Invalid(rp + ".pathPrefix", "path " + Q(*s) + " " + why);
        if (route.match().path().type() == v1::PathMatch::REGULAR_EXPRESSION) {
          r.Unsupported(rp + ".pathPrefix", "needs a Prefix or Exact path match, not RegularExpression");
        }
        o->set_path_prefix(*s);
      }
      if (auto h = r.String(*rw, rp, "host"); h && !h->empty()) {
        // The Host header's value, checked as requestHeaders.set Host; a bare IPv6 literal
        // (accepted before) is sent bracketed, as a Host header needs it (RFC 3986 IP-literal).
        const bool bare_v6 = IsIp(*h) && h->find(':') != std::string::npos;
        if (!IsHostHeaderValue(*h) && !bare_v6) r.Invalid(rp + ".host", "invalid host " + Q(*h));
        o->set_host(bare_v6 ? "[" + *h + "]" : *h);
      }
    }
  }
  if (const json* h = r.Member(f, p, "requestHeaders")) {
    CompileHeaderRules(r, *h, p + ".requestHeaders", true, out->mutable_request_headers(), warnings);
    if (!out->rewrite().host().empty() && out->request_headers().set().count("host")) {
      warnings->push_back({"FieldIgnored", p + ".rewrite.host",
                           "requestHeaders.set sets Host too, after the rewrite: its value is sent, not rewrite.host's; "
                           "keep one of them"});
    }
  }
  if (const json* h = r.Member(f, p, "responseHeaders")) CompileHeaderRules(r, *h, p + ".responseHeaders", false, out->mutable_response_headers(), warnings);
}

// `proto` is the route's listener protocol: a {service, port} backend resolves the Service port of
// that transport (UDP for a UDP listener, TCP for the others).
void CompileBackends(FieldReader& r, const json& route, const std::string& p, const CompileContext& ctx,
                     const std::string& route_name, v1::Protocol proto, CompiledObject& c, v1::Route* out) {
  const ObjectStore& store = ctx.store;
  const json* backends = r.Array(route, p, "backends");
  if (!backends) return;
  for (size_t i = 0; i < backends->size(); ++i) {
    const std::string bp = FieldReader::Index(p + ".backends", i);
    const json& b = (*backends)[i];
    if (!r.Object(b, bp, {"service", "port", "endpoints", "weight"})) continue;
    const auto weight = RangedInt(r, b, bp, "weight", 0, kMaxWeight).value_or(1);
    v1::BackendSet set;
    set.set_name(c.key.ns + "/" + c.key.name + "/" + route_name + "/" + std::to_string(i));
    const json* svc = r.Member(b, bp, "service");
    const json* eps = r.Member(b, bp, "endpoints");
    if ((svc != nullptr) == (eps != nullptr)) {
      r.Invalid(bp, "give exactly one of service (with port) or endpoints");
      continue;
    }
    if (svc) {
      auto name = r.String(b, bp, "service", true);
      auto port = RangedInt(r, b, bp, "port", 1, 65535, true);
      if (name && !IsDns1123Label(*name)) r.Invalid(bp + ".service", Q(*name) + " is not a valid Service name");
      if (!name || !port || !IsDns1123Label(*name)) continue;
      ResolveServiceBackend(store, c.key.ns, *name, ServicePortRef{*port, "", proto == v1::UDP ? "UDP" : "TCP"},
                            bp + ".service", &set, &c.warnings);
    } else {
      if (r.Member(b, bp, "port")) r.Invalid(bp + ".port", "port belongs to a service backend; endpoints carry their own");
      const json* list = r.Array(b, bp, "endpoints", true);
      if (!list) continue;
      if (list->empty()) r.Invalid(bp + ".endpoints", "must list at least one endpoint");
      std::vector<v1::Endpoint> endpoints;
      for (size_t j = 0; j < list->size(); ++j) {
        const std::string ep = FieldReader::Index(bp + ".endpoints", j);
        if (!r.Object((*list)[j], ep, {"address", "port"})) continue;
        auto addr = r.String((*list)[j], ep, "address", true);
        auto port = RangedInt(r, (*list)[j], ep, "port", 1, 65535, true);
        if (addr && !IsIp(*addr)) r.Invalid(ep + ".address", Q(*addr) + " is not an IP address");
        if (!addr || !port || !IsIp(*addr)) continue;
        // The dataplane runs on the node's network: an endpoint there would proxy anyone to the
        // node's own services (its admin port, a cloud's metadata service). The API server
        // refuses such addresses in EndpointSlices; a LoadBalancer is held to the same rule.
        if (ctx.options.refuse_node_local_endpoints) {
          if (const std::string why = NodeLocalAddressProblem(*addr); !why.empty()) {
            r.Invalid(ep + ".address", Q(*addr) + " " + why +
                                           ": endpoints must be pod or external addresses (--allow-node-local-endpoints)");
            continue;
          }
        }
        v1::Endpoint e;
        e.set_address(CanonicalIp(*addr));  // one spelling per address (duplicates, keys)
        e.set_port(*port);
        e.set_ready(true);
        e.set_serving(true);
        endpoints.push_back(std::move(e));
      }
      std::sort(endpoints.begin(), endpoints.end(), EndpointLess);
      for (size_t j = 1; j < endpoints.size(); ++j) {
        if (endpoints[j].address() == endpoints[j - 1].address() && endpoints[j].port() == endpoints[j - 1].port()) {
          r.Invalid(bp + ".endpoints", "endpoint " + endpoints[j].address() + ":" + std::to_string(endpoints[j].port()) +
                                           " is listed twice");
        }
      }
      for (auto& e : endpoints) *set.add_endpoints() = std::move(e);
    }
    auto* wb = out->add_backends();
    wb->set_backend_set(set.name());
    wb->set_weight(weight);
    c.backend_sets.push_back(std::move(set));
  }
}

void CompileHealthCheck(FieldReader& r, const json& hc, v1::HealthCheck* out) {
  const std::string p = "spec.healthCheck";
  if (!r.Object(hc, p, {"protocol", "path", "interval", "timeout", "healthyThreshold", "unhealthyThreshold",
                        "expectedStatuses"})) {
    return;
  }
  // The CRD defaults protocol to TCP; standalone manifests get the same default.
  auto proto = r.String(hc, p, "protocol");
  if (!proto && !hc.contains("protocol")) proto = "TCP";
  if (proto) {
    if (*proto == "TCP") out->set_protocol(v1::HealthCheck::TCP);
    else if (*proto == "HTTP") out->set_protocol(v1::HealthCheck::HTTP);
    else if (*proto == "GRPC") out->set_protocol(v1::HealthCheck::GRPC);
    else r.Unsupported(p + ".protocol", "unknown health-check protocol " + Q(*proto) + " (want TCP, HTTP or GRPC)");
  }
  if (auto path = r.String(hc, p, "path")) {
    if (out->protocol() == v1::HealthCheck::TCP) {
      r.Unsupported(p + ".path", "a TCP health check has no path");
    } else if (out->protocol() == v1::HealthCheck::HTTP && !PathProblem(path->substr(0, path->find('?'))).empty()) {
      r.Invalid(p + ".path", "path " + Q(*path) + " " + PathProblem(path->substr(0, path->find('?'))));
    } else if (out->protocol() == v1::HealthCheck::HTTP && !FieldValueProblem(*path).empty()) {
      r.Invalid(p + ".path", "path " + Q(*path) + " must not contain control characters or spaces");
    } else if (out->protocol() == v1::HealthCheck::GRPC) {
      // As the CRD's rule: a GRPC check asks grpc.health.v1 about the whole server (service "").
      r.Unsupported(p + ".path", "a GRPC health check has no path (it checks the whole server: service \"\")");
    }
    out->set_path(*path);
  } else if (out->protocol() == v1::HealthCheck::HTTP) {
    out->set_path("/");
  }
  auto interval = r.DurationMs(hc, p, "interval");
  auto timeout = r.DurationMs(hc, p, "timeout");
  if (interval) {
    // A floor, so that a typo ("5ms" for "5s") does not have every dataplane probe every
    // endpoint hundreds of times a second (ALB's floor is 5s, a kubelet probe's 1s).
    if (*interval < health_defaults::kMinIntervalMs) {
      r.Invalid(p + ".interval", "must be at least " + std::to_string(health_defaults::kMinIntervalMs) + "ms");
    }
    out->set_interval_ms(*interval);
  }
  if (timeout) {
    if (*timeout == 0) r.Invalid(p + ".timeout", "must be greater than 0");
    out->set_timeout_ms(*timeout);
  }
  // As the CRD's rule, which a cluster checks after applying the defaults (interval 5s, timeout
  // 2s): the effective timeout must not be longer than the effective interval.
  const uint32_t eff_interval = interval && *interval > 0 ? *interval : health_defaults::kIntervalMs;
  const uint32_t eff_timeout = timeout && *timeout > 0 ? *timeout : health_defaults::kTimeoutMs;
  if (eff_timeout > eff_interval) {
    r.Invalid(p + ".timeout", timeout ? "must not be longer than interval"
                                      : "the default timeout (2s) must not be longer than interval; set a shorter timeout");
  }
  if (auto v = RangedInt(r, hc, p, "healthyThreshold", 1, kMaxHealthThreshold)) out->set_healthy_threshold(*v);
  if (auto v = RangedInt(r, hc, p, "unhealthyThreshold", 1, kMaxHealthThreshold)) out->set_unhealthy_threshold(*v);
  if (const json* st = r.Array(hc, p, "expectedStatuses")) {
    if (!st->empty() && out->protocol() != v1::HealthCheck::HTTP) {
      r.Unsupported(p + ".expectedStatuses", "only HTTP health checks have statuses");
    }
    if (st->size() > kMaxExpectedStatuses) {
      r.Invalid(p + ".expectedStatuses", "must list at most " + std::to_string(kMaxExpectedStatuses) + " statuses, not " +
                                             std::to_string(st->size()));
    }
    for (size_t i = 0; i < st->size(); ++i) {
      const auto& v = (*st)[i];
      if (!v.is_number_integer()) {
        r.Invalid(FieldReader::Index(p + ".expectedStatuses", i),
                  "must be an integer HTTP status code, not " + FieldReader::TypeName(v) +
                      (v.is_string() ? " " + Q(v.get<std::string>()) + " (write it without quotes)" : ""));
        continue;
      }
      if (v.get<int64_t>() < 100 || v.get<int64_t>() > 599) {
        r.Invalid(FieldReader::Index(p + ".expectedStatuses", i),
                  std::to_string(v.get<int64_t>()) + " is not an HTTP status code (100..599)");
        continue;
      }
      out->add_expected_statuses(static_cast<uint32_t>(v.get<int64_t>()));
    }
  }
}

void CompileForwarded(FieldReader& r, const json& fh, v1::ForwardedHeaders* out) {
  const std::string p = "spec.forwardedHeaders";
  if (!r.Object(fh, p, {"xForwardedFor", "trustedProxies"})) return;
  if (auto m = r.String(fh, p, "xForwardedFor")) {
    if (*m == "Append") out->set_x_forwarded_for(v1::ForwardedHeaders::APPEND);
    else if (*m == "Replace") out->set_x_forwarded_for(v1::ForwardedHeaders::REPLACE);
    else if (*m == "Off") out->set_x_forwarded_for(v1::ForwardedHeaders::OFF);
    else r.Unsupported(p + ".xForwardedFor", "unknown mode " + Q(*m) + " (want Append, Replace or Off)");
  }
  ReadCidrs(r, fh, p, "trustedProxies", out->mutable_trusted_proxies());
}

}  // namespace

std::optional<CompiledObject> CompileLoadBalancer(const ObjectKey& key, const json& o, const CompileContext& ctx,
                                                  std::vector<Problem>* problems) {
  FieldReader r;
  CompiledObject c;
  c.key = key;
  r.Object(o, "", {"apiVersion", "kind", "metadata", "spec", "status"});
  if (ctx.options.check_known_fields) CheckKnownFields("LoadBalancer", o, r);  // its metadata
  if (const json* meta = r.Member(o, "", "metadata"); meta && meta->is_object()) {
    if (!IsObjectName(key.name)) r.Invalid("metadata.name", Q(key.name) + " is not a valid DNS-1123 subdomain");
    if (!IsDns1123Label(key.ns)) r.Invalid("metadata.namespace", Q(key.ns) + " is not a valid DNS-1123 label");
    if (auto g = meta->find("generation"); g != meta->end() && g->is_number_integer()) c.generation = g->get<int64_t>();
    c.created = CreationTimeOf(o);
    // None is read, but none is dropped silently either: a doorman.dev/ typo, or an
    // ingress-nginx access rule (whitelist-source-range) that is not enforced (helper-131).
    AnnotationReader ann(o, {}, &r, &c.warnings);
  }
  const json* spec = r.Member(o, "", "spec", true);
  if (spec && r.Object(*spec, "spec", {"listeners", "routes", "healthCheck", "forwardedHeaders"})) {
    std::set<std::string> unusable_listeners;
    CompileListeners(r, *spec, ctx, c, &unusable_listeners);
    v1::HealthCheck hc;
    if (const json* h = r.Member(*spec, "spec", "healthCheck")) CompileHealthCheck(r, *h, &hc);
    v1::ForwardedHeaders fwd;
    const json* fh = r.Member(*spec, "spec", "forwardedHeaders");
    if (fh) CompileForwarded(r, *fh, &fwd);

    std::map<std::string, std::string> route_names;
    std::map<std::string, std::string> l4_taken;  // TCP/UDP listener → route field
    std::map<std::string, std::string> tls_default;  // TLS listener → its route without match.sni
    if (const json* routes = r.Array(*spec, "spec", "routes")) {
      for (size_t i = 0; i < routes->size(); ++i) {
        const json& rt = (*routes)[i];
        const std::string p = FieldReader::Index("spec.routes", i);
        if (!r.Object(rt, p, {"name", "listener", "match", "backends", "policy", "filters"})) continue;
        CompiledRoute cr;
        cr.decl_index = i;
        auto name = r.String(rt, p, "name", true);
        auto listener = r.String(rt, p, "listener", true);
        if (name) {
          if (!IsDns1123Label(*name)) {
            r.Invalid(p + ".name", Q(*name) + " is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)");
          } else if (auto [it, fresh] = route_names.emplace(*name, p); !fresh) {
            r.Invalid(p + ".name", "duplicate route name " + Q(*name) + " (also " + it->second + ")");
          }
        }
        const CompiledListener* cl = nullptr;
        if (listener) {
          cl = FindListener(c, *listener);
          if (!cl && !unusable_listeners.count(*listener)) {
            r.Invalid(p + ".listener", "no listener named " + Q(*listener) + " in spec.listeners");
          } else if (!cl) {
            // Its listener was refused (its port or protocol): that is reported there.
          } else if (cl->proto.protocol() == v1::TCP || cl->proto.protocol() == v1::UDP) {
            if (auto [it, fresh] = l4_taken.emplace(*listener, p); !fresh) {
              r.Invalid(p + ".listener", "listener " + Q(*listener) + " is " + v1::Protocol_Name(cl->proto.protocol()) +
                                             " and already has a route (" + it->second +
                                             "); TCP and UDP listeners take exactly one route");
            }
          }
        }
        if (!name || !cl) continue;
        const v1::Protocol proto = cl->proto.protocol();
        v1::Route& route = cr.proto;
        route.set_name(key.ns + "/" + key.name + "/" + *name);
        route.set_listener(cl->proto.name());
        cr.user_listener = *listener;
        if (const json* m = r.Member(rt, p, "match")) CompileMatch(r, *m, p + ".match", proto, route.mutable_match(), &c.warnings);
        for (int mi = 0; mi < route.match().methods_size(); ++mi) {
          if (route.match().methods(mi) != "CONNECT") continue;
          // The CRD's enum has it (Gateway API's HTTPMethod), but the proxy does not tunnel: a
          // CONNECT request is answered 400 before any route is chosen.
          c.warnings.push_back({"FieldIgnored", FieldReader::Index(p + ".match.methods", static_cast<size_t>(mi)),
                                "a CONNECT request (any target form) is answered 400 before routing (doorman does not "
                                "tunnel), so it never matches" +
                                    std::string(route.match().methods_size() == 1 ? ": this route matches no request" : "")});
        }
        // A route whose match.sni entries were all refused (reported there) is not a default route.
        const auto declared_match = rt.find("match");
        const bool declared_sni = declared_match != rt.end() && declared_match->is_object() &&
                                  declared_match->contains("sni") && !(*declared_match)["sni"].is_null() &&
                                  !((*declared_match)["sni"].is_array() && (*declared_match)["sni"].empty());
        if (proto == v1::TLS && !declared_sni) {
          // The default route of a TLS passthrough listener (no match.sni): a second one would
          // never be chosen.
          if (auto [it, fresh] = tls_default.emplace(*listener, p); !fresh) {
            r.Invalid(p + ".match.sni", "listener " + Q(*listener) + " already has a default route without match.sni (" +
                                            it->second + "); a TLS listener takes at most one");
          }
        }
        CompileBackends(r, rt, p, ctx, *name, proto, c, &route);
        if (const json* pol = r.Member(rt, p, "policy")) CompilePolicy(r, *pol, p + ".policy", proto, route.mutable_policy());
        if (const auto& st = route.policy().stickiness(); IsHostPrefixedCookie(st.cookie_name()) && !st.cookie_path().empty() &&
            st.cookie_path() != "/") {
          c.warnings.push_back({"FieldIgnored", p + ".policy.stickiness.path", HostPrefixedCookiePathWhy(st.cookie_name())});
        }
        if (const auto& retry = route.policy().retries(); IsL7(proto) && route.policy().has_retries()) {
          // Accepted (as before), but said: a retry setting that can never act.
          if (retry.on_size() == 0 && (retry.attempts() > 0 || retry.per_try_timeout_ms() > 0)) {
            const json& raw = rt.at("policy").at("retries");  // has_retries: both are objects
            c.warnings.push_back({"FieldIgnored", p + ".policy.retries." + (raw.contains("on") ? "on" : "true"),
                                  "no retry condition (on: []): nothing is retried and perTryTimeout is not applied; "
                                  "omit on for connect-failure, reset and timeout"});
          } else if (retry.attempts() == 0 && retry.per_try_timeout_ms() > 0) {
            c.warnings.push_back({"FieldIgnored", p + ".policy.retries.perTryTimeout",
                                  "attempts is 0: nothing is retried and perTryTimeout is not applied (timeouts.request "
                                  "bounds the request)"});
          }
        }
        const json* f = r.Member(rt, p, "filters");
        if (f) CompileFilters(r, *f, p + ".filters", route, proto, route.mutable_filters(), &c.warnings);
        if (route.filters().redirect().enabled()) {
          // The route answers itself: what would shape a proxied exchange does nothing here
          // (helper-132). Said, not refused: objects accepted before keep routing.
          std::vector<std::string> unused;
          for (const char* k : {"backends", "policy"}) {
            if (rt.contains(k)) unused.push_back(p + "." + k);
          }
          if (f && f->is_object() && f->contains("requestHeaders")) unused.push_back(p + ".filters.requestHeaders");
          for (const auto& field : unused) {
            c.warnings.push_back({"FieldIgnored", field, "the route redirects (filters.redirect): its requests are "
                                                         "answered by the redirect, so this is not used"});
          }
          // Over HTTPS the redirect carries the route's Strict-Transport-Security (what HSTS
          // preload asks for, helper-134); any other response rule is unused.
          const auto& rh = route.filters().response_headers();
          const bool sends_hsts = proto == v1::HTTPS && (rh.set().count("strict-transport-security") > 0 ||
                                                         rh.add().count("strict-transport-security") > 0);
          const bool only_hsts = sends_hsts && rh.remove_size() == 0 && rh.set().size() + rh.add().size() == 1;
          if (f && f->is_object() && f->contains("responseHeaders") && !only_hsts) {
            c.warnings.push_back({"FieldIgnored", p + ".filters.responseHeaders",
                                  sends_hsts ? "the route redirects (filters.redirect): only its Strict-Transport-Security "
                                               "is sent with the redirect; the other rules are not used"
                                             : "the route redirects (filters.redirect): its requests are answered by the "
                                               "redirect, so this is not used"});
          }
        }
        // Where the redirect points, as the dataplane writes it: port 0 is the scheme's well-known
        // port when a scheme is given, else the listener's (docs/l7.md, Gateway API).
        const auto& rd = route.filters().redirect();
        const std::string own_scheme = proto == v1::HTTPS ? "https" : "http";
        const uint32_t to_port = rd.port() != 0          ? rd.port()
                                 : rd.scheme().empty()   ? cl->proto.port()
                                 : rd.scheme() == "https" ? 443u
                                                          : 80u;
        // The Location is the request's own URL when host and path are kept, or set to the only
        // host / the Exact path the route matches (helper-125: {path: /a} on Exact /a).
        // The Location is the request's own URL, whatever the request: host and path kept, or set
        // to the route's only host / its Exact path. Only then: a redirect to another host or
        // path the route also matches loops only if no more specific route serves that URL
        // (helper-128: *.example.com -> www.example.com, served by its own route), which this
        // per-route check cannot tell.
        const auto& m = route.match();
        const bool same_host = rd.host().empty() || (m.hosts_size() == 1 && Lower(m.hosts(0)) == Lower(rd.host()));
        const bool same_path = rd.path().empty() || (m.has_path() && m.path().type() == v1::PathMatch::EXACT &&
                                                     m.path().value() == rd.path());
        if (rd.enabled() && same_host && same_path && (rd.scheme().empty() || rd.scheme() == own_scheme) &&
            to_port == cl->proto.port()) {
          // Allowed (Gateway API allows an empty redirect), but a client that follows it loops —
          // unless the follow-up GET does not match the route (Post/Redirect/Get on a POST route).
          const auto& methods = route.match().methods();
          const bool get_matches = methods.empty() || std::find(methods.begin(), methods.end(), "GET") != methods.end() ||
                                   std::find(methods.begin(), methods.end(), "HEAD") != methods.end();
          if (get_matches) c.warnings.push_back({"RedirectLoop", p + ".filters.redirect",
                                "the redirect sends every request back to its own URL (same scheme, host, port and "
                                "path): a client that follows it loops; change scheme, host, port or path"});
        }
        if (fh) *route.mutable_forwarded_headers() = fwd;
        if (!rt.contains("backends") && !route.filters().redirect().enabled()) {
          // The CRD's rule: a route that does not redirect needs backends (an API server refuses it).
          r.Invalid(p + ".backends", "required unless the route redirects (filters.redirect)");
        } else if (route.backends_size() == 0 && !route.filters().redirect().enabled()) {
          c.warnings.push_back({"NoBackends", p + ".backends", "route " + Q(*name) + " has no backends: its requests get 503"});
        } else if (route.backends_size() > 0 &&
                   std::all_of(route.backends().begin(), route.backends().end(),
                               [](const v1::WeightedBackend& b) { return b.weight() == 0; })) {
          c.warnings.push_back({"NoBackends", p + ".backends",
                                "every backend of route " + Q(*name) +
                                    " has weight 0: it receives no traffic (HTTP 503, TCP/UDP refused)"});
        }
        c.routes.push_back(std::move(cr));
      }
    }
    for (const auto& l : c.listeners) {
      // A listener no route names still takes its port (it is declared): said, not silent.
      if (std::any_of(c.routes.begin(), c.routes.end(), [&l](const CompiledRoute& cr) { return cr.user_listener == l.user_name; })) {
        continue;
      }
      // Worded for what holds whoever ends up owning the port: an HTTP port shared with another
      // object still serves that object's hosts; a TCP/UDP/TLS port this object owns refuses
      // connections or drops datagrams.
      const v1::Protocol lp = l.proto.protocol();
      c.warnings.push_back({"NoRoutes", l.field,
                            "no route names listener " + Q(l.user_name) + ": this object routes nothing on port " +
                                std::to_string(l.proto.port()) +
                                (IsL7(lp) ? " (requests no other object routes get 404)"
                                 : lp == v1::UDP ? " (its datagrams are dropped)"
                                                 : " (its connections are refused)")});
    }
    if (fh && std::none_of(c.listeners.begin(), c.listeners.end(),
                           [](const CompiledListener& l) { return IsL7(l.proto.protocol()); })) {
      c.warnings.push_back({"FieldIgnored", "spec.forwardedHeaders",
                            "X-Forwarded-* headers are added by HTTP and HTTPS listeners only; this object has none"});
    }
    if (hc.protocol() != v1::HealthCheck::NONE) {
      // A TCP/HTTP/gRPC probe cannot tell whether a UDP service answers: the backend sets of UDP
      // routes are not checked (their endpoints count as healthy), and that is said.
      std::set<std::string> udp_sets;
      for (const auto& cr : c.routes) {
        const CompiledListener* cl = FindListener(c, cr.user_listener);
        if (cl == nullptr || cl->proto.protocol() != v1::UDP) continue;
        for (const auto& b : cr.proto.backends()) udp_sets.insert(b.backend_set());
      }
      for (auto& set : c.backend_sets) {
        if (!udp_sets.count(set.name())) *set.mutable_health_check() = hc;
      }
      if (!udp_sets.empty()) {
        c.warnings.push_back({"HealthCheckNotRun", "spec.healthCheck",
                              "the backends of UDP listeners are not health-checked (a TCP, HTTP or gRPC probe cannot "
                              "tell whether a UDP service answers); their endpoints count as healthy"});
      }
    }
  }
  if (ctx.options.loadbalancer_schema != nullptr) {
    // No API server validated this object (--manifests): the CRD's own schema limits apply. The
    // translator's messages come first; the schema adds what it has not reported already.
    const json& schema = *ctx.options.loadbalancer_schema;
    if (schema.is_object() && schema.contains("properties") && schema["properties"].contains("spec") && spec) {
      for (const auto& v : CheckOpenApi(schema["properties"]["spec"], *spec, "spec")) {
        const bool known = std::any_of(r.problems.begin(), r.problems.end(), [&](const Problem& p) {
          return p.field == v.field || p.field.rfind(v.field + ".", 0) == 0 || p.field.rfind(v.field + "[", 0) == 0 ||
                 v.field.rfind(p.field + ".", 0) == 0 || v.field.rfind(p.field + "[", 0) == 0;
        });
        if (!known) r.Invalid(v.field, v.message + " (the LoadBalancer CRD's schema)");
      }
    }
  }
  if (!r.problems.empty()) {
    problems->insert(problems->end(), r.problems.begin(), r.problems.end());
    return std::nullopt;
  }
  return c;
}

}  // namespace doorman::controller::internal
