// The Kubernetes API source: one informer per watched resource (API.md §1: Services,
// EndpointSlices, Ingresses, IngressClasses, kubernetes.io/tls Secrets, LoadBalancers), producing
// the same ADDED / MODIFIED / DELETED events for the same ObjectStore as the manifest source.
//
// Objects are normalized before they reach the store (apiVersion/kind set — list items lack
// them —, metadata.managedFields and resourceVersion dropped, and .status dropped for the kinds
// doorman writes status to), so that a status write or a no-op update does not trigger a
// re-translation. The raw objects stay available through Get() for the status writer.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/kube/http.h"
#include "controller/kube/informer.h"
#include "controller/model/object.h"

namespace doorman::controller {

struct KubeEvent {
  std::string type;  // ADDED | MODIFIED | DELETED
  ObjectKey key;
  nlohmann::json object;  // normalized (null for DELETED)
};

class KubeSource {
 public:
  // Called from informer threads (one at a time per resource), in order per resource.
  using Callback = std::function<void(std::vector<KubeEvent>)>;
  // Counts every change the API reported: (resource plural, ADDED|MODIFIED|DELETED).
  using Counter = std::function<void(const std::string& resource, const std::string& type)>;

  // `watch_namespace`: namespaced kinds are listed and watched in it only ("" = every namespace).
  // `loadbalancer_selector`: LoadBalancers are listed and watched with this label selector ("" =
  // all of them).
  KubeSource(kube::KubeHttp* http, kube::ReflectorOptions options, Callback on_events, Counter count,
             const std::string& watch_namespace = "", const std::string& loadbalancer_selector = "");
  ~KubeSource();
  KubeSource(const KubeSource&) = delete;
  KubeSource& operator=(const KubeSource&) = delete;

  void Start();
  // Tells the informers to stop (no new list or watch starts; one in flight ends when the client
  // cancels it), without cancelling anything: the first step of shutdown.
  void RequestStop();
  // Cancels the client's requests (KubeHttp::Cancel) and joins the informers.
  void Stop();

  // Every resource's initial list is in.
  bool synced() const;
  // Resources not synced yet (for logs).
  std::vector<std::string> pending() const;
  // The object as last seen from the API (with status and resourceVersion).
  std::optional<nlohmann::json> Get(const ObjectKey& key) const;

  // The store form of an API object (see the header comment).
  static nlohmann::json Normalize(const kube::Resource& resource, nlohmann::json object);

 private:
  void OnEvents(const kube::Resource& resource, std::vector<kube::ObjectEvent> events);

  kube::KubeHttp* http_;
  Callback on_events_;
  Counter count_;
  std::vector<std::unique_ptr<kube::Informer>> informers_;
  std::mutex mu_;
  std::map<ObjectKey, nlohmann::json> normalized_;  // guarded by mu_
};

}  // namespace doorman::controller
