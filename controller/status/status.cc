#include "controller/status/status.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <tuple>
#include <set>

#include "common/address.h"
#include "common/hash.h"
#include "common/utf8.h"

namespace doorman::controller::status {
namespace {

// What an object that is not accepted still routes. Its generation names it when it differs from
// the refused one; it does not when the edit left the generation alone (annotations, which an
// API server does not count) or the kind has none (Services).
std::string LastGoodNote(const ObjectStatus& st) {
  if (st.serving_generation == 0 || st.serving_generation == st.generation) {
    return " (still routing its last accepted version)";
  }
  return " (still routing generation " + std::to_string(st.serving_generation) + ", the last accepted one)";
}

using nlohmann::json;

constexpr size_t kMaxEventMessage = 1024;
// metav1.Condition's message limit (the API server refuses a longer one, 422 on every write).
constexpr size_t kMaxConditionMessage = 32768;

// `s` cut to at most `max` bytes at a UTF-8 boundary, "..." marking a cut.
std::string Clip(const std::string& s, size_t max) {
  return s.size() <= max ? s : std::string(Utf8Prefix(s, max - 3)) + "...";
}

std::set<std::string> AddressSet(const std::vector<DataplaneView>& dataplanes) {
  std::set<std::string> out;
  for (const auto& d : dataplanes) {
    if (!d.advertise_address.empty()) out.insert(d.advertise_address);
  }
  return out;
}

// metav1.Condition; lastTransitionTime kept from `current` when the status did not change.
json Condition(const std::string& type, bool ok, const std::string& reason, const std::string& message,
               int64_t generation, const json& current, const std::string& now) {
  const std::string status = ok ? "True" : "False";
  std::string since = now;
  if (current.is_object() && current.contains("conditions") && current["conditions"].is_array()) {
    for (const auto& c : current["conditions"]) {
      if (c.is_object() && c.value("type", "") == type && c.value("status", "") == status &&
          c.contains("lastTransitionTime") && c["lastTransitionTime"].is_string()) {
        since = c["lastTransitionTime"].get<std::string>();
      }
    }
  }
  return {{"type", type},
          {"status", status},
          {"observedGeneration", generation},
          {"lastTransitionTime", since},
          {"reason", reason},
          {"message", Clip(message, kMaxConditionMessage)}};
}

bool Routed(const ObjectStatus& st) { return st.accepted || st.serving_last_good; }

}  // namespace

namespace {
// Whether dataplane `d` reported that it could not open listener `l` (one that lost its port to
// another object has no snapshot name: no report concerns it).
bool NotOpenedOn(const ListenerStatus& l, const DataplaneView& d) {
  return !l.snapshot_name.empty() &&
         std::find(d.unserved_listeners.begin(), d.unserved_listeners.end(), l.snapshot_name) !=
             d.unserved_listeners.end();
}
}  // namespace

std::string UnservedListeners(const ObjectStatus& st, const std::vector<DataplaneView>& dataplanes) {
  std::string out;
  for (const auto& l : st.listeners) {
    std::string nodes;
    for (const auto& d : dataplanes) {
      if (!NotOpenedOn(l, d)) continue;
      nodes += (nodes.empty() ? "" : ", ") + (d.node_name.empty() ? std::string("(unnamed)") : d.node_name);
    }
    if (nodes.empty()) continue;
    out += (out.empty() ? "" : "; ") + std::string("listener \"") + l.name + "\" (" + l.snapshot_name +
           ") could not be opened on " + nodes + " (its port is in use or the address is unavailable; see the dataplane log)";
  }
  return out;
}

bool IsIpAddress(const std::string& s) { return IsIpLiteral(s); }

std::map<ObjectKey, int64_t> ServedBy(const std::vector<ObjectStatus>& statuses) {
  std::map<ObjectKey, int64_t> out;
  for (const auto& st : statuses) {
    if (!Routed(st)) continue;
    out[st.key] = st.accepted ? st.generation : st.serving_generation;
  }
  return out;
}

void ServedGenerations::Record(uint64_t version, std::map<ObjectKey, int64_t> entry,
                               const std::vector<uint64_t>& in_use, size_t keep) {
  by_version_[version] = std::move(entry);
  order_.erase(std::remove(order_.begin(), order_.end(), version), order_.end());
  order_.push_back(version);
  for (size_t i = 0; i + 1 < order_.size() && by_version_.size() > keep;) {
    const uint64_t v = order_[i];
    if (std::find(in_use.begin(), in_use.end(), v) != in_use.end()) {
      ++i;
      continue;
    }
    by_version_.erase(v);
    order_.erase(order_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

const std::map<ObjectKey, int64_t>* ServedGenerations::Find(uint64_t version) const {
  auto it = by_version_.find(version);
  return it == by_version_.end() ? nullptr : &it->second;
}

namespace {
// Not accepted, but still routing a last good translation of the current generation: its spec is
// unchanged and something it refers to (a Secret, a Service) broke since.
bool LastGoodIsThisGeneration(const ObjectStatus& st) {
  return !st.accepted && st.serving_last_good && st.serving_generation == st.generation;
}
}  // namespace

ProgrammedCount CountProgrammed(const ObjectStatus& st, const std::vector<DataplaneView>& dataplanes,
                                const ServedGenerations& served) {
  ProgrammedCount c;
  c.ready = dataplanes.size();
  // Not accepted: the current generation is routed nowhere, unless its last good translation is
  // of this very generation (a Secret it names broke since, the spec did not change).
  if (!st.accepted && !LastGoodIsThisGeneration(st)) return c;
  for (const auto& d : dataplanes) {
    const auto* entry = served.Find(d.acked_version);
    if (!entry) continue;
    auto g = entry->find(st.key);
    if (g == entry->end() || g->second != st.generation) continue;
    ++c.acked;
    if (std::none_of(st.listeners.begin(), st.listeners.end(), [&](const auto& l) { return NotOpenedOn(l, d); })) {
      ++c.programmed;
    }
  }
  return c;
}

json LoadBalancerAddresses(const std::vector<DataplaneView>& dataplanes) {
  json out = json::array();
  for (const auto& a : AddressSet(dataplanes)) {
    out.push_back({{"type", IsIpAddress(a) ? "IPAddress" : "Hostname"}, {"value", a}});
  }
  return out;
}

json IngressPoints(const std::vector<DataplaneView>& dataplanes, bool ip_mode_proxy) {
  json out = json::array();
  for (const auto& a : AddressSet(dataplanes)) {
    if (!IsIpAddress(a)) {
      out.push_back({{"hostname", a}});
    } else if (ip_mode_proxy) {
      // Without it (ipMode VIP, the default) kube-proxy routes this IP:port of the Service straight
      // to its endpoints on every node, whatever its loadBalancerClass: traffic for the node's own
      // address would never reach the dataplane listening there (KEP-1860).
      out.push_back({{"ip", a}, {"ipMode", "Proxy"}});
    } else {
      out.push_back({{"ip", a}});
    }
  }
  return out;
}

bool HasIpMode(const json& status) {
  if (!status.is_object() || !status.contains("loadBalancer") || !status["loadBalancer"].is_object()) return false;
  const auto it = status["loadBalancer"].find("ingress");
  if (it == status["loadBalancer"].end() || !it->is_array()) return false;
  return std::any_of(it->begin(), it->end(), [](const json& p) { return p.is_object() && p.contains("ipMode"); });
}

json WithoutIpMode(const json& status) {
  json out = status;
  if (out.is_object() && out.contains("loadBalancer") && out["loadBalancer"].is_object() &&
      out["loadBalancer"].contains("ingress") && out["loadBalancer"]["ingress"].is_array()) {
    for (auto& p : out["loadBalancer"]["ingress"]) {
      if (p.is_object()) p.erase("ipMode");
    }
  }
  return out;
}

json LoadBalancerStatus(const ObjectStatus& st, const std::vector<DataplaneView>& dataplanes,
                        const ServedGenerations& served, const json& current, const std::string& now) {
  const int64_t gen = st.generation;
  json conditions = json::array();
  if (st.accepted) {
    conditions.push_back(Condition("Accepted", true, "Accepted", "the spec is valid", gen, current, now));
  } else {
    // Clipped here (with room for the note below), so the note is never what gets cut.
    std::string message = Clip(st.message, kMaxConditionMessage - 128);
    if (st.serving_last_good) message += LastGoodNote(st);
    conditions.push_back(Condition("Accepted", false, st.reason.empty() ? "InvalidSpec" : st.reason, message, gen,
                                   current, now));
  }
  const ProgrammedCount pc = CountProgrammed(st, dataplanes, served);
  // The same count as dataplanes.programmed (a rollout is Pending by the ACKs, below).
  const std::string counts = std::to_string(pc.programmed) + " of " + std::to_string(pc.ready) +
                             " dataplanes programmed generation " + std::to_string(gen);
  if (LastGoodIsThisGeneration(st)) {
    conditions.push_back(Condition("Programmed", false, "Invalid",
                                   "generation " + std::to_string(gen) + " is not accepted as the objects it refers to "
                                   "stand now: " + std::to_string(pc.acked) + " of " + std::to_string(pc.ready) +
                                   " dataplanes still route its last accepted translation",
                                   gen, current, now));
  } else if (!st.accepted) {
    conditions.push_back(Condition("Programmed", false, "Invalid",
                                   "generation " + std::to_string(gen) + " is not accepted, so it is not programmed",
                                   gen, current, now));
  } else if (pc.ready == 0) {
    conditions.push_back(Condition("Programmed", false, "NoDataplanes", "no dataplane is connected", gen, current, now));
  } else if (pc.acked < pc.ready) {
    conditions.push_back(Condition("Programmed", false, "Pending", counts, gen, current, now));
  } else if (const std::string unserved = UnservedListeners(st, dataplanes); !unserved.empty()) {
    // Every dataplane runs this generation, but some could not open a listener of it.
    conditions.push_back(Condition("Programmed", false, "ListenerNotServed", unserved, gen, current, now));
  } else {
    conditions.push_back(Condition("Programmed", true, "Programmed", counts, gen, current, now));
  }
  json listeners = json::array();
  for (const auto& l : st.listeners) listeners.push_back({{"name", l.name}, {"attachedRoutes", l.attached_routes}});
  // With no dataplane in view (start-up, a partition from the API, a rolling restart) the
  // addresses written earlier are kept: blanking them would flap DNS and external consumers.
  // An object that routes nothing (never accepted, no last good version) has no address, as a
  // Service or Ingress in that state has none.
  json addresses = Routed(st) ? LoadBalancerAddresses(dataplanes) : json::array();
  if (Routed(st) && dataplanes.empty() && current.is_object() && current.contains("addresses") &&
      current["addresses"].is_array()) {
    addresses = current["addresses"];
  }
  return {{"observedGeneration", gen},
          {"conditions", conditions},
          {"addresses", addresses},
          {"listeners", listeners},
          {"dataplanes", {{"ready", pc.ready}, {"programmed", pc.programmed}}}};
}

json IngressStatus(const ObjectStatus& st, const std::vector<DataplaneView>& dataplanes, const json& current,
                   bool ip_mode_proxy) {
  json out = current.is_object() ? current : json::object();
  json points = Routed(st) ? IngressPoints(dataplanes, ip_mode_proxy) : json::array();
  json lb = out.contains("loadBalancer") && out["loadBalancer"].is_object() ? out["loadBalancer"] : json::object();
  if (points.empty() && Routed(st) && dataplanes.empty()) {
    // no dataplane in view: keep what was written earlier (see LoadBalancerStatus)
  } else if (points.empty()) {
    lb.erase("ingress");
  } else {
    lb["ingress"] = points;
  }
  out["loadBalancer"] = lb;
  return out;
}

std::optional<json> DesiredStatus(const ObjectStatus& st, const std::vector<DataplaneView>& dataplanes,
                                  const ServedGenerations& served, const json& current, const std::string& now,
                                  bool service_ip_mode) {
  if (st.key.kind == kKindLoadBalancer) return LoadBalancerStatus(st, dataplanes, served, current, now);
  if (st.key.kind == kKindService) return IngressStatus(st, dataplanes, current, service_ip_mode);
  if (st.key.kind == kKindIngress) return IngressStatus(st, dataplanes, current);
  return std::nullopt;
}

json CreateMergePatch(const json& from, const json& to) {
  if (!from.is_object() || !to.is_object()) return to;
  json patch = json::object();
  for (auto it = to.begin(); it != to.end(); ++it) {
    auto f = from.find(it.key());
    if (f == from.end()) {
      patch[it.key()] = it.value();
    } else if (*f != it.value()) {
      if (f->is_object() && it.value().is_object()) {
        patch[it.key()] = CreateMergePatch(*f, it.value());
      } else {
        patch[it.key()] = it.value();
      }
    }
  }
  for (auto it = from.begin(); it != from.end(); ++it) {
    if (!to.contains(it.key())) patch[it.key()] = nullptr;
  }
  return patch;
}

json StatusPatch(const json& current_status, const json& desired_status, const std::string& resource_version) {
  const json from = current_status.is_object() ? current_status : json::object();
  json patch = {{"status", CreateMergePatch(from, desired_status)}};
  if (!resource_version.empty()) patch["metadata"] = {{"resourceVersion", resource_version}};
  return patch;
}

ObjectStatus WarningsAsProblem(const ObjectStatus& st) {
  ObjectStatus out;
  out.key = st.key;
  out.generation = st.generation;
  out.accepted = st.accepted;
  if (st.warnings.empty()) return out;
  out.reason = st.warnings.front().reason;
  out.field = st.warnings.front().field;
  constexpr std::size_t kMaxListed = 5;
  for (std::size_t i = 0; i < st.warnings.size() && i < kMaxListed; ++i) {
    const auto& w = st.warnings[i];
    if (!out.message.empty()) out.message += "; ";
    out.message += (w.field.empty() ? "" : w.field + ": ") + w.message + (i == 0 ? "" : " (" + w.reason + ")");
  }
  if (st.warnings.size() > kMaxListed) {
    out.message += "; (and " + std::to_string(st.warnings.size() - kMaxListed) + " more warnings)";
  }
  return out;
}

json WarningEvent(const ObjectStatus& st, const json& object, const std::string& api_version,
                  const std::string& reporting_instance, const std::string& now) {
  const json meta = object.is_object() && object.contains("metadata") ? object["metadata"] : json::object();
  const std::string uid = meta.value("uid", "");
  const std::string reason = st.reason.empty() ? "InvalidSpec" : st.reason;
  // A Service or an Ingress has no condition to say it keeps routing its last good version (and
  // its addresses stay), so the Event says it; clipped with room for that note, never through it.
  const std::string note = !st.accepted && st.serving_last_good ? LastGoodNote(st) : "";
  const std::string message = Clip(st.message, kMaxEventMessage - note.size()) + note;
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx",
                static_cast<unsigned long long>(Fnv1a64(uid + "\n" + reason + "\n" + message)));
  const std::string ns = st.key.ns.empty() ? std::string(kDefaultNamespace) : st.key.ns;
  json involved = {{"apiVersion", api_version}, {"kind", st.key.kind}, {"name", st.key.name}};
  if (!st.key.ns.empty()) involved["namespace"] = st.key.ns;
  if (!uid.empty()) involved["uid"] = uid;
  if (meta.contains("resourceVersion")) involved["resourceVersion"] = meta["resourceVersion"];
  // Object names may be 253 characters long, and so may Event names: keep room for ".<hash>".
  constexpr std::size_t kMaxEventName = 253;
  // A cut name must still end its last label with an alphanumeric (DNS-1123 subdomain): no
  // "a-.<hash>" nor "a..<hash>", which an API server refuses.
  std::string stem = st.key.name.substr(0, kMaxEventName - 17);
  while (!stem.empty() && (stem.back() == '-' || stem.back() == '.')) stem.pop_back();
  const std::string event_name = stem + "." + hash;
  return {{"apiVersion", "v1"},
          {"kind", "Event"},
          {"metadata", {{"name", event_name}, {"namespace", ns}}},
          {"involvedObject", involved},
          {"type", "Warning"},
          {"reason", reason},
          {"message", message},
          {"source", {{"component", "doorman-controller"}}},
          {"reportingComponent", "doorman.dev/controller"},
          {"reportingInstance", reporting_instance},
          {"firstTimestamp", now},
          {"lastTimestamp", now},
          {"count", 1}};
}

json EventRepeatPatch(const json& existing, const std::string& now) {
  const int64_t count = existing.is_object() ? existing.value("count", int64_t{1}) : 1;
  return {{"count", count + 1}, {"lastTimestamp", now}};
}

std::optional<std::chrono::system_clock::time_point> ParseKubeTime(const std::string& s) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0, n = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &n) != 6) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  auto t = std::chrono::system_clock::from_time_t(timegm(&tm));
  size_t i = static_cast<size_t>(n);
  if (i < s.size() && s[i] == '.') {
    int64_t frac = 0;
    int digits = 0;
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      if (digits < 6) {
        frac = frac * 10 + (s[i] - '0');
        ++digits;
      }
    }
    while (digits++ < 6) frac *= 10;
    t += std::chrono::microseconds(frac);
  }
  if (i != s.size() - 1 || s[i] != 'Z') return std::nullopt;
  return t;
}

std::string ViewLeaseName(const std::string& lease_name, const std::string& identity) {
  std::string clean;
  for (char c : identity) {
    const char l = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    const bool ok = (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9');
    if (ok) {
      clean += l;
    } else if (!clean.empty() && clean.back() != '-') {
      clean += '-';
    }
  }
  while (!clean.empty() && clean.back() == '-') clean.pop_back();
  std::string name = lease_name + "-view-" + clean;
  if (clean != identity || name.size() > 63) {
    // Lossy or too long: a hash of the exact identity keeps distinct replicas distinct.
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(doorman::Fnv1a64(identity)));
    const std::string suffix = std::string("-") + std::string(hex, 10);
    if (name.size() + suffix.size() > 63) name.resize(63 - suffix.size());
    while (!name.empty() && name.back() == '-') name.pop_back();
    name += suffix;
  }
  return name;
}

json DataplaneViewJson(const std::vector<DataplaneView>& dataplanes) {
  std::vector<DataplaneView> sorted = dataplanes;
  std::sort(sorted.begin(), sorted.end(), [](const DataplaneView& a, const DataplaneView& b) {
    return std::tie(a.node_name, a.advertise_address, a.acked_version) <
           std::tie(b.node_name, b.advertise_address, b.acked_version);
  });
  json out = json::array();
  for (const auto& d : sorted) {
    json e = {{"node", d.node_name}, {"address", d.advertise_address}, {"ackedVersion", d.acked_version}};
    if (!d.unserved_listeners.empty()) e["unservedListeners"] = d.unserved_listeners;
    out.push_back(std::move(e));
  }
  return out;
}

std::optional<PeerView> ParsePeerView(const json& lease) {
  if (!lease.is_object() || !lease.contains("spec") || !lease["spec"].is_object()) return std::nullopt;
  const json& spec = lease["spec"];
  PeerView v;
  v.identity = spec.value("holderIdentity", "");
  const auto renew = ParseKubeTime(spec.value("renewTime", ""));
  const int64_t secs = spec.value("leaseDurationSeconds", int64_t{0});
  if (!renew || secs <= 0) return std::nullopt;
  v.renew_time = *renew;
  v.duration = std::chrono::seconds(secs);
  const json meta = lease.value("metadata", json::object());
  const json ann = meta.is_object() ? meta.value("annotations", json::object()) : json::object();
  const std::string raw = ann.is_object() ? ann.value(std::string(kViewAnnotation), "") : "";
  const json list = json::parse(raw, nullptr, false);
  if (!list.is_array()) return std::nullopt;
  for (const auto& e : list) {
    if (!e.is_object()) continue;
    DataplaneView d;
    d.node_name = e.value("node", "");
    d.advertise_address = e.value("address", "");
    d.acked_version = e.contains("ackedVersion") && e["ackedVersion"].is_number_unsigned()
                          ? e["ackedVersion"].get<uint64_t>()
                          : 0;
    if (auto u = e.find("unservedListeners"); u != e.end() && u->is_array()) {
      for (const auto& n : *u) {
        if (n.is_string()) d.unserved_listeners.push_back(n.get<std::string>());
      }
    }
    v.dataplanes.push_back(std::move(d));
  }
  return v;
}

std::vector<DataplaneView> MergeDataplaneViews(const std::vector<DataplaneView>& own, const std::vector<PeerView>& peers,
                                               std::chrono::system_clock::time_point now,
                                               std::chrono::seconds skew) {
  std::vector<DataplaneView> all = own;
  for (const auto& p : peers) {
    if (p.renew_time + p.duration < now - skew) continue;  // expired: that replica is gone
    all.insert(all.end(), p.dataplanes.begin(), p.dataplanes.end());
  }
  // One entry per node (a dataplane that reconnected to another replica may briefly appear in
  // two views): the first seen wins, so the own view first.
  std::vector<DataplaneView> out;
  std::map<std::string, size_t> by_node;
  for (auto& d : all) {
    if (d.node_name.empty()) {
      out.push_back(d);
      continue;
    }
    auto it = by_node.find(d.node_name);
    if (it == by_node.end()) {
      by_node[d.node_name] = out.size();
      out.push_back(d);
    } else if (out[it->second].acked_version == 0 && d.acked_version != 0) {
      out[it->second] = d;  // prefer the view where it has ACKed something
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const DataplaneView& a, const DataplaneView& b) { return a.node_name < b.node_name; });
  return out;
}

namespace {
std::string LastGoodKey(const ObjectKey& k) { return k.kind + "/" + k.ns + "/" + k.name; }

std::string UidOf(const nlohmann::json& o) {
  const auto m = o.find("metadata");
  if (m == o.end() || !m->is_object()) return "";
  const auto u = m->find("uid");
  return u != m->end() && u->is_string() ? u->get<std::string>() : "";
}

int64_t GenerationOf(const nlohmann::json& o) {
  const auto m = o.find("metadata");
  if (m == o.end() || !m->is_object()) return 0;
  const auto g = m->find("generation");
  return g != m->end() && g->is_number_integer() ? g->get<int64_t>() : 0;
}
}  // namespace

std::string LastGoodAnnotation(const std::map<ObjectKey, nlohmann::json>& objects, size_t budget,
                               std::vector<ObjectKey>* left_out) {
  std::vector<std::pair<ObjectKey, std::string>> slim;
  for (const auto& [key, object] : objects) {
    nlohmann::json o = object;
    o.erase("status");
    if (auto m = o.find("metadata"); m != o.end() && m->is_object()) {
      m->erase("managedFields");
      m->erase("resourceVersion");
      if (auto a = m->find("annotations"); a != m->end() && a->is_object()) {
        a->erase("kubectl.kubernetes.io/last-applied-configuration");
      }
    }
    slim.emplace_back(key, o.dump());
  }
  // Smallest first, so that as many objects as possible fit.
  std::stable_sort(slim.begin(), slim.end(), [](const auto& a, const auto& b) { return a.second.size() < b.second.size(); });
  nlohmann::json out = nlohmann::json::object();
  size_t used = 2;
  for (auto& [key, text] : slim) {
    const size_t cost = text.size() + LastGoodKey(key).size() + 4;
    if (used + cost > budget) {
      if (left_out) left_out->push_back(key);
      continue;
    }
    used += cost;
    out[LastGoodKey(key)] = nlohmann::json::parse(text);
  }
  return out.dump();
}

std::map<ObjectKey, nlohmann::json> ParseLastGood(const nlohmann::json& lease) {
  std::map<ObjectKey, nlohmann::json> out;
  if (!lease.is_object()) return out;
  const auto m = lease.find("metadata");
  if (m == lease.end() || !m->is_object()) return out;
  const auto a = m->find("annotations");
  if (a == m->end() || !a->is_object()) return out;
  const auto v = a->find(kLastGoodAnnotation);
  if (v == a->end() || !v->is_string()) return out;
  const auto entries = nlohmann::json::parse(v->get<std::string>(), nullptr, false);
  if (!entries.is_object()) return out;
  for (const auto& [k, object] : entries.items()) {
    const auto s1 = k.find('/');
    const auto s2 = s1 == std::string::npos ? std::string::npos : k.find('/', s1 + 1);
    if (s2 == std::string::npos || !object.is_object()) continue;
    out.emplace(ObjectKey{k.substr(0, s1), k.substr(s1 + 1, s2 - s1 - 1), k.substr(s2 + 1)}, object);
  }
  return out;
}

std::map<ObjectKey, nlohmann::json> LastGoodSeeds(const std::map<ObjectKey, nlohmann::json>& saved,
                                                  const std::map<ObjectKey, StoredObject>& store) {
  std::map<ObjectKey, nlohmann::json> out;
  for (const auto& [key, object] : saved) {
    const auto it = store.find(key);
    if (it == store.end()) continue;
    const std::string uid = UidOf(object);
    if (uid.empty() || uid != UidOf(it->second.object)) continue;
    if (GenerationOf(object) > GenerationOf(it->second.object)) continue;
    out.emplace(key, object);
  }
  return out;
}

}  // namespace doorman::controller::status
