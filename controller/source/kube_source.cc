#include "controller/source/kube_source.h"

namespace doorman::controller {

using nlohmann::json;

KubeSource::KubeSource(kube::KubeHttp* http, kube::ReflectorOptions options, Callback on_events, Counter count,
                       const std::string& watch_namespace, const std::string& loadbalancer_selector)
    : http_(http), on_events_(std::move(on_events)), count_(std::move(count)) {
  for (kube::Resource r : kube::WatchedResources()) {
    if (r.namespaced) r.scope_namespace = watch_namespace;
    if (r.kind == kKindLoadBalancer) r.label_selector = loadbalancer_selector;
    kube::ReflectorOptions o = options;
    o.may_be_deleted = r.crd;  // only a CRD's resource can really be gone (reflector.h)
    informers_.push_back(std::make_unique<kube::Informer>(
        r, http_, o, [this](const kube::Resource& res, std::vector<kube::ObjectEvent> ev) {
          OnEvents(res, std::move(ev));
        }));
  }
}

KubeSource::~KubeSource() { Stop(); }

void KubeSource::Start() {
  for (auto& i : informers_) i->Start();
}

void KubeSource::RequestStop() {
  for (auto& i : informers_) i->RequestStop();
}

void KubeSource::Stop() {
  for (auto& i : informers_) i->RequestStop();
  http_->Cancel();
  for (auto& i : informers_) i->Stop();
}

bool KubeSource::synced() const {
  for (const auto& i : informers_) {
    if (!i->synced()) return false;
  }
  return true;
}

std::vector<std::string> KubeSource::pending() const {
  std::vector<std::string> out;
  for (const auto& i : informers_) {
    if (!i->synced()) out.push_back(i->resource().plural);
  }
  return out;
}

std::optional<json> KubeSource::Get(const ObjectKey& key) const {
  for (const auto& i : informers_) {
    if (i->resource().kind == key.kind) return i->Get(key.ns.empty() ? key.name : key.ns + "/" + key.name);
  }
  return std::nullopt;
}

json KubeSource::Normalize(const kube::Resource& resource, json object) {
  if (!object.is_object()) return object;
  object["apiVersion"] = resource.api_version();
  object["kind"] = resource.kind;
  if (auto m = object.find("metadata"); m != object.end() && m->is_object()) {
    m->erase("managedFields");
    m->erase("resourceVersion");
  }
  if (resource.kind == kKindLoadBalancer || resource.kind == kKindService || resource.kind == kKindIngress) {
    object.erase("status");
  }
  return object;
}

void KubeSource::OnEvents(const kube::Resource& resource, std::vector<kube::ObjectEvent> events) {
  std::vector<KubeEvent> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& e : events) {
      count_(resource.plural, e.type);
      ObjectKey key{resource.kind, "", ""};
      const json& meta = e.object.contains("metadata") ? e.object["metadata"] : json::object();
      key.name = meta.value("name", "");
      if (resource.namespaced) key.ns = meta.value("namespace", std::string(kDefaultNamespace));
      if (e.type == "DELETED") {
        if (normalized_.erase(key)) out.push_back({"DELETED", key, nullptr});
        continue;
      }
      json n = Normalize(resource, std::move(e.object));
      auto it = normalized_.find(key);
      if (it != normalized_.end() && it->second == n) continue;  // only status / metadata noise changed
      out.push_back({it == normalized_.end() ? "ADDED" : "MODIFIED", key, n});
      normalized_[key] = std::move(n);
    }
  }
  if (!out.empty()) on_events_(std::move(out));
}

}  // namespace doorman::controller
