#include "controller/translate/translate.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "common/hash.h"
#include "common/listener_defaults.h"
#include "controller/translate/internal.h"

namespace doorman::controller {
namespace {

using namespace internal;  // NOLINT: the translate-internal vocabulary (CompiledObject, helpers)

// ---- merging objects into one snapshot ---------------------------------------------------------

// Oldest first: creationTimestamp as a point in time (RFC 3339, any UTC offset; objects without
// one, or with one that does not parse, count as newest), then namespace/name, then kind (a
// Service and an Ingress may share a name).
bool OlderThan(const CompiledObject& a, const CompiledObject& b) {
  return std::make_tuple(!a.created, a.created.value_or(CreationTime{}), a.key.ns, a.key.name, a.key.kind) <
         std::make_tuple(!b.created, b.created.value_or(CreationTime{}), b.key.ns, b.key.name, b.key.kind);
}

// Match precedence inside one listener ("first matching route wins", so more specific first):
//   0. an Ingress defaultBackend (catch-all) after every other route;
//   1. host: a route with an exact host before one with only wildcard hosts, before one with no
//      host (any host); among those, the longer host first. A route's key is its most
//      specific host. (TLS passthrough listeners use match.sni the same way.)
//   2. path: an Exact path first (Gateway API, and nginx's "location =" before any regex); then
//      the longer value first; at equal length Prefix before RegularExpression.
//      A Prefix counts without its trailing '/'. A route without a path match ranks as Prefix
//      "/" (Gateway API's default), except one marked match.after_paths (an Ingress's
//      defaultBackend for a host, and its HTTPS fallback redirect): after every path of the host.
//   3. Gateway API's order next: a method match first, then more header matches, then more
//      query parameter matches, then (doorman's own) more cookie matches.
//   4. an Ingress's HTTPS fallback redirect (CompiledRoute.https_fallback) after a route with
//      the same keys so far: it never takes a request another route was declared for.
//   5. the older object first (creation order as in OlderThan), then declaration order.
using PrecedenceKey =
    std::tuple<bool, int, int64_t, bool, int64_t, int, bool, int64_t, int64_t, int64_t, bool, size_t, size_t>;

PrecedenceKey RoutePrecedence(const v1::Route& route, bool catch_all, bool fallback,
                              size_t object_order, size_t decl_index) {
  const auto& m = route.match();
  const auto& hosts = m.sni_size() > 0 ? m.sni() : m.hosts();
  int host_rank = 2;
  int64_t host_len = 0;
  for (const auto& h : hosts) {
    const int rank = h.rfind("*.", 0) == 0 ? 1 : 0;
    const int64_t len = static_cast<int64_t>(rank == 1 ? h.size() - 1 : h.size());
    if (std::make_pair(rank, -len) < std::make_pair(host_rank, -host_len)) {
      host_rank = rank;
      host_len = len;
    }
  }
  // A Prefix ranks by its length without trailing '/' (it matches the same paths: "/login/"
  // matches "/login"), so an Exact path beats every Prefix that also matches its request (such
  // a Prefix is never longer). No path ranks as Prefix "/"; a host's defaultBackend last.
  int64_t path_len = 0;
  int path_rank = m.after_paths() ? 3 : 1;
  if (m.has_path()) {
    std::string_view value = m.path().value();
    path_rank = m.path().type() == v1::PathMatch::EXACT ? 0 : m.path().type() == v1::PathMatch::PREFIX ? 1 : 2;
    if (path_rank == 1) {
      while (!value.empty() && value.back() == '/') value.remove_suffix(1);
    }
    path_len = static_cast<int64_t>(value.size());
  }
  return {catch_all,
          host_rank,
          -host_len,
          path_rank != 0,  // an Exact path before any other, whatever its length
          -path_len,
          path_rank,
          m.methods_size() == 0,
          -static_cast<int64_t>(m.headers_size()),
          -static_cast<int64_t>(m.query_params_size()),
          -static_cast<int64_t>(m.cookies_size()),
          fallback,
          object_order,
          decl_index};
}

// Every setting in which two listeners sharing a port differ (all of them, so that one fix is
// enough), in a fixed order; empty when they agree.
// Compared with the defaults applied: `idleTimeout: 60s` is the same setting as none.
std::vector<std::string> DifferingListenerSettings(const v1::Listener& a, const v1::Listener& b) {
  std::vector<std::string> out;
  const auto min_version = [](const v1::Listener& l) -> std::string_view {
    return l.tls().min_version().empty() ? listener_defaults::kTlsMinVersion : std::string_view(l.tls().min_version());
  };
  const auto idle_ms = [](const v1::Listener& l) {
    return l.idle_timeout_ms() == 0 ? listener_defaults::kL7IdleTimeoutMs : l.idle_timeout_ms();
  };
  if (min_version(a) != min_version(b)) out.push_back("tls.minVersion");
  if (a.proxy_protocol().SerializeAsString() != b.proxy_protocol().SerializeAsString()) out.push_back("proxyProtocol");
  if (idle_ms(a) != idle_ms(b)) out.push_back("idleTimeout");
  if (std::vector<std::string>(a.allowed_source_ranges().begin(), a.allowed_source_ranges().end()) !=
      std::vector<std::string>(b.allowed_source_ranges().begin(), b.allowed_source_ranges().end())) {
    out.push_back("allowedSourceRanges");
  }
  return out;
}

struct PortSlot {
  v1::Listener listener;
  const CompiledObject* first_owner = nullptr;
  std::string first_owner_listener;
  std::vector<std::pair<PrecedenceKey, std::string>> routes;
};
using PortMap = std::map<std::pair<std::string, uint32_t>, PortSlot>;

// The listeners of `c` that cannot be placed next to what is already placed (objects are placed
// oldest first, so each port goes to its oldest claimant): one PortConflict per such listener,
// naming the port and its owner. `lost` gets their names.
std::vector<Problem> Conflicts(const CompiledObject& c, const PortMap& ports, std::set<std::string>* lost) {
  std::vector<Problem> out;
  for (const auto& l : c.listeners) {
    auto it = ports.find({Transport(l.proto.protocol()), l.proto.port()});
    if (it == ports.end()) continue;
    const PortSlot& slot = it->second;
    const std::string owner = slot.first_owner->key.ToString() + " (listener " + Q(slot.first_owner_listener) + ", " +
                              v1::Protocol_Name(slot.listener.protocol()) + ")";
    std::vector<std::string> differ;
    if (slot.listener.protocol() != l.proto.protocol() || !IsL7(l.proto.protocol())) {
      out.push_back({"PortConflict", l.conflict_field.empty() ? l.field + ".port" : l.conflict_field,
                     "port " + std::to_string(l.proto.port()) + "/" + Transport(l.proto.protocol()) +
                         " is already used by " + owner + "; only HTTP and HTTPS listeners can share a port"});
    } else if (differ = DifferingListenerSettings(slot.listener, l.proto); !differ.empty()) {
      std::string which = differ[0];
      for (size_t k = 1; k < differ.size(); ++k) which += (k + 1 == differ.size() ? " and " : ", ") + differ[k];
      out.push_back({"PortConflict", l.conflict_field.empty() ? l.field + "." + differ[0] : l.conflict_field,
                     "port " + std::to_string(l.proto.port()) + " is shared with " + owner + " whose " + which +
                         (differ.size() == 1 ? " differs" : " differ") + "; listeners sharing a port must agree on " +
                         (differ.size() == 1 ? "it" : "them")});
    } else {
      continue;
    }
    lost->insert(l.user_name);
  }
  return out;
}

// Drops the backend sets no route of `c` names any more (after routes were left out).
void DropUnusedBackendSets(CompiledObject& c) {
  std::set<std::string> sets;
  for (const auto& r : c.routes) {
    for (const auto& b : r.proto.backends()) sets.insert(b.backend_set());
  }
  std::erase_if(c.backend_sets, [&](const v1::BackendSet& s) { return !sets.count(s.name()); });
}

// `c` without the listeners named in `lost`, as Gateway API treats conflicted listeners (not
// programmed; the others are): their routes go too, and so do the backend sets and
// certificates only those referred to. `conflicts` become PortConflict warnings.
CompiledObject Without(const CompiledObject& c, const std::set<std::string>& lost, const std::vector<Problem>& conflicts) {
  CompiledObject out = c;
  std::erase_if(out.listeners, [&](const CompiledListener& l) { return lost.count(l.user_name) > 0; });
  std::erase_if(out.routes, [&](const CompiledRoute& r) { return lost.count(r.user_listener) > 0; });
  if (lost.count("https")) {
    // An Ingress without its HTTPS listener: its ssl-redirects would point at a port it does not
    // serve; its HTTP routes serve as declared instead.
    std::erase_if(out.routes, [](const CompiledRoute& r) { return r.https_fallback; });
    for (auto& r : out.routes) {
      if (r.before_redirect) r.proto = *std::exchange(r.before_redirect, std::nullopt);
    }
  }
  DropUnusedBackendSets(out);
  std::set<std::string> certs;
  for (const auto& l : out.listeners) certs.insert(l.proto.tls().certificates().begin(), l.proto.tls().certificates().end());
  std::erase_if(out.certificates, [&](const v1::TlsCertificate& t) { return !certs.count(t.name()); });
  for (const auto& p : conflicts) out.warnings.push_back({p.reason, p.field, p.message + "; this listener is not served"});
  return out;
}

// Hosts across namespaces: a host belongs to the namespace of the oldest object that routes it
// on any HTTP/HTTPS port (objects are placed oldest first; every port shares the dataplane's
// address, and cookies are not scoped by port, so an ACME HTTP-01 path or a cookie-reading route
// on another port is as much a takeover). Another namespace's routes lose that
// host, and a route left without hosts is dropped (HostConflict warnings): otherwise any namespace
// could take a host's requests, and the credentials and cookies in them, by naming the host with a
// more specific path or a header match (helper-137). Objects of one namespace share hosts as
// before; --allow-cross-namespace-hosts restores ingress-nginx's merging across namespaces.
// Keyed by the exact host as written: a wildcard is a host of its own (a name it covers can be
// another namespace's exact host, which outranks it as Gateway API ranks hosts).
// The owners also go to the dataplanes (Snapshot.host_owners, AddHostOwners): there a request for
// a host is not taken by another namespace's wildcard or any-host route, nor its SNI by another
// namespace's certificate.
struct HostOwner {
  ObjectKey key;            // the oldest object routing the host
  bool one_label = true;    // a "*." host: every route of the owner's namespace listing it covers one label
};
using HostOwners = std::map<std::string, HostOwner>;

std::optional<CompiledObject> ClaimHosts(const CompiledObject& c, HostOwners& owners) {
  std::map<size_t, std::vector<std::pair<std::string, ObjectKey>>> lost;  // route index → (host, owner)
  for (size_t i = 0; i < c.routes.size(); ++i) {
    const CompiledRoute& r = c.routes[i];
    const CompiledListener* l = FindListener(c, r.user_listener);
    if (l == nullptr || !IsL7(l->proto.protocol())) continue;
    for (const auto& h : r.proto.match().hosts()) {
      auto [it, fresh] = owners.try_emplace(h, HostOwner{c.key});
      if (!fresh && it->second.key.ns != c.key.ns) {
        lost[i].emplace_back(h, it->second.key);
      } else if (!r.proto.match().wildcard_one_label()) {
        it->second.one_label = false;
      }
    }
  }
  if (lost.empty()) return std::nullopt;
  CompiledObject out = c;
  out.routes.clear();
  for (size_t i = 0; i < c.routes.size(); ++i) {
    auto it = lost.find(i);
    if (it == lost.end()) {
      out.routes.push_back(c.routes[i]);
      continue;
    }
    CompiledRoute r = c.routes[i];
    std::set<std::string> gone;
    std::vector<std::string> said;
    for (const auto& [host, owner] : it->second) {
      gone.insert(host);
      said.push_back(host + " (" + owner.ToString() + ")");
    }
    auto* hosts = r.proto.mutable_match()->mutable_hosts();
    hosts->erase(std::remove_if(hosts->begin(), hosts->end(), [&](const std::string& h) { return gone.count(h) > 0; }),
                 hosts->end());
    const bool dropped = hosts->empty();
    const std::string field = c.key.kind == kKindLoadBalancer ? "spec.routes[" + std::to_string(r.decl_index) + "].match.hosts"
                              : c.key.kind == kKindIngress    ? "spec.rules"
                                                              : "spec";
    const std::string route_name = r.proto.name().substr(r.proto.name().rfind('/') + 1);
    const bool one = said.size() == 1;
    out.warnings.push_back(
        {"HostConflict", field,
         "port " + std::to_string(FindListener(c, r.user_listener)->proto.port()) + ": " + (one ? "host " : "hosts ") +
             JoinStrings(said, ", ") + (one ? " is" : " are") + " routed by an older object of another namespace, so route " +
             Q(route_name) + (dropped ? " is not served" : std::string(" does not take ") + (one ? "its" : "their") + " requests") +
             " (a host belongs to one namespace; --allow-cross-namespace-hosts lets namespaces share it)"});
    if (!dropped) out.routes.push_back(std::move(r));
  }
  DropUnusedBackendSets(out);  // a canary Ingress has no routes, so never gets here
  return out;
}

// Snapshot.host_owners: each host's namespace, in host order.
void AddHostOwners(const HostOwners& owners, v1::Snapshot& snap) {
  for (const auto& [host, owner] : owners) {
    auto* o = snap.add_host_owners();
    o->set_host(host);
    o->set_namespace_(owner.key.ns);
    o->set_wildcard_one_label(host.rfind("*.", 0) == 0 && owner.one_label);
  }
}

void Place(const CompiledObject& c, size_t object_order, PortMap& ports, v1::Snapshot& snap,
           std::map<std::string, v1::TlsCertificate>& certs) {
  for (const auto& l : c.listeners) {
    auto [it, fresh] = ports.try_emplace({Transport(l.proto.protocol()), l.proto.port()});
    PortSlot& slot = it->second;
    if (fresh) {
      slot.listener = l.proto;
      slot.first_owner = &c;
      slot.first_owner_listener = l.user_name;
    } else {
      for (const auto& name : l.proto.tls().certificates()) {
        const auto& have = slot.listener.tls().certificates();
        if (std::find(have.begin(), have.end(), name) == have.end()) slot.listener.mutable_tls()->add_certificates(name);
      }
    }
    auto* owner = slot.listener.add_owners();
    owner->set_kind(c.key.kind);
    owner->set_namespace_(c.key.ns);
    owner->set_name(c.key.name);
    owner->set_generation(c.generation);
  }
  for (const auto& r : c.routes) {
    auto it = ports.find({Transport(FindListener(c, r.user_listener)->proto.protocol()),
                          FindListener(c, r.user_listener)->proto.port()});
    it->second.routes.emplace_back(RoutePrecedence(r.proto, r.catch_all, r.https_fallback, object_order, r.decl_index), r.proto.name());
    v1::Route* route = snap.add_routes();
    *route = r.proto;
    auto* owner = route->mutable_owner();
    owner->set_kind(c.key.kind);
    owner->set_namespace_(c.key.ns);
    owner->set_name(c.key.name);
    owner->set_generation(c.generation);
  }
  for (const auto& s : c.backend_sets) *snap.add_backend_sets() = s;
  for (const auto& cert : c.certificates) certs.emplace(cert.name(), cert);
}

void Finish(PortMap& ports, std::map<std::string, v1::TlsCertificate>& certs, v1::Snapshot& snap) {
  for (auto& [_, slot] : ports) {
    std::stable_sort(slot.routes.begin(), slot.routes.end());
    for (const auto& [__, name] : slot.routes) slot.listener.add_routes(name);
    *snap.add_listeners() = std::move(slot.listener);
  }
  for (auto& [_, cert] : certs) *snap.add_certificates() = std::move(cert);
  auto by_name = [](const auto& a, const auto& b) { return a.name() < b.name(); };
  std::sort(snap.mutable_listeners()->begin(), snap.mutable_listeners()->end(), by_name);
  std::sort(snap.mutable_routes()->begin(), snap.mutable_routes()->end(), by_name);
  std::sort(snap.mutable_backend_sets()->begin(), snap.mutable_backend_sets()->end(), by_name);
}

// A route whose match is the same as an earlier route's on its listener is never chosen: the
// earlier one (precedence, then the older object) takes every request it would. Its object is told
// (RouteShadowed), as ingress-nginx's admission webhook refuses a duplicate host and path.
// A route without a path match is keyed as Prefix "/" (it ranks as one, RoutePrecedence), except
// one marked match.after_paths, which ranks after its host's paths.
// How a route is named to its owner: a LoadBalancer's by its spec.routes[i] field, route name and
// listener name as written (snapshot names such as "default/shop/app" on "http-8080" are
// doorman's own); other kinds keep the snapshot names.
struct RouteLabel {
  std::string field;
  std::string name;
  std::string listener;
};

void WarnShadowedRoutes(const v1::Snapshot& snap, const std::map<ObjectKey, ObjectStatus*>& status_of,
                        const std::set<std::string>& fallbacks,
                        const std::map<std::string, RouteLabel>& labels) {
  std::map<std::string, const v1::Route*> by_name;
  for (const auto& r : snap.routes()) by_name.emplace(r.name(), &r);
  auto key_of = [](const v1::ObjectRef& o) { return ObjectKey{o.kind(), o.namespace_(), o.name()}; };
  for (const auto& l : snap.listeners()) {
    // (host, the rest of the match serialized) → the route that takes it: the first in the
    // listener's order, which is also the dataplane's last tie-break among equal matches.
    std::map<std::pair<std::string, std::string>, const v1::Route*> first;
    for (const auto& name : l.routes()) {
      auto it = by_name.find(name);
      if (it == by_name.end()) continue;
      const v1::Route& r = *it->second;
      if (fallbacks.count(r.name())) continue;  // declared by no one; it ranks after its twins
      // Keyed as matched: no path is Prefix "/", and a Prefix's trailing '/' does not count
      // ("/x/" matches "/x" too, docs/controller.md); the order of hosts, methods, headers,
      // query parameters and cookies does not count (each must match, in any order); and each
      // host on its own, so a route whose every host an earlier one with the same rest of the
      // match takes, host by host, is never used either.
      v1::RouteMatch m = r.match();
      if (!m.has_path() && !m.after_paths()) {
        m.mutable_path()->set_type(v1::PathMatch::PREFIX);
        m.mutable_path()->set_value("/");
      } else if (m.has_path() && m.path().type() == v1::PathMatch::PREFIX) {
        std::string v = m.path().value();
        while (v.size() > 1 && v.back() == '/') v.pop_back();
        m.mutable_path()->set_value(v);
      }
      std::set<std::string> hosts(m.hosts().begin(), m.hosts().end());
      if (hosts.empty()) hosts.insert("");
      m.clear_hosts();
      std::sort(m.mutable_methods()->begin(), m.mutable_methods()->end());
      const auto by_bytes = [](const auto& a, const auto& b) { return a.SerializeAsString() < b.SerializeAsString(); };
      std::sort(m.mutable_headers()->begin(), m.mutable_headers()->end(), by_bytes);
      std::sort(m.mutable_query_params()->begin(), m.mutable_query_params()->end(), by_bytes);
      std::sort(m.mutable_cookies()->begin(), m.mutable_cookies()->end(), by_bytes);
      const std::string rest = m.SerializeAsString();
      std::vector<const v1::Route*> winners;  // of the hosts already taken
      bool shadowed = true;
      for (const auto& h : hosts) {
        auto [winner, fresh] = first.emplace(std::make_pair(h, rest), &r);
        if (fresh) {
          shadowed = false;
        } else if (std::find(winners.begin(), winners.end(), winner->second) == winners.end()) {
          winners.push_back(winner->second);
        }
      }
      if (!shadowed) continue;
      auto st = status_of.find(key_of(r.owner()));
      if (st == status_of.end()) continue;
      const auto own = labels.find(r.name());
      // An Ingress's default backend routes: "<ns>/ingress:<name>/default[-https|-h<k>...]".
      const bool default_backend = r.owner().kind() == kKindIngress &&
                                   r.name().compare(r.name().rfind('/') + 1, 7, "default") == 0;
      const std::string field = own != labels.end()                 ? own->second.field
                                : default_backend                    ? "spec.defaultBackend"
                                : r.owner().kind() == kKindIngress   ? "spec.rules"
                                : r.owner().kind() == kKindService ? "spec.ports"
                                                                   : "spec.routes";
      const std::string route_name = own != labels.end() ? own->second.name : r.name();
      const std::string listener = own != labels.end() ? own->second.listener : l.name();
      std::vector<std::string> names;
      for (const v1::Route* w : winners) {
        const ObjectKey other = key_of(w->owner());
        const auto won = labels.find(w->name());
        names.push_back(Q(won != labels.end() ? won->second.name : w->name()) +
                        (other == st->second->key ? "" : " of " + other.ToString()));
      }
      st->second->warnings.push_back(
          {"RouteShadowed", field,
           "route " + Q(route_name) + " on listener " + Q(listener) + " has the same match as " +
               (names.size() == 1 ? "route " + names[0] + ", which takes" : "routes " + JoinStrings(names, ", ") + ", which take") +
               " all its requests: it is never used"});
    }
  }
}

// TLS is shared per host between the Ingresses of one namespace (ShareIngressTls), not across
// namespaces: an Ingress that still routes a host over plain HTTP only while an Ingress of another
// namespace serves that host over HTTPS is told so (HostPartlyTls), since the same URL then reaches
// different backends by scheme. `ingresses`: the placed Ingresses, oldest first.
// `hosts_owned`: hosts belong to a namespace (no --allow-cross-namespace-hosts), so another
// namespace's wildcard HTTPS routes do not take this Ingress's host (helper-146).
void WarnHostsPartlyTls(const std::vector<std::pair<const CompiledObject*, ObjectStatus*>>& ingresses, bool hosts_owned) {
  std::map<std::string, ObjectKey> https_hosts;  // host → the oldest Ingress routing it over HTTPS
  for (const auto& [placed, st] : ingresses) {
    for (const auto& r : placed->routes) {
      if (r.user_listener != "https") continue;
      for (const auto& h : r.proto.match().hosts()) https_hosts.emplace(h, st->key);
    }
  }
  // The HTTPS host (exact, or a "*." pattern covering one label, as Ingress wildcards do) that
  // takes `h`'s HTTPS requests.
  auto https_for = [&](const std::string& h) {
    if (auto exact = https_hosts.find(h); exact != https_hosts.end()) return exact;
    const auto dot = h.find('.');
    if (h.rfind("*.", 0) == 0 || dot == std::string::npos) return https_hosts.end();
    return https_hosts.find("*" + h.substr(dot));
  };
  for (const auto& [placed, st] : ingresses) {
    std::set<std::string> own_https;
    std::set<std::string> told;
    for (const auto& r : placed->routes) {
      if (r.user_listener == "https") own_https.insert(r.proto.match().hosts().begin(), r.proto.match().hosts().end());
    }
    for (const auto& r : placed->routes) {
      if (r.user_listener != "http") continue;
      for (const auto& h : r.proto.match().hosts()) {
        auto other = https_for(h);
        if (other == https_hosts.end() || own_https.count(h) || !told.insert(h).second) continue;
        const bool owned_here = hosts_owned && other->second.ns != st->key.ns;
        st->warnings.push_back(
            {"HostPartlyTls", "spec.tls",
             "host " + Q(h) + " is served over HTTPS by " + other->second.ToString() +
                 ", but this Ingress has no certificate for it: its paths for that host are served over plain HTTP "
                 "only, and HTTPS requests for them " +
                 (owned_here ? std::string("get this namespace's HTTPS routes for it, if any, else 404, with the "
                                           "port's default certificate (the host belongs to this namespace, so the "
                                           "other Ingress's routes and certificate do not take it)")
                             : std::string("reach the other Ingress's routes")) +
                 " (TLS is shared between the Ingresses of one namespace only); list the host in this Ingress's "
                 "spec.tls"});
      }
    }
  }
}

std::string ProblemsText(const std::vector<Problem>& problems) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < problems.size() && i < 5; ++i) {
    parts.push_back(problems[i].field.empty() ? problems[i].message : problems[i].field + ": " + problems[i].message);
  }
  std::string out = JoinStrings(parts, "; ");
  if (problems.size() > 5) out += "; (and " + std::to_string(problems.size() - 5) + " more problems)";
  return out;
}

std::vector<ListenerStatus> ListenerStatuses(const CompiledObject& c) {
  std::vector<ListenerStatus> out;
  for (const auto& l : c.listeners) {
    ListenerStatus ls{l.user_name, 0, l.proto.name()};
    for (const auto& r : c.routes) ls.attached_routes += r.user_listener == l.user_name && !r.https_fallback ? 1 : 0;
    out.push_back(ls);
  }
  return out;
}

// Canary Ingresses (API.md §1.2, ingress-nginx semantics): each canary path attaches to the
// routes of non-canary Ingresses in the same namespace whose match (host + path) is the same,
// on every listener, except ssl-redirect routes (they have no backends). A route takes one
// canary: the oldest canary Ingress wins (canaries are visited oldest first), the others are
// warned. The canary's backend sets enter the snapshot only when attached.
void AttachCanaries(const CompiledObject& canary, v1::Snapshot& snap, std::map<std::string, ObjectKey>& taken,
                    std::vector<StatusWarning>* warnings) {
  // The sets added (a default backend's per-host attachments share one set), and how their pods
  // are reached: as the main Ingress's are, so an HTTP check goes over TLS when its routes' do.
  struct AddedSet {
    v1::BackendSet* set = nullptr;  // in snap (RepeatedPtrField elements keep their address)
    std::set<std::string> hosts;    // of the routes it is attached to ("" = any host)
    std::optional<v1::BackendTls> route_tls;  // set when an attached route speaks HTTPS
    std::optional<v1::HealthCheck> main_check;  // of the main backends of an attached route
  };
  // The check of `route`'s first backend set (the main Ingress's doorman.dev/health-check-path).
  auto main_check_of = [&snap](const v1::Route& route) -> std::optional<v1::HealthCheck> {
    if (route.backends_size() == 0) return std::nullopt;
    for (const auto& set : snap.backend_sets()) {
      if (set.name() == route.backends(0).backend_set() && set.has_health_check()) return set.health_check();
    }
    return std::nullopt;
  };
  std::map<std::string, AddedSet> added;
  for (const auto& att : canary.canaries) {
    const std::string want = att.match.SerializeAsString();
    std::vector<std::string> attached;
    std::vector<std::string> conflicts;
    std::optional<v1::BackendTls> route_tls;
    std::optional<v1::HealthCheck> main_check;
    for (auto& route : *snap.mutable_routes()) {
      if (route.owner().kind() != kKindIngress || route.owner().namespace_() != canary.key.ns) continue;
      if (route.backends_size() == 0 || route.match().SerializeAsString() != want) continue;
      if (auto it = taken.find(route.name()); it != taken.end()) {
        conflicts.push_back(route.name() + " (already has the canary of " + it->second.ToString() + ")");
        continue;
      }
      taken.emplace(route.name(), canary.key);
      *route.mutable_policy()->mutable_canary() = att.canary;
      attached.push_back(route.name());
      if (!route_tls && route.policy().backend_protocol() == "HTTPS") route_tls = route.policy().backend_tls();
      if (!main_check) main_check = main_check_of(route);
    }
    if (!attached.empty()) {
      for (const auto& set : att.backend_sets) {
        AddedSet& a = added[set.name()];
        if (a.set == nullptr) {
          a.set = snap.add_backend_sets();
          *a.set = set;
        }
        if (att.match.hosts_size() == 0) a.hosts.insert("");
        a.hosts.insert(att.match.hosts().begin(), att.match.hosts().end());
        if (!a.route_tls) a.route_tls = route_tls;
        if (!a.main_check) a.main_check = main_check;
      }
    }
    if (!conflicts.empty()) {
      warnings->push_back({"CanaryNotAttached", att.field, "not the canary of " + JoinStrings(conflicts, ", ")});
    } else if (attached.empty()) {
      warnings->push_back({"CanaryNotAttached", att.field,
                           "no Ingress in namespace " + canary.key.ns +
                               " without doorman.dev/canary routes this host and path; the canary receives no traffic"});
    }
  }
  std::vector<std::string> unchecked;
  for (auto& [name, a] : added) {
    // A canary without a check of its own is checked as the main backends are (their check,
    // already made for the same hosts and backend TLS).
    if (!a.set->has_health_check() && a.main_check) {
      *a.set->mutable_health_check() = *a.main_check;
      continue;
    }
    if (!a.route_tls || !a.set->has_health_check() || a.set->health_check().protocol() != v1::HealthCheck::HTTP) continue;
    std::string why;
    if (auto tls = HealthCheckTls(*a.route_tls, a.hosts, &why)) {
      *a.set->mutable_health_check()->mutable_tls() = *tls;
    } else {
      a.set->clear_health_check();
      unchecked.push_back(BackendsOf(*a.set) + " (they " + why + ")");
    }
  }
  if (!unchecked.empty()) {
    warnings->push_back({"AnnotationIgnored", "metadata.annotations[doorman.dev/health-check-path]",
                         "not applied to the backends of " + JoinStrings(unchecked, ", ") +
                             ": the main Ingress verifies the name their certificate carries "
                             "(doorman.dev/backend-tls-secret), and no single name is known; set "
                             "doorman.dev/backend-tls-server-name on the main Ingress"});
  }
}

// The log line for an object that is not accepted.
std::string NotAcceptedText(const ObjectStatus& st) {
  const bool last = st.serving_last_good;
  if (st.reason == "InvalidManifest") {
    return last ? "manifest does not parse, keeping last good version of object" : "manifest does not parse, object not routed";
  }
  if (st.reason == "PortConflict") return last ? "port conflict, keeping last good version" : "port conflict, object not routed";
  if (st.reason == "UnsupportedProtocol") {
    return last ? "unsupported protocol, keeping last good version" : "unsupported protocol, object not routed";
  }
  if (st.reason == "InvalidAnnotation") {
    return last ? "invalid annotation, keeping last good version" : "invalid annotation, object not routed";
  }
  return last ? "invalid object, keeping last good version" : "invalid object, not routed";
}

}  // namespace

std::string SerializeSnapshot(const v1::Snapshot& snapshot) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream raw(&out);
    google::protobuf::io::CodedOutputStream coded(&raw);
    coded.SetSerializationDeterministic(true);
    snapshot.SerializeToCodedStream(&coded);
  }
  return out;
}

bool ParseCidrList(const std::string& text, std::vector<std::string>* out, std::string* bad) {
  for (std::string& item : SplitComma(text)) {
    if (item.empty()) continue;
    if (!IsCidr(item)) {
      *bad = item;
      return false;
    }
    out->push_back(std::move(item));
  }
  return true;
}

uint64_t SnapshotVersion(const v1::Snapshot& snapshot) { return ContentVersion(SerializeSnapshot(snapshot)); }

std::string RedactedSnapshotJson(const v1::Snapshot& snapshot) {
  v1::Snapshot copy = snapshot;
  for (auto& cert : *copy.mutable_certificates()) cert.clear_private_key_pem();
  std::string text;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = false;
  opts.preserve_proto_field_names = false;
  if (!google::protobuf::util::MessageToJsonString(copy, &text, opts).ok()) return "{}";
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return "{}";
  if (j.contains("certificates")) {
    for (auto& cert : j["certificates"]) cert["privateKeyPem"] = "REDACTED";
  }
  return j.dump();
}

Translator::Translator(TranslateOptions options) : options_(std::move(options)) {}
Translator::~Translator() = default;

TranslateResult Translator::Translate(const ObjectStore& store) {
  TranslateResult result;
  const internal::SliceIndexScope slice_index(store);  // a Service's slices without a walk each
  const CompileContext ctx{store, options_};
  IngressClasses classes = ResolveIngressClasses(store, options_);

  auto claimed = [&](const ObjectKey& key, const json& o) {
    if (key.kind == kKindLoadBalancer) return true;
    if (key.kind == kKindService) return ClaimsService(o, options_);
    if (key.kind == kKindIngress) return ClaimsIngress(o, classes, options_);
    return false;
  };
  auto compile_in = [&](const CompileContext& in, const ObjectKey& key, const json& o,
                        std::vector<Problem>* problems) -> std::optional<CompiledObject> {
    if (key.kind == kKindService) return CompileService(key, o, in, problems);
    if (key.kind == kKindIngress) return CompileIngress(key, o, in, problems);
    return CompileLoadBalancer(key, o, in, problems);
  };
  auto compile = [&](const ObjectKey& key, const json& o, std::vector<Problem>* problems) {
    return compile_in(ctx, key, o, problems);
  };
  // `store` with the `saved` Secrets that no longer load standing in for the current ones (a
  // rotation gone wrong: a key that does not match, a deleted Secret), into `out`; false (and
  // `out` untouched) when every saved Secret still loads.
  auto with_broken_replaced = [&](const std::map<ObjectKey, StoredObject>& saved, ObjectStore* out) {
    bool any = false;
    for (const auto& [k, s] : saved) {
      if (LoadCertificate(store, k.ns, k.name).cert) continue;
      if (!any) *out = store;
      (*out)[k] = s;
      any = true;
    }
    return any;
  };
  auto compile_last_good = [&](const ObjectKey& key) -> std::optional<CompiledObject> {
    auto lg = last_good_.find(key);
    if (lg == last_good_.end()) return std::nullopt;
    std::vector<Problem> ignored;
    auto out = compile(key, lg->second.object, &ignored);
    // A backend CA Secret that no longer loads: the one it was accepted with stands in.
    std::map<ObjectKey, StoredObject> old_cas;
    if (auto cas = last_good_ca_secrets_.find(key); !out && cas != last_good_ca_secrets_.end()) {
      for (const auto& [k, s] : cas->second) {
        if (!LoadCaBundle(store, k.ns, k.name, options_.only_tls_secrets_watched).pem) old_cas.emplace(k, s);
      }
      if (!old_cas.empty()) {
        ObjectStore with_old_cas = store;
        for (const auto& [k, s] : old_cas) with_old_cas[k] = s;
        ignored.clear();
        out = compile_in(CompileContext{with_old_cas, options_}, key, lg->second.object, &ignored);
      }
    }
    auto secrets = last_good_secrets_.find(key);
    if (out || secrets == last_good_secrets_.end() || secrets->second.empty()) return out;
    // Against the Secrets it was accepted with, for those that no longer load (rare: only while
    // the object is invalid). One that loads now keeps its current version, so that a renewal of
    // one certificate is served while another of the object's Secrets is broken (a certificate
    // near expiry must not wait for an unrelated fix). When that still does not compile, every
    // Secret as it was accepted.
    ObjectStore with_old;
    if (with_broken_replaced(secrets->second, &with_old)) {
      for (const auto& [k, s] : old_cas) with_old[k] = s;
      ignored.clear();
      out = compile_in(CompileContext{with_old, options_}, key, lg->second.object, &ignored);
      if (out) return out;
    } else {
      with_old = store;
    }
    for (const auto& [k, s] : old_cas) with_old[k] = s;
    for (const auto& [k, s] : secrets->second) with_old[k] = s;
    ignored.clear();
    return compile_in(CompileContext{with_old, options_}, key, lg->second.object, &ignored);
  };
  // The Secrets behind `c`'s certificates, as `from` holds them.
  auto secrets_of = [&](const CompiledObject& c, const ObjectStore& from) {
    std::map<ObjectKey, StoredObject> out;
    for (const auto& cert : c.certificates) {
      const auto slash = cert.name().find('/');
      if (slash == std::string::npos) continue;
      const ObjectKey k{kKindSecret, cert.name().substr(0, slash), cert.name().substr(slash + 1)};
      if (auto it = from.find(k); it != from.end()) out.emplace(k, it->second);
    }
    return out;
  };
  // An Ingress stays accepted when one of its TLS Secrets breaks (a warning; the entry's hosts
  // would lose HTTPS): the Secrets its last accepted version used stand in for the ones that no
  // longer load, so a rotation gone wrong keeps the previous certificate serving. Returns the
  // store the object was compiled against (`store` itself when nothing stood in).
  std::map<ObjectKey, ObjectStore> ingress_overlays;
  auto with_saved_secrets = [&](const ObjectKey& key) -> const ObjectStore* {
    auto saved = last_good_secrets_.find(key);
    if (key.kind != kKindIngress || saved == last_good_secrets_.end()) return nullptr;
    ObjectStore overlay;
    if (!with_broken_replaced(saved->second, &overlay)) return nullptr;
    return &(ingress_overlays[key] = std::move(overlay));
  };

  // 1. Compile every object doorman claims on its own; pick what each one routes with (its
  //    current spec, or its last good one). An object no longer claimed is forgotten.
  struct Candidate {
    ObjectKey key;
    const StoredObject* stored = nullptr;
    std::optional<CompiledObject> current;
    std::optional<CompiledObject> last_good;
    std::optional<CompiledObject> trimmed;  // current or last_good without its conflicted listeners
    std::optional<CompiledObject> host_trimmed;  // what is placed without the hosts another namespace holds (ClaimHosts)
    const CompiledObject* placed = nullptr;
    std::vector<Problem> problems;
    ObjectStatus status;
  };
  std::vector<Candidate> candidates;
  candidates.reserve(store.size());  // no reallocation: a Candidate is large
  std::map<ObjectKey, std::string> unclaimed;
  for (const auto& [key, stored] : store) {
    if (!claimed(key, stored.object)) {
      last_good_.erase(key);
      last_good_secrets_.erase(key);
      last_good_ca_secrets_.erase(key);
      if (options_.report_unclaimed) {
        std::string why;
        if (key.kind == kKindIngress) {
          why = WhyIngressNotClaimed(stored.object, classes, options_);
        } else if (key.kind == kKindService) {
          const auto spec = stored.object.find("spec");
          if (spec != stored.object.end() && spec->is_object() && StringOr(*spec, "type") == "LoadBalancer") {
            const std::string cls = StringOr(*spec, "loadBalancerClass");
            why = cls.empty() ? "no spec.loadBalancerClass, and --default-lb-class is off"
                              : "spec.loadBalancerClass " + cls + " is not " + options_.load_balancer_class;
          }
        }
        if (!why.empty()) {
          if (auto it = reported_unclaimed_.find(key); it == reported_unclaimed_.end() || it->second != why) {
            result.diagnostics.push_back({log::Level::kWarn, "translate", "object not claimed, so not routed",
                                          {{"file", stored.source.file}, {"object", key.ToString()}, {"reason", why}}});
          }
          unclaimed.emplace(key, std::move(why));
        }
      }
      continue;
    }
    Candidate cand;
    cand.key = key;
    cand.stored = &stored;
    cand.status.key = key;
    cand.status.source = stored.source;
    cand.status.generation = GenerationOf(stored.object);
    if (!stored.stale_reason.empty()) {
      cand.problems.push_back({"InvalidManifest", "", stored.stale_reason});
    }
    cand.current = compile(key, stored.object, &cand.problems);
    if (cand.current && !cand.current->warnings.empty()) {
      if (const ObjectStore* overlay = with_saved_secrets(key)) {
        std::vector<Problem> ignored;
        auto again = compile_in(CompileContext{*overlay, options_}, key, stored.object, &ignored);
        if (again) {
          // The warnings stay the current Secrets' (they are what the user must fix). A warning
          // the saved Secrets do not cure either (the overlay compile gives it too: say the
          // default certificate was never valid while a spec.tls Secret was restored) keeps its
          // words; the others say what is served instead.
          const std::vector<StatusWarning> uncured = std::move(again->warnings);
          again->warnings.clear();
          // What only the missing Secret caused (hsts or ssl-redirect "has no effect") is not so
          // while the saved certificate serves: only warnings the served compile has too stay.
          for (const auto& w : cand.current->warnings) {
            const bool secret = w.reason == "SecretNotFound" || w.reason == "InvalidSecret";
            if (secret || std::any_of(uncured.begin(), uncured.end(), [&w](const StatusWarning& u) {
                  return u.reason == w.reason && u.field == w.field && u.message == w.message;
                })) {
              again->warnings.push_back(w);
            }
          }
          // What the message says is lost, and what is served instead.
          static constexpr std::pair<std::string_view, std::string_view> kLost[] = {
              {"not served over HTTPS by this entry", "still served over HTTPS with the certificate of the last accepted version"},
              {kDefaultCertificateLost, "still served over HTTPS with the default certificate of the last accepted version"}};
          for (auto& w : again->warnings) {
            if (w.reason != "SecretNotFound" && w.reason != "InvalidSecret") continue;
            if (std::any_of(uncured.begin(), uncured.end(), [&w](const StatusWarning& u) {
                  return u.reason == w.reason && u.field == w.field && u.message == w.message;
                })) {
              continue;
            }
            for (const auto& [lost, kept] : kLost) {
              if (const auto at = w.message.find(lost); at != std::string::npos) w.message.replace(at, lost.size(), kept);
            }
          }
          cand.current = std::move(again);
        }
      }
    }
    if (!stored.stale_reason.empty() && cand.current) {
      // The manifest does not parse: this object is its last good version already.
      cand.last_good = std::move(cand.current);
      cand.current.reset();
    } else if (!cand.current) {
      cand.last_good = compile_last_good(key);
    }
    candidates.push_back(std::move(cand));
  }

  // 2. Place them oldest first, so each port goes to its oldest claimant. An object whose
  //    listeners partly clash routes without those (PortConflict warnings); one whose every
  //    listener clashes falls back to its last good version (placed the same way).
  auto order_of = [](const Candidate& c) -> const CompiledObject* {
    return c.current ? &*c.current : c.last_good ? &*c.last_good : nullptr;
  };
  std::vector<Candidate*> order;
  for (auto& c : candidates) order.push_back(&c);
  std::stable_sort(order.begin(), order.end(), [&](const Candidate* a, const Candidate* b) {
    const CompiledObject* ca = order_of(*a);
    const CompiledObject* cb = order_of(*b);
    if (!ca || !cb) return ca != nullptr && cb == nullptr;
    return OlderThan(*ca, *cb);
  });
  // TLS per host across the Ingresses of a namespace: each routed tls[] host goes to its oldest
  // Ingress, whose certificate then serves the other Ingresses' routes for that host too.
  IngressTlsHostMap ingress_tls_hosts;
  for (const Candidate* c : order) {
    if (const CompiledObject* v = order_of(*c)) AddIngressTlsHosts(*v, &ingress_tls_hosts);
  }
  for (Candidate* c : order) {
    if (c->current) ShareIngressTls(*c->current, ingress_tls_hosts, options_);
    if (c->last_good) ShareIngressTls(*c->last_good, ingress_tls_hosts, options_);
  }
  PortMap ports;
  HostOwners host_owners;
  std::map<std::string, v1::TlsCertificate> certs;
  // What of `version` can be placed: all of it, all but its conflicted listeners (in
  // c.trimmed), or nothing (nullptr) when every listener clashes.
  // Route and backend-set names placed so far, with their object. Generated names cannot repeat
  // across objects (RouteObjectPath); this keeps it so whatever a future kind generates: a
  // snapshot with a name twice is refused whole by every dataplane, which would stop every
  // object's updates, so the younger object is refused instead (NameConflict).
  std::map<std::string, ObjectKey> names;
  auto name_conflict = [&](const CompiledObject& version) -> std::optional<Problem> {
    auto taken = [&](const std::string& what, const std::string& name) -> std::optional<Problem> {
      auto it = names.find(name);
      if (it == names.end()) return std::nullopt;
      return Problem{"NameConflict", "",
                     what + " name " + Q(name) + " is already generated by the older " + it->second.ToString()};
    };
    for (const auto& r : version.routes) {
      if (auto p = taken("route", r.proto.name())) return p;
    }
    for (const auto& set : version.backend_sets) {
      if (auto p = taken("backend set", set.name())) return p;
    }
    return std::nullopt;
  };
  auto placeable = [&](Candidate& c, const CompiledObject& version,
                       std::vector<Problem>* conflicts) -> const CompiledObject* {
    if (auto clash = name_conflict(version)) {
      *conflicts = {*clash};
      return nullptr;
    }
    std::set<std::string> lost;
    *conflicts = Conflicts(version, ports, &lost);
    if (lost.empty()) return &version;
    if (lost.size() == version.listeners.size()) return nullptr;
    c.trimmed = Without(version, lost, *conflicts);
    return &*c.trimmed;
  };
  for (size_t i = 0; i < order.size(); ++i) {
    Candidate& c = *order[i];
    const CompiledObject* placed = nullptr;
    const CompiledObject* version = nullptr;  // what `placed` is (a part of)
    if (c.current) {
      std::vector<Problem> conflicts;
      placed = placeable(c, *c.current, &conflicts);
      if (placed) {
        version = &*c.current;
        last_good_[c.key] = *c.stored;
        auto overlay = ingress_overlays.find(c.key);
        last_good_secrets_[c.key] = secrets_of(*c.current, overlay != ingress_overlays.end() ? overlay->second : store);
        last_good_ca_secrets_.erase(c.key);
        if (const auto& ca = c.current->backend_ca_secret) {
          if (auto it = store.find(*ca); it != store.end()) last_good_ca_secrets_[c.key] = {{*ca, it->second}};
        }
      } else {
        c.problems.insert(c.problems.end(), conflicts.begin(), conflicts.end());
        c.last_good = compile_last_good(c.key);
        if (c.last_good) ShareIngressTls(*c.last_good, ingress_tls_hosts, options_);
      }
    }
    if (!placed && c.last_good) {
      std::vector<Problem> ignored;  // the status reports why the current version is not served
      placed = placeable(c, *c.last_good, &ignored);
      if (placed) version = &*c.last_good;
    }
    std::map<std::string, uint32_t> unattached;  // listener → routes ClaimHosts left out
    if (placed && !options_.allow_cross_namespace_hosts) {
      if (auto kept = ClaimHosts(*placed, host_owners)) {
        for (const auto& r : placed->routes) ++unattached[r.user_listener];
        for (const auto& r : kept->routes) --unattached[r.user_listener];
        c.host_trimmed = std::move(kept);
        placed = &*c.host_trimmed;
      }
    }
    if (placed) {
      Place(*placed, i, ports, result.snapshot, certs);
      for (const auto& r : placed->routes) names.emplace(r.proto.name(), c.key);
      for (const auto& set : placed->backend_sets) names.emplace(set.name(), c.key);
    }
    c.placed = placed;

    ObjectStatus& st = c.status;
    if (placed) {
      st.serving_generation = placed->generation;
      st.listeners = ListenerStatuses(*version);
      // A route whose every host another namespace holds is not attached (HostConflict).
      for (auto& l : st.listeners) {
        if (auto it = unattached.find(l.name); it != unattached.end()) l.attached_routes -= std::min(l.attached_routes, it->second);
      }
      // A listener that lost its port is not part of the snapshot listener of that port (it is
      // the winner's): no dataplane report about that port concerns this object.
      for (auto& l : st.listeners) {
        const bool kept = std::any_of(placed->listeners.begin(), placed->listeners.end(),
                                      [&](const CompiledListener& p) { return p.user_name == l.name; });
        if (!kept) l.snapshot_name.clear();
      }
      st.warnings = placed->warnings;
    } else if (c.current) {
      // Nothing placed (every listener clashed): status.listeners still lists what the object
      // declares (Gateway API: every listener has a status, attachedRoutes counted whatever its
      // state), none of them served.
      st.listeners = ListenerStatuses(*c.current);
      for (auto& l : st.listeners) l.snapshot_name.clear();
    }
    if (placed && version == (c.current ? &*c.current : nullptr)) {
      st.accepted = true;
      st.reason = "Accepted";
      st.message = "Accepted";
    } else {
      st.accepted = false;
      st.serving_last_good = placed != nullptr;
      st.reason = c.problems.empty() ? "InvalidSpec" : c.problems.front().reason;
      st.field = c.problems.empty() ? "" : c.problems.front().field;
      st.message = ProblemsText(c.problems);
      st.first_problem = c.problems.empty() ? "" : c.problems.front().message;
      st.problem_count = c.problems.size();
    }
  }
  // Canaries modify routes placed above, so they go after every object is placed.
  std::map<std::string, ObjectKey> canary_taken;  // route name → canary Ingress
  for (Candidate* c : order) {
    if (c->placed && !c->placed->canaries.empty()) {
      AttachCanaries(*c->placed, result.snapshot, canary_taken, &c->status.warnings);
    }
  }
  Finish(ports, certs, result.snapshot);
  if (!options_.allow_cross_namespace_hosts) AddHostOwners(host_owners, result.snapshot);
  std::map<ObjectKey, ObjectStatus*> status_of;
  std::set<std::string> fallbacks;
  std::map<std::string, RouteLabel> labels;
  for (Candidate* c : order) {
    if (!c->placed) continue;
    status_of.emplace(c->key, &c->status);
    for (const auto& r : c->placed->routes) {
      if (r.https_fallback) fallbacks.insert(r.proto.name());
      if (c->key.kind == kKindLoadBalancer) {
        const std::string& full = r.proto.name();  // "<ns>/<object>/<route>"
        labels[full] = {"spec.routes[" + std::to_string(r.decl_index) + "]", full.substr(full.rfind('/') + 1),
                        r.user_listener};
      }
    }
  }
  WarnShadowedRoutes(result.snapshot, status_of, fallbacks, labels);

  std::vector<std::pair<const CompiledObject*, ObjectStatus*>> ingresses;
  for (Candidate* c : order) {
    if (c->placed && c->key.kind == kKindIngress) ingresses.emplace_back(c->placed, &c->status);
  }
  WarnHostsPartlyTls(ingresses, !options_.allow_cross_namespace_hosts);

  // 3. Statuses (sorted by key) and one log line per new problem or warning.
  for (auto& c : candidates) result.statuses.push_back(std::move(c.status));
  for (auto& st : classes.statuses) result.statuses.push_back(std::move(st));
  std::sort(result.statuses.begin(), result.statuses.end(),
            [](const ObjectStatus& a, const ObjectStatus& b) { return a.key < b.key; });
  std::map<ObjectKey, std::string> reported;
  std::map<ObjectKey, std::set<std::string>> reported_warnings;
  for (const auto& st : result.statuses) {
    const std::string text = st.accepted ? "" : st.reason + "|" + st.message + "|" + (st.serving_last_good ? "1" : "0");
    reported[st.key] = text;
    auto prev = reported_.find(st.key);
    const std::string before = prev == reported_.end() ? "" : prev->second;
    if (text != before && st.accepted) {
      // "again" only for an object that had been accepted (it was serving its last good version);
      // one whose every version so far was invalid is accepted for the first time.
      const bool had_last_good = before.size() >= 2 && before.compare(before.size() - 2, 2, "|1") == 0;
      result.diagnostics.push_back({log::Level::kInfo, "translate", had_last_good ? "object accepted again" : "object accepted",
                                    {{"file", st.source.file}, {"object", st.key.ToString()}}});
    } else if (text != before) {
      // The first problem's field and message; the status message holds them all. (Not cut at
      // "; ": a message may quote a value that holds one.)
      const std::string& error = st.first_problem.empty() ? st.message : st.first_problem;
      Diagnostic d{log::Level::kWarn, "translate", NotAcceptedText(st),
                   {{"file", st.source.file}, {"object", st.key.ToString()}, {"field", st.field}, {"error", error}}};
      if (st.problem_count > 1) d.fields.push_back({"problems", st.message});
      result.diagnostics.push_back(std::move(d));
    }
    // Warnings (the object routes, but something it names is missing or ignored): once each.
    std::set<std::string>& seen = reported_warnings[st.key];
    const std::set<std::string>& logged = reported_warnings_[st.key];
    for (const auto& w : st.warnings) {
      const std::string id = w.reason + "|" + w.field + "|" + w.message;
      if (!seen.insert(id).second || logged.count(id)) continue;
      result.diagnostics.push_back({log::Level::kWarn, "translate", "object warning",
                                    {{"file", st.source.file},
                                     {"object", st.key.ToString()},
                                     {"reason", w.reason},
                                     {"field", w.field},
                                     {"error", w.message}}});
    }
  }
  reported_ = std::move(reported);
  reported_warnings_ = std::move(reported_warnings);
  reported_unclaimed_ = std::move(unclaimed);
  served_last_good_.clear();
  for (const auto& st : result.statuses) {
    if (st.serving_last_good) served_last_good_.insert(st.key);
  }
  // Forget last good versions of objects that are gone.
  for (auto it = last_good_.begin(); it != last_good_.end();) {
    it = store.count(it->first) ? std::next(it) : last_good_.erase(it);
  }
  for (auto it = last_good_ca_secrets_.begin(); it != last_good_ca_secrets_.end();) {
    it = last_good_.count(it->first) ? std::next(it) : last_good_ca_secrets_.erase(it);
  }
  for (auto it = last_good_secrets_.begin(); it != last_good_secrets_.end();) {
    it = last_good_.count(it->first) ? std::next(it) : last_good_secrets_.erase(it);
  }
  return result;
}

std::map<ObjectKey, nlohmann::json> Translator::LastGoodServed() const {
  std::map<ObjectKey, nlohmann::json> out;
  for (const auto& key : served_last_good_) {
    auto it = last_good_.find(key);
    if (it != last_good_.end()) out.emplace(key, it->second.object);
  }
  return out;
}

void Translator::SeedLastGood(const ObjectKey& key, nlohmann::json object) {
  last_good_.try_emplace(key, StoredObject{std::move(object), SourceLocation{"kubernetes", 0, 0}, ""});
}

}  // namespace doorman::controller
