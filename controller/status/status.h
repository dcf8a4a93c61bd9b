// What doorman writes back into the cluster, as pure functions of what the controller serves:
// LoadBalancer .status (conditions Accepted/Programmed, listeners, addresses, dataplanes),
// Service/Ingress .status.loadBalancer.ingress, Warning Events, and the merge patches that turn
// an object's current status into the desired one. No I/O, no clock (the caller passes `now`):
// the writer in controller/kube/status_writer.cc performs the requests.
//
// No write storms: every builder is deterministic and keeps lastTransitionTime of conditions
// whose status did not change, so `desired == current` exactly when nothing needs writing.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/model/object.h"
#include "controller/translate/translate.h"

namespace doorman::controller::status {

// A connected dataplane (it said Hello), as the status needs it.
struct DataplaneView {
  std::string node_name;
  std::string advertise_address;  // Hello.advertise_address ("" = not given)
  uint64_t acked_version = 0;     // the snapshot version it serves (0 = none yet)
  std::vector<std::string> unserved_listeners{};  // snapshot listeners of it that it could not open
};

// For each recently published snapshot version: the generation of each object it routes. A
// dataplane that ACKed version V has programmed generation G of object K iff Find(V)[K] == G.
// Versions are content hashes (not ordered in time), so insertion order is kept for eviction.
class ServedGenerations {
 public:
  // Adds (or refreshes) `version`'s entry; then drops the oldest entries beyond `keep`, except
  // versions a dataplane still serves (`in_use`).
  void Record(uint64_t version, std::map<ObjectKey, int64_t> entry, const std::vector<uint64_t>& in_use = {},
              size_t keep = 16);
  const std::map<ObjectKey, int64_t>* Find(uint64_t version) const;
  size_t size() const { return by_version_.size(); }

 private:
  std::map<uint64_t, std::map<ObjectKey, int64_t>> by_version_;
  std::vector<uint64_t> order_;  // oldest first
};

// The entry for one published snapshot: objects that route (accepted, or serving their last
// good version) → the generation routed.
std::map<ObjectKey, int64_t> ServedBy(const std::vector<ObjectStatus>& statuses);

struct ProgrammedCount {
  size_t ready = 0;       // connected dataplanes
  size_t acked = 0;       // of those, running the object's current generation
  size_t programmed = 0;  // of those, with every listener of it open (status dataplanes.programmed)
};
ProgrammedCount CountProgrammed(const ObjectStatus& st, const std::vector<DataplaneView>& dataplanes,
                                const ServedGenerations& served);

// The listeners of `st` that some dataplane could not open (port in use, or below 1024 without
// NET_BIND_SERVICE), naming the nodes, as one message; "" when every one is open.
std::string UnservedListeners(const ObjectStatus& st, const std::vector<DataplaneView>& dataplanes);

// The addresses that serve traffic: the connected dataplanes' advertise addresses, unique and
// sorted, as [{type: IPAddress|Hostname, value}] (LoadBalancer) or [{ip}|{hostname}] (Service,
// Ingress status.loadBalancer.ingress). `ip_mode_proxy`: an {ip} entry also says
// `ipMode: Proxy` (Services: the traffic reaches the IP, a proxy — not kube-proxy — forwards it).
nlohmann::json LoadBalancerAddresses(const std::vector<DataplaneView>& dataplanes);
nlohmann::json IngressPoints(const std::vector<DataplaneView>& dataplanes, bool ip_mode_proxy = false);
// `status` without ipMode in its loadBalancer.ingress entries (what an API server that does not
// know the field keeps of a status that had it).
nlohmann::json WithoutIpMode(const nlohmann::json& status);
// Whether an entry of `status`.loadBalancer.ingress has ipMode.
bool HasIpMode(const nlohmann::json& status);
bool IsIpAddress(const std::string& s);

// The whole desired .status of a LoadBalancer. `current` is its status as stored (null when
// none); `now` (RFC 3339) is used for lastTransitionTime of conditions whose status changed.
nlohmann::json LoadBalancerStatus(const ObjectStatus& st, const std::vector<DataplaneView>& dataplanes,
                                  const ServedGenerations& served, const nlohmann::json& current, const std::string& now);

// The desired .status of a Service or Ingress: `current` with loadBalancer.ingress set to the
// serving addresses (routed objects) or removed (objects doorman claims but cannot route).
nlohmann::json IngressStatus(const ObjectStatus& st, const std::vector<DataplaneView>& dataplanes,
                             const nlohmann::json& current, bool ip_mode_proxy = false);

// The desired .status for any kind doorman writes status for (LoadBalancer, Service, Ingress);
// nullopt for other kinds. A Service's IP points say `ipMode: Proxy` unless `service_ip_mode` is
// false (an API server that drops the field: Kubernetes before 1.30 by default).
std::optional<nlohmann::json> DesiredStatus(const ObjectStatus& st, const std::vector<DataplaneView>& dataplanes,
                                            const ServedGenerations& served, const nlohmann::json& current,
                                            const std::string& now, bool service_ip_mode = true);

// RFC 7386: the merge patch that turns `from` into `to` (explicit nulls for removed keys; arrays
// replaced whole). An empty object when they are equal.
nlohmann::json CreateMergePatch(const nlohmann::json& from, const nlohmann::json& to);

// The /status merge patch: the status difference, guarded by the resourceVersion it was computed
// against (a 409 then means "re-read and recompute").
nlohmann::json StatusPatch(const nlohmann::json& current_status, const nlohmann::json& desired_status,
                           const std::string& resource_version);

// A core/v1 Warning Event about an object that is not accepted. Its name is deterministic
// (<object>.<hash of uid, reason, message>), so the same problem maps to the same Event and a
// repeat increments its count instead of creating another. `object` is the involved object as
// stored (for uid/resourceVersion); `api_version` its apiVersion. An Event about a cluster-scoped
// object (IngressClass) goes to "default", as client-go's recorder does: the API server's Event
// validation allows no other namespace for an involved object without one (so with
// --watch-namespace the chart grants Events in "default" too).
nlohmann::json WarningEvent(const ObjectStatus& st, const nlohmann::json& object, const std::string& api_version,
                            const std::string& reporting_instance, const std::string& now);
// An accepted object's warnings (BackendNotFound, HealthCheckNotRun...) as the problem a
// WarningEvent reports: reason = the first warning's, message = every warning ("<field>:
// <message>", at most five, then "(and N more warnings)"). So what is declared but has no
// effect is visible in `kubectl describe`, not only in the controller's log.
ObjectStatus WarningsAsProblem(const ObjectStatus& st);
// The merge patch for a repeat of an existing Event (count + 1, lastTimestamp).
nlohmann::json EventRepeatPatch(const nlohmann::json& existing, const std::string& now);

// ---- Dataplane views across controller replicas ----
// Every replica serves some dataplanes; only the leader writes status. So each replica (with
// --leader-elect) publishes the dataplanes connected to it in its own Lease
// "<leader-elect-id>-view-<identity>" labelled doorman.dev/dataplane-view=true, annotation
// doorman.dev/dataplanes = DataplaneViewJson(...); the leader merges those with its own view.
inline constexpr const char* kViewLabel = "doorman.dev/dataplane-view";
inline constexpr const char* kViewAnnotation = "doorman.dev/dataplanes";

struct PeerView {
  std::string identity;
  std::chrono::system_clock::time_point renew_time;
  std::chrono::seconds duration{0};
  std::vector<DataplaneView> dataplanes;
};

// Kubernetes Time / MicroTime ("2024-05-01T12:00:00[.123456]Z") → time point; nullopt if malformed.
std::optional<std::chrono::system_clock::time_point> ParseKubeTime(const std::string& s);
// The view Lease name: DNS-1123, at most 63 characters; a hash of the identity is appended when
// sanitizing changed it or it had to be shortened.
std::string ViewLeaseName(const std::string& lease_name, const std::string& identity);
// Compact, sorted [{node, address, ackedVersion}].
nlohmann::json DataplaneViewJson(const std::vector<DataplaneView>& dataplanes);
// A view Lease as read (nullopt when it has no valid renewTime/duration/annotation).
std::optional<PeerView> ParsePeerView(const nlohmann::json& lease);
// `own` plus every peer view not expired at `now` (renewTime + duration < now - skew), one entry
// per node name (own first; an entry with an ACKed version beats one without), sorted by node.
std::vector<DataplaneView> MergeDataplaneViews(const std::vector<DataplaneView>& own, const std::vector<PeerView>& peers,
                                               std::chrono::system_clock::time_point now,
                                               std::chrono::seconds skew = std::chrono::seconds(2));

// ---- Last good versions across replicas and restarts ----
// The last accepted version of an object is kept in memory (translate.h). With --leader-elect
// the leader also keeps the ones it currently serves in place of an invalid current version in
// the Lease "<leader-elect-id>-last-good", annotation doorman.dev/last-good, so that a replica
// that starts while an object is invalid (a restart, a rolling update, a new leader) routes what
// the others route instead of dropping the object.
inline constexpr const char* kLastGoodAnnotation = "doorman.dev/last-good";
// An annotation value is at most 256 KiB with all others; beyond this budget objects are left out.
inline constexpr size_t kLastGoodBudgetBytes = 192 * 1024;

// The annotation value: {"<kind>/<ns>/<name>": object} with each object reduced to what the
// translator reads (no status, managedFields nor last-applied-configuration). Objects that do not
// fit `budget` bytes are left out (largest first) and returned in `left_out`.
std::string LastGoodAnnotation(const std::map<ObjectKey, nlohmann::json>& objects, size_t budget,
                               std::vector<ObjectKey>* left_out);
// The entries of a last-good Lease as read; malformed ones are skipped.
std::map<ObjectKey, nlohmann::json> ParseLastGood(const nlohmann::json& lease);
// Which of `saved` to adopt for `store`: an entry whose object is in the store with the same
// metadata.uid (not one deleted and created again since), and a generation not newer than the
// store's.
std::map<ObjectKey, nlohmann::json> LastGoodSeeds(const std::map<ObjectKey, nlohmann::json>& saved,
                                                  const std::map<ObjectKey, StoredObject>& store);

}  // namespace doorman::controller::status
