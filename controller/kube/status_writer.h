// Writes what controller/status builds: .status of LoadBalancers (merge patch on /status — CRDs
// do not take strategic merge patch), Services and Ingresses, and Warning Events for objects
// that are not accepted. Leader only (the caller decides). Level-triggered: each Sync() compares
// the desired status with the object as the informers last saw it and writes only differences,
// guarded by resourceVersion; a 409 re-reads the object and recomputes (at most 3 tries).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/kube/http.h"
#include "controller/kube/write_backoff.h"
#include "controller/model/object.h"
#include "controller/status/status.h"
#include "controller/translate/translate.h"

namespace doorman::controller::kube {

struct Resource;

// What the controller serves right now, gathered by main.
struct StatusInputs {
  std::vector<ObjectStatus> statuses;
  std::vector<status::DataplaneView> dataplanes;
  const status::ServedGenerations* served = nullptr;
  // Asked before every object's writes: a pass stops at once when leadership is lost (or the
  // process is stopping), so a slow pass never writes past the renew deadline. Null = always.
  std::function<bool()> may_write;
};

struct StatusWriterStats {
  size_t status_writes = 0;
  size_t event_writes = 0;
  size_t failures = 0;
  size_t deferred = 0;  // writes skipped because that object's backoff had not expired
};

struct StatusWriterOptions {
  // Per object and per kind of write (status, Event): a write that fails is retried after
  // 0.5 s, doubling to 5 min, with jitter; reset on success or when the desired status changes.
  WriteBackoffOptions backoff;
  std::function<std::chrono::steady_clock::time_point()> now = [] { return std::chrono::steady_clock::now(); };
  std::function<double()> rand01;  // null = a private generator
  // Wall clock for lastTransitionTime and Event timestamps.
  std::function<std::chrono::system_clock::time_point()> wall_now = [] { return std::chrono::system_clock::now(); };
};

class StatusWriter {
 public:
  // `get` returns the object as the informers last saw it (with status and resourceVersion).
  using Getter = std::function<std::optional<nlohmann::json>(const ObjectKey&)>;

  StatusWriter(KubeHttp* http, Getter get, std::string reporting_instance, StatusWriterOptions options = {});

  // One reconcile pass: objects whose writes are failing come last (their backoff permitting), so
  // a hanging one cannot delay the others. Returns false when the API asked to slow down (429): the caller should
  // wait until retry_until().
  bool Sync(const StatusInputs& in);
  std::chrono::steady_clock::time_point retry_until() const { return retry_until_; }
  // Forgets what was written (leadership changed), so that every status is checked again; the
  // Events this replica sent are remembered (not repeated when it regains the Lease).
  void Reset();
  const StatusWriterStats& stats() const { return stats_; }

 private:
  // Return false on 429, or when `in.may_write` says no after a read (a 409's re-read, an
  // existing Event's): the pass stops there.
  bool WriteStatus(const ObjectStatus& st, const StatusInputs& in, nlohmann::json object);
  bool EmitEvent(const ObjectStatus& st, const nlohmann::json& object, const StatusInputs& in);
  // A Service or Ingress this controller no longer serves (its type, class or annotation
  // changed): removes the status.loadBalancer.ingress points it wrote, when they are still only
  // this controller's addresses; a LoadBalancer (its labels changed): removes its status when
  // it is exactly what this process wrote (ReleaseLoadBalancer). Returns false on 429.
  bool Release(const ObjectKey& key, const StatusInputs& in);
  bool ReleaseLoadBalancer(const ObjectKey& key, const Resource& res, const nlohmann::json& object);
  // The release's status PATCH (backed off per object); logs `done` once it is applied.
  bool SendRelease(const ObjectKey& key, const Resource& res, const nlohmann::json& patch, const char* done);
  void Throttled(const HttpResponse& r);
  void Failed(const std::string& key, const std::string& desired, const ObjectKey& object, const char* what,
              const HttpResponse& r);
  void Succeeded(const std::string& key, const ObjectKey& object, const char* what);

  KubeHttp* http_;
  Getter get_;
  std::string instance_;
  std::chrono::steady_clock::time_point retry_until_{};
  // Last write per object: the resourceVersion it was computed against and the status written,
  // so a pass that runs before the informer saw our own write does not write again.
  struct Written {
    std::string from_rv;
    nlohmann::json status;
  };
  std::map<ObjectKey, Written> written_;
  // Services' IP points carry ipMode: Proxy until the API server is seen to drop the field.
  bool ip_mode_ = true;
  // Events sent per object: "reason\nmessage".
  std::map<ObjectKey, std::string> evented_;
  // Services and Ingresses with a listener a dataplane could not open, as last reported by every
  // dataplane running the object's generation: the ListenerNotServed warning.
  std::map<ObjectKey, std::string> unserved_;
  // An Event write (create or count bump) whose answer was lost (transport error, timeout, 5xx):
  // it may have been applied. The next try reads the Event first and, if it carries exactly what
  // was sent, takes it as done instead of creating again or bumping the count a second time.
  struct PendingEvent {
    std::string name;
    int64_t count = 0;
    std::string last_timestamp;
  };
  std::map<ObjectKey, PendingEvent> pending_event_;
  // Services, Ingresses and LoadBalancers whose status this controller maintains (it had a
  // status for them in an earlier pass); one that drops out is released.
  std::set<ObjectKey> claimed_;
  StatusWriterOptions options_;
  WriteBackoff backoff_;  // keys: "status <object>", "event <object>"
  StatusWriterStats stats_;
};

}  // namespace doorman::controller::kube
