#include "dataplane/admin/config_dump.h"

#include <nlohmann/json.hpp>

namespace doorman::dataplane {

namespace {
const char* PathType(PathMatcher::Type t) {
  switch (t) {
    case PathMatcher::Type::kAny:
      return "Any";
    case PathMatcher::Type::kPrefix:
      return "Prefix";
    case PathMatcher::Type::kExact:
      return "Exact";
    case PathMatcher::Type::kRegex:
      return "RegularExpression";
  }
  return "?";
}
}  // namespace

std::string ConfigToJson(const RuntimeConfig* config, const std::vector<ListenerStatus>& sockets,
                         const std::vector<std::string>& warnings) {
  using nlohmann::json;
  json out;
  out["version"] = config ? config->version : 0;
  out["warnings"] = warnings;
  json listeners = json::array();
  json routes = json::array();
  if (config != nullptr) {
    for (const auto& l : config->listeners) {
      bool accepting = false;
      for (const auto& s : sockets) accepting = accepting || (s.name == l->name && s.accepting);
      json routes_of = json::array();
      for (const Route* r : l->routes) routes_of.push_back(r->name);
      listeners.push_back({{"name", l->name},
                           {"port", l->port},
                           {"protocol", ProtocolName(l->protocol)},
                           {"served", l->served},
                           {"accepting", accepting},
                           {"idle_timeout_ms", l->idle_timeout.count()},
                           {"routes", routes_of}});
    }
    for (const auto& r : config->routes) {
      json hosts = r->match.exact_hosts;
      for (const auto& w : r->match.wildcard_suffixes) hosts.push_back("*" + w);
      json backends = json::array();
      for (const auto& b : r->backends) {
        json eps = json::array();
        bool any_in_rotation = false, any_eligible = false;
        for (const auto& e : b.set->endpoints) {
          // ready: the EndpointSlice says so; eligible: ready and (local_only) on this node;
          // healthy: the set's active check (null: not checked); ejected: passive outlier
          // detection has it out now; in_rotation: what the schedulers may pick for new traffic.
          const bool healthy = lb::Healthy(e.health.get());
          const bool ejected = lb::Ejected(*e.state);
          eps.push_back({{"address", e.key},
                         {"ready", e.ready},
                         {"eligible", e.eligible},
                         {"healthy", e.health ? json(healthy) : json(nullptr)},
                         {"ejected", ejected},
                         {"in_rotation", e.eligible && healthy && !ejected}});
          any_in_rotation = any_in_rotation || (e.eligible && healthy && !ejected);
          any_eligible = any_eligible || e.eligible;
        }
        // panic: no endpoint is in rotation, so the schedulers fail open across the eligible
        // ones (docs/l4.md, Envoy's panic mode).
        backends.push_back({{"backend_set", b.set->name},
                            {"weight", b.weight},
                            {"panic", !any_in_rotation && any_eligible},
                            {"endpoints", eps}});
      }
      routes.push_back({{"name", r->name},
                        {"listener", r->listener},
                        {"namespace", r->ns},
                        {"hosts", hosts},
                        // Its wildcard or any-host match leaves out hosts another namespace owns.
                        {"checks_host_owner", r->check_host_owner},
                        {"path", {{"type", PathType(r->match.path.type)}, {"value", r->match.path.value}}},
                        {"connect_timeout_ms", r->connect_timeout.count()},
                        {"request_timeout_ms", r->request_timeout.count()},
                        {"backends", backends}});
    }
  }
  out["listeners"] = listeners;
  out["routes"] = routes;
  // Which namespace each routed host belongs to (docs/controller.md "Sharing a port").
  json owners = json::array();
  if (config != nullptr && config->host_owners) {
    for (const auto& e : config->host_owners->Entries()) {
      owners.push_back({{"host", e.host}, {"namespace", e.ns}, {"wildcard_one_label", e.wildcard_one_label}});
    }
  }
  out["host_owners"] = owners;
  return out.dump(2, ' ', false, json::error_handler_t::replace) + "\n";  // never throws on bad UTF-8
}

}  // namespace doorman::dataplane
