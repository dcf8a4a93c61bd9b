#include "controller/status/status.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cstdio>
#include <set>

#include "common/hash.h"

namespace doorman::controller::status {
namespace {

using nlohmann::json;

constexpr size_t kMaxEventMessage = 1024;

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
          {"message", message}};
}

bool Routed(const ObjectStatus& st) { return st.accepted || st.serving_last_good; }

}  // namespace

bool IsIpAddress(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

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

ProgrammedCount CountProgrammed(const ObjectStatus& st, const std::vector<DataplaneView>& dataplanes,
                                const ServedGenerations& served) {
  ProgrammedCount c;
  c.ready = dataplanes.size();
  if (!st.accepted) return c;  // the current generation is not routed anywhere
  for (const auto& d : dataplanes) {
    const auto* entry = served.Find(d.acked_version);
    if (!entry) continue;
    auto g = entry->find(st.key);
    if (g != entry->end() && g->second == st.generation) ++c.programmed;
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

json IngressPoints(const std::vector<DataplaneView>& dataplanes) {
  json out = json::array();
  for (const auto& a : AddressSet(dataplanes)) {
    out.push_back({{IsIpAddress(a) ? "ip" : "hostname", a}});
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
    std::string message = st.message;
    if (st.serving_last_good) {
      message += " (still routing generation " + std::to_string(st.serving_generation) + ", the last accepted one)";
    }
    conditions.push_back(Condition("Accepted", false, st.reason.empty() ? "InvalidSpec" : st.reason, message, gen,
                                   current, now));
  }
  const ProgrammedCount pc = CountProgrammed(st, dataplanes, served);
  const std::string counts = std::to_string(pc.programmed) + " of " + std::to_string(pc.ready) +
                             " dataplanes programmed generation " + std::to_string(gen);
  if (!st.accepted) {
    conditions.push_back(Condition("Programmed", false, "Invalid",
                                   "generation " + std::to_string(gen) + " is not accepted, so it is not programmed",
                                   gen, current, now));
  } else if (pc.ready == 0) {
    conditions.push_back(Condition("Programmed", false, "Pending", "no dataplane is connected", gen, current, now));
  } else if (pc.programmed < pc.ready) {
    conditions.push_back(Condition("Programmed", false, "Pending", counts, gen, current, now));
  } else {
    conditions.push_back(Condition("Programmed", true, "Programmed", counts, gen, current, now));
  }
  json listeners = json::array();
  for (const auto& l : st.listeners) listeners.push_back({{"name", l.name}, {"attachedRoutes", l.attached_routes}});
  return {{"observedGeneration", gen},
          {"conditions", conditions},
          {"addresses", LoadBalancerAddresses(dataplanes)},
          {"listeners", listeners},
          {"dataplanes", {{"ready", pc.ready}, {"programmed", pc.programmed}}}};
}

json IngressStatus(const ObjectStatus& st, const std::vector<DataplaneView>& dataplanes, const json& current) {
  json out = current.is_object() ? current : json::object();
  json points = Routed(st) ? IngressPoints(dataplanes) : json::array();
  json lb = out.contains("loadBalancer") && out["loadBalancer"].is_object() ? out["loadBalancer"] : json::object();
  if (points.empty()) {
    lb.erase("ingress");
  } else {
    lb["ingress"] = points;
  }
  out["loadBalancer"] = lb;
  return out;
}

std::optional<json> DesiredStatus(const ObjectStatus& st, const std::vector<DataplaneView>& dataplanes,
                                  const ServedGenerations& served, const json& current, const std::string& now) {
  if (st.key.kind == kKindLoadBalancer) return LoadBalancerStatus(st, dataplanes, served, current, now);
  if (st.key.kind == kKindService || st.key.kind == kKindIngress) return IngressStatus(st, dataplanes, current);
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

json WarningEvent(const ObjectStatus& st, const json& object, const std::string& api_version,
                  const std::string& reporting_instance, const std::string& now) {
  const json meta = object.is_object() && object.contains("metadata") ? object["metadata"] : json::object();
  const std::string uid = meta.value("uid", "");
  const std::string reason = st.reason.empty() ? "InvalidSpec" : st.reason;
  std::string message = st.message;
  if (message.size() > kMaxEventMessage) message = message.substr(0, kMaxEventMessage - 3) + "...";
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx",
                static_cast<unsigned long long>(Fnv1a64(uid + "\n" + reason + "\n" + message)));
  const std::string ns = st.key.ns.empty() ? std::string(kDefaultNamespace) : st.key.ns;
  json involved = {{"apiVersion", api_version}, {"kind", st.key.kind}, {"name", st.key.name}};
  if (!st.key.ns.empty()) involved["namespace"] = st.key.ns;
  if (!uid.empty()) involved["uid"] = uid;
  if (meta.contains("resourceVersion")) involved["resourceVersion"] = meta["resourceVersion"];
  return {{"apiVersion", "v1"},
          {"kind", "Event"},
          {"metadata", {{"name", st.key.name + "." + hash}, {"namespace", ns}}},
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

}  // namespace doorman::controller::status
