#include "dataplane/config/compile.h"

#include <strings.h>

#include <arpa/inet.h>
#include <re2/re2.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_set>

#include "doorman/v1/routing.pb.h"

namespace doorman::dataplane {
namespace {

namespace pb = doorman::v1;

// Thrown inside Compile() only; turned into CompileResult::error.
struct CompileError {
  std::string message;
};

[[noreturn]] void Fail(std::string message) { throw CompileError{std::move(message)}; }

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; });
  return out;
}

// What may go onto a request line or into a Host/Location field unquoted: no space, no control
// character (the controller validates these fields; this is the dataplane's own guard).
bool EmittableToken(const std::string& s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

std::shared_ptr<const re2::RE2> CompileRegex(const std::string& pattern, const std::string& where) {
  re2::RE2::Options opts;
  opts.set_log_errors(false);
  auto re = std::make_shared<const re2::RE2>(pattern, opts);
  if (!re->ok()) Fail(where + ": invalid regular expression \"" + pattern + "\": " + re->error());
  return re;
}

std::optional<Protocol> ToProtocol(pb::Protocol p) {
  switch (p) {
    case pb::TCP:
      return Protocol::kTcp;
    case pb::UDP:
      return Protocol::kUdp;
    case pb::TLS:
      return Protocol::kTls;
    case pb::HTTP:
      return Protocol::kHttp;
    case pb::HTTPS:
      return Protocol::kHttps;
    default:
      return std::nullopt;
  }
}

std::string EndpointKey(const std::string& address, uint32_t port) {
  if (address.find(':') != std::string::npos) return "[" + address + "]:" + std::to_string(port);
  return address + ":" + std::to_string(port);
}

bool IsIpLiteral(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

Millis MsOr(uint32_t ms, Millis dflt) { return ms == 0 ? dflt : Millis(ms); }

class Compiler {
 public:
  Compiler(const pb::Snapshot& s, const CompileOptions& o, std::vector<std::string>* w)
      : snap_(s), opts_(o), warnings_(*w) {}

  std::shared_ptr<RuntimeConfig> Run(uint64_t version) {
    cfg_ = std::make_shared<RuntimeConfig>();
    cfg_->version = version;
    CompileBackendSets();
    CompileHostOwners();
    CompileListenerHeaders();
    CompileRoutes();
    LinkListeners();
    cfg_->warnings = warnings_;
    return cfg_;
  }

 private:
  void Warn(std::string line) { warnings_.push_back(std::move(line)); }

  // One EndpointState per endpoint key: reused from the previous config, shared between sets.
  lb::EndpointStatePtr StateFor(const std::string& key) {
    if (auto it = states_.find(key); it != states_.end()) return it->second;
    if (previous_states_.empty() && opts_.previous != nullptr) {
      for (const auto& set : opts_.previous->backend_sets) {
        for (const auto& e : set->endpoints) {
          if (e.state) previous_states_.emplace(e.key, e.state);
        }
      }
    }
    lb::EndpointStatePtr st;
    if (auto it = previous_states_.find(key); it != previous_states_.end()) {
      st = it->second;
    } else {
      st = std::make_shared<lb::EndpointState>();
    }
    states_[key] = st;
    return st;
  }

  // The verdict slot of `set`'s check `spec` of endpoint `key` (scheduler.h HealthSlot): one per
  // endpoint and check in this snapshot; the previous snapshot's for the same endpoint and check
  // when there was one; else a new one that starts with the verdict this set's previous check of
  // the endpoint had (an edited check does not hand a failing endpoint traffic again), or healthy.
  lb::HealthSlotPtr HealthSlotFor(const std::string& set, const std::string& key, const health::CheckSpec& spec) {
    const std::string id = key + "|" + CheckFingerprint(spec);
    if (auto it = slots_.find(id); it != slots_.end()) return it->second;
    if (!previous_slots_indexed_ && opts_.previous != nullptr) {
      previous_slots_indexed_ = true;
      for (const auto& s : opts_.previous->backend_sets) {
        for (const auto& e : s->endpoints) {
          if (!e.health) continue;
          previous_slots_.emplace(e.key + "|" + CheckFingerprint(s->health_check), e.health);
          previous_set_slots_.emplace(s->name + "|" + e.key, e.health);
        }
      }
    }
    lb::HealthSlotPtr slot;
    if (auto it = previous_slots_.find(id); it != previous_slots_.end()) {
      slot = it->second;
    } else {
      slot = std::make_shared<lb::HealthSlot>();
      if (auto p = previous_set_slots_.find(set + "|" + key); p != previous_set_slots_.end()) {
        slot->healthy.store(p->second->healthy.load(std::memory_order_relaxed), std::memory_order_relaxed);
      }
    }
    slots_[id] = slot;
    return slot;
  }

  static std::string CheckFingerprint(const health::CheckSpec& s) {
    std::string out = std::to_string(static_cast<int>(s.protocol)) + "|" + s.path + "|" + s.grpc_service + "|" +
                      std::to_string(s.interval.count()) + "|" + std::to_string(s.timeout.count()) + "|" +
                      std::to_string(s.healthy_threshold) + "|" + std::to_string(s.unhealthy_threshold) + "|";
    for (uint32_t st : s.expected_statuses) out += std::to_string(st) + ",";
    return out + "|" + s.tls_id + "|" + s.tls_server_name;
  }

  // Make-before-break inside the snapshot: backend sets first, then routes, then listeners.
  void CompileBackendSets() {
    for (const auto& in : snap_.backend_sets()) {
      const std::string where = "backend set \"" + in.name() + "\"";
      if (in.name().empty()) Fail("backend set with an empty name");
      if (sets_.count(in.name())) Fail(where + ": duplicate name");
      auto out = std::make_unique<BackendSet>();
      out->name = in.name();
      out->local_only = in.local_only();
      if (in.local_only() && opts_.node_name.empty()) {
        Warn(where + ": local_only set but this dataplane has no node name; no endpoint is eligible");
      }
      for (int i = 0; i < in.endpoints_size(); ++i) {
        const auto& e = in.endpoints(i);
        const std::string ewhere = where + " endpoints[" + std::to_string(i) + "]";
        if (!IsIpLiteral(e.address())) Fail(ewhere + ".address: \"" + e.address() + "\" is not an IP address");
        if (e.port() == 0 || e.port() > 65535) Fail(ewhere + ".port: " + std::to_string(e.port()) + " out of range");
        Endpoint ep;
        ep.address = e.address();
        ep.port = static_cast<uint16_t>(e.port());
        ep.ready = e.ready();
        ep.eligible = e.ready() && (!in.local_only() || (!opts_.node_name.empty() && e.node_name() == opts_.node_name));
        ep.key = EndpointKey(e.address(), e.port());
        ep.state = StateFor(ep.key);
        out->endpoints.push_back(std::move(ep));
      }
      if (in.has_health_check() && in.health_check().protocol() != pb::HealthCheck::NONE) {
        const auto& hc = in.health_check();
        auto& spec = out->health_check;
        spec.protocol = hc.protocol() == pb::HealthCheck::HTTP   ? health::CheckProtocol::kHttp
                        : hc.protocol() == pb::HealthCheck::GRPC ? health::CheckProtocol::kGrpc
                                                                 : health::CheckProtocol::kTcp;
        if (spec.protocol == health::CheckProtocol::kGrpc) {
          // gRPC: `path` carries the grpc.health.v1 service name ("" = the whole server).
          if (!health::ValidGrpcServiceName(hc.path())) {
            Fail(where + ".health_check.path: \"" + hc.path() +
                 "\" is not a gRPC service name (printable, no spaces, at most 256 bytes)");
          }
          spec.grpc_service = hc.path();
        } else if (!hc.path().empty()) {
          if (hc.path().front() != '/' || hc.path().find_first_of("\r\n ") != std::string::npos) {
            Fail(where + ".health_check.path: \"" + hc.path() + "\" must start with '/' and contain no spaces");
          }
          spec.path = hc.path();
        }
        spec.interval = MsOr(hc.interval_ms(), health::kDefaultInterval);
        spec.timeout = MsOr(hc.timeout_ms(), health::kDefaultTimeout);
        if (hc.healthy_threshold() > 0) spec.healthy_threshold = hc.healthy_threshold();
        if (hc.unhealthy_threshold() > 0) spec.unhealthy_threshold = hc.unhealthy_threshold();
        spec.expected_statuses.assign(hc.expected_statuses().begin(), hc.expected_statuses().end());
        if (hc.has_tls() && !CompileCheckTls(hc.tls(), where, out.get())) spec = health::CheckSpec{};
        if (spec.protocol != health::CheckProtocol::kNone) {
          for (auto& ep : out->endpoints) ep.health = HealthSlotFor(out->name, ep.key, spec);
        }
      }
      sets_[in.name()] = out.get();
      cfg_->backend_sets.push_back(std::move(out));
    }
  }

  // HealthCheck.tls of `set`'s check: the probes' client context. False when the check cannot
  // run as declared (warned; the set is then not actively checked: a plaintext probe of a TLS
  // backend would fail every time and mark every endpoint down).
  bool CompileCheckTls(const pb::BackendTls& tls, const std::string& where, BackendSet* set) {
    auto& spec = set->health_check;
    if (spec.protocol == health::CheckProtocol::kTcp) {
      Warn(where + ".health_check.tls ignored: a TCP check only connects");
      return true;
    }
    if (spec.protocol != health::CheckProtocol::kHttp) {
      Warn(where + ".health_check.tls: only HTTP checks can probe over TLS; the set is not actively checked");
      return false;
    }
    if (opts_.backend_tls_builder == nullptr) {
      Warn(where + ".health_check.tls: this build has no TLS; the set is not actively checked");
      return false;
    }
    if (!tls.ca_pem().empty() && tls.server_name().empty()) {
      Warn(where + ".health_check.tls: a CA without a server_name verifies no name; the set is not actively checked");
      return false;
    }
    std::string error;
    set->health_tls = opts_.backend_tls_builder(tls.ca_pem(), &error);
    if (set->health_tls == nullptr) {
      Warn(where + ".health_check.tls.ca_pem: " + error + "; the set is not actively checked");
      return false;
    }
    // Tells checks apart (which sets share an endpoint's verdict); the checker also compares the
    // contexts' SHA-256 pool ids before it keeps a target (checker.cc).
    spec.tls_id = tls.ca_pem().empty() ? "unverified"
                                       : "ca:" + std::to_string(std::hash<std::string>{}(tls.ca_pem())) + ":" +
                                             std::to_string(tls.ca_pem().size());
    spec.tls_server_name = tls.server_name();
    return true;
  }

  // Names, ports and protocols of listeners, so routes can be checked against them.
  void CompileListenerHeaders() {
    std::map<std::pair<bool, uint32_t>, std::string> ports;  // (udp?, port) → listener
    for (const auto& in : snap_.listeners()) {
      const std::string where = "listener \"" + in.name() + "\"";
      if (in.name().empty()) Fail("listener with an empty name (port " + std::to_string(in.port()) + ")");
      if (listener_pb_.count(in.name())) Fail(where + ": duplicate name");
      const auto proto = ToProtocol(in.protocol());
      if (!proto) Fail(where + ".protocol: unknown or unspecified protocol (" + std::to_string(in.protocol()) + ")");
      if (in.port() == 0 || in.port() > 65535) Fail(where + ".port: " + std::to_string(in.port()) + " out of range");
      const auto key = std::make_pair(*proto == Protocol::kUdp, in.port());
      if (auto it = ports.find(key); it != ports.end()) {
        Fail(where + ".port: " + std::to_string(in.port()) + " is already used by listener \"" + it->second + "\"");
      }
      ports[key] = in.name();
      listener_pb_[in.name()] = &in;

      auto out = std::make_unique<Listener>();
      out->name = in.name();
      out->port = static_cast<uint16_t>(in.port());
      out->protocol = *proto;
      out->idle_timeout = MsOr(in.idle_timeout_ms(), out->is_l7()                  ? kDefaultL7IdleTimeout
                                                     : *proto == Protocol::kUdp ? kDefaultUdpIdleTimeout
                                                                                : kDefaultL4IdleTimeout);
      out->served = *proto == Protocol::kTcp || *proto == Protocol::kTls || *proto == Protocol::kUdp ||
                    *proto == Protocol::kHttp || (*proto == Protocol::kHttps && opts_.tls_builder != nullptr);
      if (out->is_l7()) out->host_owners = host_owners_;
      if (*proto == Protocol::kHttps && out->served) CompileListenerTls(in, where, out.get());
      if (!out->served && *proto == Protocol::kHttps && opts_.tls_builder != nullptr) {
        // CompileListenerTls warned why (no usable certificate).
      } else if (!out->served) {
        Warn(where + ": protocol " + std::string(ProtocolName(*proto)) + " is not served by this build; port " +
             std::to_string(in.port()) + " is not opened");
      } else {
        if (*proto != Protocol::kHttps && in.has_tls() && in.tls().certificates_size() > 0) {
          Warn(where + ": tls settings ignored (not an HTTPS listener)");
        }
        if (in.has_proxy_protocol() &&
            (in.proxy_protocol().send() != pb::PROXY_PROTOCOL_NONE || in.proxy_protocol().accept())) {
          if (out->is_l7()) {
            // The L7 proxy accepts a header from downstream; sending one to HTTP backends is not
            // implemented (the controller refuses proxyProtocol.send on HTTP/HTTPS listeners).
            out->proxy_protocol_accept = in.proxy_protocol().accept();
            if (in.proxy_protocol().send() != pb::PROXY_PROTOCOL_NONE) {
              Warn(where + ": PROXY protocol send is not implemented for HTTP/HTTPS listeners; ignored");
            }
          } else {
            out->proxy_protocol_send = in.proxy_protocol().send() == pb::PROXY_PROTOCOL_V1   ? 1
                                       : in.proxy_protocol().send() == pb::PROXY_PROTOCOL_V2 ? 2
                                                                                             : 0;
            out->proxy_protocol_accept = in.proxy_protocol().accept();
          }
        }
      }
      for (const auto& r : in.allowed_source_ranges()) {
        if (auto c = l4::ParseCidr(r)) {
          out->allowed_source_ranges.push_back(*c);
        } else {
          // Dropping a bad entry only narrows the allow-list (fails closed), never opens it.
          Warn(where + ".allowed_source_ranges: \"" + r + "\" is not a CIDR; ignored");
        }
      }
      if (in.allowed_source_ranges_size() > 0 && out->allowed_source_ranges.empty()) {
        Warn(where + ".allowed_source_ranges: no valid range; every client is refused");
        out->allowed_source_ranges.push_back(l4::Cidr{true, {}, 128});  // "::" only: no real client
      }
      listeners_[in.name()] = out.get();
      cfg_->listeners.push_back(std::move(out));
    }
  }

  // Certificates by name from the snapshot; the contexts are built by the I/O library's builder.
  // A listener whose certificates are all unusable is not served (warning), others are unaffected.
  void CompileListenerTls(const pb::Listener& in, const std::string& where, Listener* out) {
    const auto& v = in.tls().min_version();
    if (v.empty() || v == listener_defaults::kTlsMinVersion) {
      out->tls_min_version = "1.2";
    } else if (v == "1.3") {
      out->tls_min_version = "1.3";
    } else {
      Fail(where + ".tls.min_version: \"" + v + "\" (want 1.2 or 1.3)");
    }
    out->tls_default_self_signed = in.tls().default_self_signed();
    for (const auto& name : in.tls().certificates()) {
      const pb::TlsCertificate* found = nullptr;
      for (const auto& c : snap_.certificates()) {
        if (c.name() == name) found = &c;
      }
      if (found == nullptr) {
        Warn(where + ".tls.certificates: unknown certificate \"" + name + "\"; skipped");
        continue;
      }
      out->tls_certificates.push_back({found->name(), found->certificate_chain_pem(), found->private_key_pem()});
    }
    std::string error;
    if (!out->tls_certificates.empty()) out->tls = opts_.tls_builder(*out, &error, &warnings_, &out->tls_expiry);
    if (out->tls == nullptr) {
      out->served = false;
      Warn(where + ": no usable TLS certificate" + (error.empty() ? std::string() : " (" + error + ")") +
           "; port " + std::to_string(in.port()) + " is not opened");
    }
  }

  // Snapshot.host_owners. A malformed or contradicting entry is skipped with a warning (the
  // controller sends neither): that host is then nobody's, as before ownership existed.
  void CompileHostOwners() {
    if (snap_.host_owners().empty()) return;
    auto owners = std::make_shared<HostOwnership>();
    for (const auto& o : snap_.host_owners()) {
      if (!owners->Add(o.host(), o.namespace_(), o.wildcard_one_label())) {
        Warn("host_owners: entry for host \"" + o.host() + "\" (namespace \"" + o.namespace_() +
             "\") is empty or names a second namespace; skipped");
      }
    }
    if (!owners->empty()) host_owners_ = std::move(owners);
    cfg_->host_owners = host_owners_;
  }

  void CompileRoutes() {
    for (const auto& in : snap_.routes()) {
      const std::string where = "route \"" + in.name() + "\"";
      if (in.name().empty()) Fail("route with an empty name");
      if (routes_.count(in.name())) Fail(where + ": duplicate name");
      auto lit = listeners_.find(in.listener());
      if (lit == listeners_.end()) Fail(where + ".listener: unknown listener \"" + in.listener() + "\"");
      const Listener& listener = *lit->second;

      auto out = std::make_unique<Route>();
      out->name = in.name();
      out->listener = in.listener();
      out->ns = in.owner().namespace_();
      if (listener.is_l7()) {
        CompileMatch(in.match(), where, &out->match);
        FinishRouteMatch(&out->match);
        // An exact host is its owner's alone (the controller's ClaimHosts): only a wildcard or an
        // any-host match can cover another namespace's host.
        const bool covers_others = out->match.any_host() || !out->match.wildcard_suffixes.empty();
        out->check_host_owner = host_owners_ && covers_others && host_owners_->HasOwnerOtherThan(out->ns);
      } else {
        WarnL4Match(in, where, listener);
        if (listener.protocol == Protocol::kTls) CompileSni(in.match(), where, &out->sni);
      }
      CompileBackends(in, where, out.get());
      CompilePolicy(in, where, listener, out.get());
      routes_[in.name()] = out.get();
      cfg_->routes.push_back(std::move(out));
    }
  }

  void CompileMatch(const pb::RouteMatch& in, const std::string& where, RouteMatch* out) {
    out->wildcard_one_label = in.wildcard_one_label();
    out->after_paths = in.after_paths();
    for (const auto& h : in.hosts()) {
      if (h.empty()) Fail(where + ".match.hosts: empty host");
      if (h == "*") {  // any host
        out->exact_hosts.clear();
        out->wildcard_suffixes.clear();
        break;
      }
      if (h.rfind("*.", 0) == 0) {
        if (h.size() == 2 || h.find('*', 1) != std::string::npos) Fail(where + ".match.hosts: invalid wildcard \"" + h + "\"");
        out->wildcard_suffixes.push_back(Lower(h.substr(1)));
      } else {
        if (h.find('*') != std::string::npos) Fail(where + ".match.hosts: '*' only allowed as \"*.\" prefix in \"" + h + "\"");
        out->exact_hosts.push_back(NormalizeHost(h));
      }
    }
    if (in.has_path()) {
      const auto& p = in.path();
      switch (p.type()) {
        case pb::PathMatch::PREFIX:
          if (p.value().empty() || p.value().front() != '/') Fail(where + ".match.path: prefix \"" + p.value() + "\" must start with '/'");
          out->path.type = PathMatcher::Type::kPrefix;
          out->path.value = p.value();
          while (!out->path.value.empty() && out->path.value.back() == '/') out->path.value.pop_back();
          out->path.declared_len = out->path.value.size();  // "/login/" ranks as "/login", "/" as no path
          break;
        case pb::PathMatch::EXACT:
          if (p.value().empty() || p.value().front() != '/') Fail(where + ".match.path: exact path \"" + p.value() + "\" must start with '/'");
          out->path.type = PathMatcher::Type::kExact;
          out->path.value = p.value();
          out->path.declared_len = p.value().size();
          break;
        case pb::PathMatch::REGULAR_EXPRESSION:
          out->path.type = PathMatcher::Type::kRegex;
          out->path.value = p.value();
          out->path.declared_len = p.value().size();
          out->path.regex = CompileRegex(p.value(), where + ".match.path");
          break;
        default:
          Fail(where + ".match.path.type: unknown type " + std::to_string(p.type()));
      }
    }
    for (const auto& m : in.methods()) {
      if (m.empty()) Fail(where + ".match.methods: empty method");
      out->methods.push_back(m);
    }
    for (const auto& h : in.headers()) {
      if (h.name().empty()) Fail(where + ".match.headers: empty header name");
      HeaderMatcher hm;
      hm.lower_name = Lower(h.name());
      hm.value = h.value();
      switch (h.type()) {
        case pb::HeaderMatch::EXACT:
          hm.type = HeaderMatcher::Type::kExact;
          break;
        case pb::HeaderMatch::REGULAR_EXPRESSION:
          hm.type = HeaderMatcher::Type::kRegex;
          hm.regex = CompileRegex(h.value(), where + ".match.headers[" + h.name() + "]");
          break;
        case pb::HeaderMatch::PRESENT:
          hm.type = HeaderMatcher::Type::kPresent;
          break;
        default:
          Fail(where + ".match.headers[" + h.name() + "].type: unknown type " + std::to_string(h.type()));
      }
      out->headers.push_back(std::move(hm));
    }
    for (const auto& q : in.query_params()) {
      if (q.name().empty()) Fail(where + ".match.query_params: empty name");
      out->query_params.emplace_back(q.name(), q.value());
    }
    for (const auto& c : in.cookies()) {
      if (c.name().empty()) Fail(where + ".match.cookies: empty name");
      out->cookies.emplace_back(c.name(), c.value());
    }
    if (in.sni_size() > 0) Warn(where + ": match.sni applies to TLS passthrough listeners only; ignored");
  }

  void WarnL4Match(const pb::Route& in, const std::string& where, const Listener& listener) {
    const auto& m = in.match();
    if (m.hosts_size() > 0 || m.has_path() || m.methods_size() > 0 || m.headers_size() > 0 ||
        m.query_params_size() > 0 || m.cookies_size() > 0) {
      Warn(where + ": HTTP match fields ignored on an L4 listener");
    }
    if (m.sni_size() > 0 && listener.protocol != Protocol::kTls) {
      Warn(where + ": match.sni applies to TLS passthrough listeners only; ignored");
    }
  }

  void CompileSni(const pb::RouteMatch& in, const std::string& where, l4::SniMatcher* out) {
    for (const auto& h : in.sni()) {
      if (h.empty() || h.size() > 253) Fail(where + ".match.sni: empty or too long name");
      if (h.rfind("*.", 0) == 0) {
        if (h.size() == 2 || h.find('*', 1) != std::string::npos) Fail(where + ".match.sni: invalid wildcard \"" + h + "\"");
        out->suffixes.push_back(Lower(h.substr(1)));
      } else {
        if (h.find('*') != std::string::npos) Fail(where + ".match.sni: '*' only allowed as \"*.\" prefix in \"" + h + "\"");
        out->exact.push_back(Lower(h));
      }
    }
  }

  void CompileBackends(const pb::Route& in, const std::string& where, Route* out) {
    auto kind = lb::ParseSchedulerName(in.policy().scheduler());
    if (!kind) {
      // A warning, not a NACK: one route's typo must not stop every other update.
      Warn(where + ": unknown scheduler \"" + in.policy().scheduler() +
           "\" (round-robin | weighted-round-robin | least-connections | source-hash | maglev | p2c); using round-robin");
      kind = lb::SchedulerKind::kRoundRobin;
    }
    out->scheduler = *kind;
    out->picker = CompileBackendList(in.backends(), where + ".backends", *kind, &out->backends);
    const auto& c = in.policy().canary();
    if (in.policy().has_canary() && c.backends_size() > 0) {
      out->canary_picker =
          CompileBackendList(c.backends(), where + ".policy.canary.backends", *kind, &out->canary_backends);
      out->canary.enabled = true;
      out->canary.header_lower = Lower(c.header());
      out->canary.header_values.assign(c.header_values().begin(), c.header_values().end());
      out->canary.cookie = c.cookie();
      if (c.weight_percent() > 100) Fail(where + ".policy.canary.weight_percent: " + std::to_string(c.weight_percent()) + " > 100");
      out->canary.weight_percent = c.weight_percent();
    } else if (in.policy().has_canary() && (!c.header().empty() || !c.cookie().empty() || c.weight_percent() > 0)) {
      Warn(where + ": canary without canary backends; all traffic goes to the main backends");
    }
  }

  template <class List>
  std::unique_ptr<lb::EndpointPicker> CompileBackendList(const List& list, const std::string& where,
                                                         lb::SchedulerKind kind, std::vector<WeightedBackendSet>* out) {
    std::vector<lb::EndpointPicker::Group> groups;
    uint64_t total_weight = 0;
    for (const auto& wb : list) {
      auto it = sets_.find(wb.backend_set());
      if (it == sets_.end()) Fail(where + ": unknown backend set \"" + wb.backend_set() + "\"");
      WeightedBackendSet w;
      w.set = it->second;
      w.weight = wb.weight();
      lb::EndpointPicker::Group g;
      g.weight = w.weight;
      for (const auto& e : it->second->endpoints) {
        if (!e.eligible) continue;
        w.eligible.push_back(&e);
        g.endpoints.push_back(lb::Candidate{e.key, 1, e.state, e.health});
      }
      total_weight += w.weight;
      groups.push_back(std::move(g));
      out->push_back(std::move(w));
    }
    if (!list.empty() && total_weight == 0) {
      Warn(where.substr(0, where.rfind('.')) + ": every backend has weight 0; the route receives no traffic (503 / refused)");
    }
    return std::make_unique<lb::EndpointPicker>(kind, std::move(groups));
  }

  void CompilePolicy(const pb::Route& in, const std::string& where, const Listener& listener, Route* out) {
    const auto& p = in.policy();
    if (p.has_stickiness() && p.stickiness().type() == pb::Stickiness::SOURCE_IP) {
      const int64_t ttl = p.stickiness().ttl_ms() == 0 ? lb::kDefaultStickyTtlMs : p.stickiness().ttl_ms();
      const Route* prev = opts_.previous ? opts_.previous->FindRoute(in.name()) : nullptr;
      out->sticky = (prev && prev->sticky && prev->sticky->ttl_ms() == ttl) ? prev->sticky
                                                                         : std::make_shared<lb::StickyTable>(ttl);
    }
    if (p.has_stickiness() && p.stickiness().type() == pb::Stickiness::COOKIE) {
      if (!listener.is_l7()) {
        Warn(where + ": cookie stickiness ignored on an L4 listener");
      } else {
        out->sticky_cookie = p.stickiness().cookie_name().empty() ? "DOORMAN" : p.stickiness().cookie_name();
        for (char ch : out->sticky_cookie) {
          if (ch <= 0x20 || ch >= 0x7f || std::string_view("()<>@,;:\\\"/[]?={}").find(ch) != std::string_view::npos) {
            Fail(where + ".policy.stickiness.cookie_name: invalid cookie name \"" + out->sticky_cookie + "\"");
          }
        }
        if (const auto& path = p.stickiness().cookie_path(); !path.empty()) {
          const bool ok = path.front() == '/' && std::all_of(path.begin(), path.end(), [](char ch) {
                            return ch > 0x20 && ch < 0x7f && ch != ';';
                          });
          if (!ok) Fail(where + ".policy.stickiness.cookie_path: invalid cookie path \"" + path + "\"");
          out->sticky_cookie_path = path;
        }
        out->sticky_ttl = Millis(p.stickiness().ttl_ms());
        // Weight 0 is no traffic, cookie holders included (they move, as SourceIP-pinned clients
        // do): the cookie value is computable, so it must not open a backend nobody weighted.
        for (const auto& w : out->backends) {
          if (w.weight == 0) continue;
          for (const Endpoint* e : w.eligible) out->sticky_main[StickyHash(e->key)] = e;
        }
        for (const auto& w : out->canary_backends) {
          if (w.weight == 0) continue;
          for (const Endpoint* e : w.eligible) out->sticky_canary[StickyHash(e->key)] = e;
        }
      }
    }
    // The CRD's bound (0-10); more (a snapshot not from the controller) is capped, and said.
    constexpr uint32_t kMaxRetryAttempts = 10;
    if (p.has_retries() && p.retries().attempts() > kMaxRetryAttempts) {
      Warn(where + ".policy.retries.attempts: " + std::to_string(p.retries().attempts()) + " capped at " +
           std::to_string(kMaxRetryAttempts));
    }
    if (!listener.is_l7() && p.has_retries()) {
      out->l4_connect_attempts = 1 + std::min<uint32_t>(p.retries().attempts(), kMaxRetryAttempts);  // connect-failure only
    }
    if (p.has_retries() && p.retries().attempts() > 0) {
      out->retry_attempts = std::min<uint32_t>(p.retries().attempts(), kMaxRetryAttempts);
      out->per_try_timeout = Millis(p.retries().per_try_timeout_ms());
      auto& ro = out->retry_on;
      for (const auto& on : p.retries().on()) {
        const bool status = on.size() == 3 && on.find_first_not_of("0123456789") == std::string::npos &&
                            (on[0] == '4' || on[0] == '5');
        if (on == "connect-failure") {
          ro.connect_failure = true;
        } else if (on == "reset") {
          ro.reset = true;
        } else if (on == "timeout") {
          ro.timeout = true;
        } else if (on == "5xx") {
          ro.any_5xx = true;
        } else if (on == "gateway-error") {
          ro.timeout = true;
          for (uint16_t c : {502, 503, 504}) ro.statuses.push_back(c);
        } else if (on == "non-idempotent") {
          ro.non_idempotent = true;
        } else if (status) {
          ro.statuses.push_back(static_cast<uint16_t>(std::stoi(on)));
        } else {
          Warn(where + ".policy.retries.on: condition \"" + on + "\" is not implemented (HTTP/2 only or unknown); ignored");
        }
      }
    }
    if (p.has_rate_limit() && p.rate_limit().requests_per_second() > 0) {
      const auto& rl = p.rate_limit();
      if (!listener.is_l7()) Warn(where + ": rate limit ignored on an L4 listener");
      if (rl.key().empty() || rl.key() == "ClientIP") {
        out->rate_limit_header.clear();
      } else if (rl.key().rfind("Header:", 0) == 0 && rl.key().size() > 7) {
        out->rate_limit_header = Lower(rl.key().substr(7));
      } else {
        Fail(where + ".policy.rate_limit.key: \"" + rl.key() + "\" (want ClientIP or Header:<name>)");
      }
      out->rate_limit_bucket = rl.bucket();
      if (!rl.bucket().empty()) {
        // Routes naming one bucket with the same key and limits share one limiter, kept across
        // snapshots whichever of them existed before.
        const std::string group = rl.bucket() + '\n' + out->rate_limit_header + '\n' +
                                  std::to_string(rl.requests_per_second()) + '/' + std::to_string(rl.burst());
        std::shared_ptr<RateLimiter>& shared = cfg_->rate_limit_groups[group];
        if (!shared && opts_.previous) {
          if (auto kept = opts_.previous->rate_limit_groups.find(group); kept != opts_.previous->rate_limit_groups.end()) {
            shared = kept->second;
          }
        }
        if (!shared) shared = std::make_shared<RateLimiter>(rl.requests_per_second(), rl.burst());
        out->rate_limiter = shared;
      } else {
        // The same limits on the same route keep their buckets across snapshots.
        const Route* prev = opts_.previous ? opts_.previous->FindRoute(in.name()) : nullptr;
        if (prev && prev->rate_limiter && prev->rate_limit_bucket.empty() &&
            prev->rate_limit_header == out->rate_limit_header &&
            prev->rate_limiter->SameLimits(rl.requests_per_second(), rl.burst())) {
          out->rate_limiter = prev->rate_limiter;
        } else {
          out->rate_limiter = std::make_shared<RateLimiter>(rl.requests_per_second(), rl.burst());
        }
      }
    }
    if (p.backend_protocol() == "HTTPS" && listener.is_l7() && opts_.backend_tls_builder != nullptr) {
      std::string error;
      out->backend_tls = opts_.backend_tls_builder(p.backend_tls().ca_pem(), &error);
      if (out->backend_tls == nullptr) {
        // Fail closed for this route only: it answers 502 and never speaks unverified TLS, while
        // the rest of the snapshot is applied (one bad Secret must not block every update).
        out->backend_tls_error = "the CA bundle of route \"" + out->name + "\" is unusable: " + error;
        Warn(where + ".policy.backend_tls.ca_pem: " + error + "; the route answers 502");
      }
      out->backend_tls_server_name = p.backend_tls().server_name();
    } else if (!p.backend_protocol().empty() && p.backend_protocol() != "HTTP") {
      Warn(where + ": backend protocol " + p.backend_protocol() + " is not implemented by this build; using HTTP/1.1");
    } else if (p.has_backend_tls()) {
      Warn(where + ": policy.backend_tls ignored: the backend protocol is not HTTPS");
    }
    const auto& t = p.timeouts();
    out->connect_timeout = MsOr(t.connect_ms(), kDefaultConnectTimeout);
    out->request_timeout = MsOr(t.request_ms(), kDefaultRequestTimeout);
    out->idle_timeout = Millis(t.idle_ms());
    if (!listener.is_l7() && t.request_ms() != 0) Warn(where + ": timeouts.request ignored on an L4 listener");

    const auto& f = in.filters();
    if (f.has_redirect() && f.redirect().enabled()) {
      const auto& r = f.redirect();
      out->redirect.enabled = true;
      out->redirect.scheme = Lower(r.scheme());
      if (!out->redirect.scheme.empty() && out->redirect.scheme != "http" && out->redirect.scheme != "https") {
        Fail(where + ".filters.redirect.scheme: \"" + r.scheme() + "\" is not http or https");
      }
      if (!EmittableToken(r.host())) Fail(where + ".filters.redirect.host: contains spaces or control characters");
      out->redirect.host = r.host();
      if (r.port() > 65535) Fail(where + ".filters.redirect.port: " + std::to_string(r.port()) + " out of range");
      out->redirect.port = r.port();
      if (!r.path().empty() && r.path().front() != '/') Fail(where + ".filters.redirect.path: must start with '/'");
      if (!EmittableToken(r.path()) || r.path().find_first_of("?#") != std::string::npos) {
        Fail(where + ".filters.redirect.path: contains a space, control character, '?' or '#'");
      }
      out->redirect.path = r.path();
      const uint32_t code = r.status_code() == 0 ? 302 : r.status_code();
      if (code != 301 && code != 302 && code != 303 && code != 307 && code != 308) {
        Fail(where + ".filters.redirect.status_code: " + std::to_string(code) + " is not a redirect status");
      }
      out->redirect.status = code;
      out->redirect.unless_forwarded_https = r.unless_forwarded_https();
      if (!listener.is_l7()) Warn(where + ": redirect filter ignored on an L4 listener");
    }
    if (f.has_rewrite() && f.rewrite().enabled()) {
      const auto& r = f.rewrite();
      if (!r.path_prefix().empty() && r.path_prefix().front() != '/') {
        Fail(where + ".filters.rewrite.path_prefix: must start with '/'");
      }
      if (!EmittableToken(r.path_prefix()) || r.path_prefix().find_first_of("?#") != std::string::npos) {
        Fail(where + ".filters.rewrite.path_prefix: contains a space, control character, '?' or '#'");
      }
      if (!EmittableToken(r.host())) Fail(where + ".filters.rewrite.host: contains spaces or control characters");
      if (!r.path_prefix().empty() && out->match.path.type == PathMatcher::Type::kRegex) {
        Fail(where + ".filters.rewrite.path_prefix: needs a Prefix or Exact path match, not RegularExpression");
      }
      out->rewrite.enabled = true;
      out->rewrite.path_prefix = r.path_prefix();
      out->rewrite.host = r.host();
    }
    CompileHeaderRules(f.request_headers(), where + ".filters.request_headers", true, &out->request_headers);
    CompileHeaderRules(f.response_headers(), where + ".filters.response_headers", false, &out->response_headers);
    switch (in.forwarded_headers().x_forwarded_for()) {
      case pb::ForwardedHeaders::REPLACE:
        out->forwarded_for = ForwardedForMode::kReplace;
        break;
      case pb::ForwardedHeaders::OFF:
        out->forwarded_for = ForwardedForMode::kOff;
        break;
      default:
        out->forwarded_for = ForwardedForMode::kAppend;
    }
    for (const auto& cidr : in.forwarded_headers().trusted_proxies()) {
      auto c = l4::ParseCidr(cidr);
      if (!c) Fail(where + ".forwarded_headers.trusted_proxies: invalid CIDR \"" + cidr + "\"");
      out->trusted_proxies.push_back(*c);
    }
  }

  // Header names must be tokens and values must not carry CR/LF/NUL (they go onto the wire).
  static void CompileHeaderRules(const pb::HeaderRules& in, const std::string& where, bool request, HeaderRules* out) {
    // A request keeps exactly one Host (RFC 9112 §3.2): the controller refuses these too.
    auto host_kept = [&](const std::string& name) {
      if (request && name.size() == 4 && strncasecmp(name.c_str(), "host", 4) == 0) {
        Fail(where + ": header \"" + name + "\" may only be set on a request");
      }
    };
    auto check = [&](const std::string& name, const std::string* value) {
      if (name.empty()) Fail(where + ": empty header name");
      for (char c : name) {
        const bool tchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
        if (!tchar) Fail(where + ": invalid header name \"" + name + "\"");
      }
      // The controller refuses these too: a rule on them would desynchronise message framing.
      std::string lower = name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      for (const char* f : {"content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade",
                            "proxy-connection"}) {
        if (lower == f) Fail(where + ": header \"" + name + "\" frames the message or belongs to one connection");
      }
      if (value != nullptr) {
        for (char c : *value) {
          if (c == '\r' || c == '\n' || c == '\0') Fail(where + "[" + name + "]: value contains CR, LF or NUL");
        }
      }
    };
    for (const auto& [k, v] : in.set()) {
      check(k, &v);
      out->set.emplace_back(k, v);
    }
    for (const auto& [k, v] : in.add()) {
      host_kept(k);
      check(k, &v);
      out->add.emplace_back(k, v);
    }
    for (const auto& k : in.remove()) {
      host_kept(k);
      check(k, nullptr);
      out->remove.push_back(k);
    }
    std::sort(out->set.begin(), out->set.end());
    std::sort(out->add.begin(), out->add.end());
  }

  void LinkListeners() {
    std::unordered_set<std::string> listed;
    for (auto& l : cfg_->listeners) {
      const std::string where = "listener \"" + l->name + "\"";
      const pb::Listener& in = *listener_pb_.at(l->name);
      std::unordered_set<std::string> seen;
      for (const auto& name : in.routes()) {
        auto it = routes_.find(name);
        if (it == routes_.end()) Fail(where + ".routes: unknown route \"" + name + "\"");
        if (it->second->listener != l->name) {
          Fail(where + ".routes: route \"" + name + "\" belongs to listener \"" + it->second->listener + "\"");
        }
        if (!seen.insert(name).second) Fail(where + ".routes: route \"" + name + "\" listed twice");
        listed.insert(name);
        l->routes.push_back(it->second);
      }
      l->routes_sorted_by_host = SortedByBestHost(l->routes);
      if (l->served && !l->is_l7() && l->protocol != Protocol::kTls && l->routes.size() > 1) {
        for (std::size_t i = 1; i < l->routes.size(); ++i) {
          Warn(where + ": an L4 listener uses its first route only; route \"" + l->routes[i]->name + "\" is not used");
        }
      }
      if (l->served && l->routes.empty()) {
        Warn(where + ": no routes; " + (l->is_l7() ? "every request gets 404" : "connections are refused"));
      }
      // Drain flags: carried over for the same listener and endpoint key.
      const Listener* prev_l = opts_.previous != nullptr ? opts_.previous->FindListener(l->name) : nullptr;
      for (const Route* r : l->routes) {
        for (const auto* sets : {&r->backends, &r->canary_backends}) {
          for (const auto& b : *sets) {
            if (b.set == nullptr) continue;
            for (const auto& e : b.set->endpoints) {
              if (l->drain_flags.count(e.key)) continue;
              DrainFlag f = prev_l != nullptr ? prev_l->DrainFlagFor(e.key) : nullptr;
              l->drain_flags.emplace(e.key, f ? f : std::make_shared<std::atomic<int64_t>>(0));
            }
          }
        }
      }
      cfg_->listener_index[l->name] = l.get();
    }
    for (auto& r : cfg_->routes) {
      if (!listed.count(r->name)) {
        Warn("route \"" + r->name + "\": not listed by listener \"" + r->listener + "\"; not served");
      }
      cfg_->route_index[r->name] = r.get();
    }
  }

  const pb::Snapshot& snap_;
  std::shared_ptr<const HostOwnership> host_owners_;  // Snapshot.host_owners; null when empty
  const CompileOptions& opts_;
  std::vector<std::string>& warnings_;

  std::shared_ptr<RuntimeConfig> cfg_;
  std::map<std::string, const BackendSet*> sets_;
  std::map<std::string, Listener*> listeners_;
  std::map<std::string, const pb::Listener*> listener_pb_;
  std::map<std::string, Route*> routes_;
  std::unordered_map<std::string, lb::EndpointStatePtr> states_;
  std::unordered_map<std::string, lb::EndpointStatePtr> previous_states_;
  std::unordered_map<std::string, lb::HealthSlotPtr> slots_;           // "key|check" → slot
  std::unordered_map<std::string, lb::HealthSlotPtr> previous_slots_;  // the same, previous snapshot
  std::unordered_map<std::string, lb::HealthSlotPtr> previous_set_slots_;  // "set|key" → previous slot
  bool previous_slots_indexed_ = false;

};

}  // namespace

std::string_view ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kTcp:
      return "TCP";
    case Protocol::kUdp:
      return "UDP";
    case Protocol::kTls:
      return "TLS";
    case Protocol::kHttp:
      return "HTTP";
    case Protocol::kHttps:
      return "HTTPS";
  }
  return "?";
}

const Endpoint* Route::PickEndpoint(const lb::PickContext& ctx, bool use_canary) const {
  const auto& p = use_canary ? canary_picker : picker;
  if (!p) return nullptr;
  const auto c = p->Pick(ctx);
  if (!c) return nullptr;
  return (use_canary ? canary_backends : backends)[c->group].eligible[c->endpoint];
}

const Endpoint* Route::FirstUntried(bool use_canary, const std::vector<const Endpoint*>& tried) const {
  const Endpoint* panic = nullptr;
  for (const auto& b : use_canary ? canary_backends : backends) {
    if (b.weight == 0) continue;
    for (const Endpoint* e : b.eligible) {
      if (std::find(tried.begin(), tried.end(), e) != tried.end()) continue;
      if (Available(*e)) return e;
      if (panic == nullptr && lb::Healthy(e->health.get())) panic = e;
    }
  }
  return panic;
}

const Endpoint* Route::PickSticky(const lb::PickContext& ctx, int64_t now_ms, bool remember) const {
  if (!sticky) return PickEndpoint(ctx);
  if (auto key = sticky->Lookup(ctx.hash, now_ms)) {
    for (const auto& b : backends) {
      if (b.weight == 0) continue;
      for (const Endpoint* e : b.eligible) {
        if (e->key == *key && Available(*e)) {
          if (remember) sticky->Remember(ctx.hash, e->key, now_ms);
          return e;
        }
      }
    }
  }
  const Endpoint* e = PickEndpoint(ctx);
  if (e && remember) sticky->Remember(ctx.hash, e->key, now_ms);
  return e;
}

const Listener* RuntimeConfig::FindListener(std::string_view name) const {
  auto it = listener_index.find(name);
  return it == listener_index.end() ? nullptr : it->second;
}

const Route* RuntimeConfig::FindRoute(std::string_view name) const {
  auto it = route_index.find(name);
  return it == route_index.end() ? nullptr : it->second;
}

void MarkRemovedEndpoints(const RuntimeConfig* previous, const RuntimeConfig& next, int64_t now_ms) {
  std::unordered_set<const lb::EndpointState*> present;
  std::unordered_set<const std::atomic<int64_t>*> members;
  for (const auto& l : next.listeners) {
    for (const auto& [key, f] : l->drain_flags) {
      members.insert(f.get());
      f->store(0, std::memory_order_relaxed);
    }
  }
  for (const auto& set : next.backend_sets) {
    for (const auto& e : set->endpoints) {
      present.insert(e.state.get());
      e.state->removed_at_ms.store(0, std::memory_order_relaxed);
    }
  }
  if (previous == nullptr) return;
  const int64_t stamp = now_ms == 0 ? 1 : now_ms;
  for (const auto& set : previous->backend_sets) {
    for (const auto& e : set->endpoints) {
      if (!present.count(e.state.get()) && e.state->removed_at_ms.load(std::memory_order_relaxed) == 0) {
        e.state->removed_at_ms.store(stamp, std::memory_order_relaxed);
      }
    }
  }
  for (const auto& l : previous->listeners) {
    for (const auto& [key, f] : l->drain_flags) {
      if (!members.count(f.get()) && f->load(std::memory_order_relaxed) == 0) f->store(stamp, std::memory_order_relaxed);
    }
  }
}

CompileResult Compile(const pb::Snapshot& snapshot, uint64_t version, const CompileOptions& options) {
  CompileResult result;
  try {
    Compiler c(snapshot, options, &result.warnings);
    result.config = c.Run(version);
  } catch (const CompileError& e) {
    result.error = e.message;
    result.warnings.clear();
  } catch (const std::exception& e) {
    // std::bad_alloc on a huge snapshot, a regex library error...: the update is refused (NACK)
    // and the previous state keeps serving, rather than the subscriber thread terminating the
    // process.
    result.config.reset();
    result.error = std::string("cannot compile the routing state: ") + e.what();
    result.warnings.clear();
  }
  return result;
}

}  // namespace doorman::dataplane
