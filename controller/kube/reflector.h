// The reflector: the decision logic of one list+watch informer, as a pure state machine on an
// injected clock and random source (the I/O loop in informer.cc performs what it asks for and
// feeds the results back). It keeps the informer's cache (key → last seen object) and turns
// what the API says into ADDED / MODIFIED / DELETED events:
//
//   list (paginated: limit + continue) ──final page──▶ watch from the list's resourceVersion
//     ▲   (diff against the cache: objects gone      │  events update the cache and the RV;
//     │    since the last list → DELETED)            │  BOOKMARK only advances the RV
//     └── 410 Gone (HTTP, or an ERROR event) ◀───────┤
//                                                    └─ stream ended → watch again from the last
//                                                       RV (at once when it was healthy, else
//                                                       after a backoff)
//
// Failures back off exponentially with jitter (base·2ⁿ, capped, scaled by [0.5, 1)); a 429 or
// 503 with Retry-After waits what the server asked. A 404 on list (e.g. the LoadBalancer CRD is
// not installed) counts as an empty, synced list and is retried with backoff. Once a list has
// succeeded, a 404 (on a watch: relist) keeps the cache; for a CRD-served resource, a run of
// NotFound lists lasting not_served_grace means the CRD is gone and the resource empty.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/model/diagnostic.h"

namespace doorman::controller::kube {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

struct ReflectorOptions {
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30000};
  // Each watch asks the server to end it after a random time in [min, max] seconds, so that many
  // controllers do not reconnect in lockstep.
  int watch_timeout_min_s = 240;
  int watch_timeout_max_s = 360;
  int page_limit = 500;
  // A watch that ends cleanly sooner than this without delivering anything counts as a failure
  // (so a server that closes watches at once is not hammered).
  std::chrono::milliseconds min_healthy_watch{1000};
  // After a successful list, a 404 is a failure that keeps the cache (an API server restarting
  // answers 404 until its CRD handlers are up: that must not delete every object). Only for a
  // resource served by a CRD (`may_be_deleted`), an unbroken run of Kubernetes NotFound answers
  // to lists lasting not_served_grace and at least kGoneMinNotFound lists long means the CRD
  // was deleted: the objects are removed, as a controller started now would list nothing. A
  // built-in resource is never "gone": a lasting 404 there is a broken proxy in front.
  std::chrono::milliseconds not_served_grace{60000};
  bool may_be_deleted = false;
};

// What the API answered when a request failed. code 0 = transport error (connect, TLS, reset,
// timeout).
struct ApiError {
  int code = 0;
  std::optional<std::chrono::seconds> retry_after;
  std::string message;
  std::string reason = {};  // a Kubernetes Status body's reason ("NotFound"); "" when the body was not one
};

// One change of one object, in the cache's terms.
struct ObjectEvent {
  std::string type;       // ADDED | MODIFIED | DELETED
  std::string key;        // "namespace/name" or "name"
  nlohmann::json object;  // the new object (DELETED: its last state)
};

struct ReflectorAction {
  enum class Kind { kList, kWatch, kWait };
  Kind kind = Kind::kWait;
  // kList
  std::string continue_token;
  int limit = 0;
  // kWatch
  std::string resource_version;
  int timeout_seconds = 0;
  // kWait
  TimePoint until{};
};

// "namespace/name" (or "name") of an object.
std::string ObjectCacheKey(const nlohmann::json& object);

class Reflector {
 public:
  // `rand01` returns uniform values in [0, 1).
  Reflector(std::string resource, ReflectorOptions options, std::function<double()> rand01);

  // What to do next at `now`.
  ReflectorAction Next(TimePoint now);

  // A list page arrived (a v1 List: metadata.resourceVersion, metadata.continue, items). Returns
  // the events of the whole list once its last page is in (nothing for earlier pages).
  std::vector<ObjectEvent> OnListPage(const nlohmann::json& list, TimePoint now);
  std::vector<ObjectEvent> OnListFailed(const ApiError& error, TimePoint now);

  // The watch request was answered 200 (its events follow).
  void OnWatchStarted(TimePoint now);
  // One decoded line of the watch stream ({type, object}). Sets *stop when the stream must not be
  // read further (an ERROR event).
  std::vector<ObjectEvent> OnWatchEvent(const nlohmann::json& event, TimePoint now, bool* stop);
  // The watch request failed before streaming (non-200 status or transport error).
  void OnWatchFailed(const ApiError& error, TimePoint now);
  // The stream ended: `clean` = the server's final chunk (timeout, drop); else reset/timeout.
  void OnWatchEnded(bool clean, TimePoint now);

  bool synced() const { return synced_; }
  const std::string& resource_version() const { return rv_; }
  const std::map<std::string, nlohmann::json>& items() const { return items_; }
  int consecutive_failures() const { return failures_; }
  // Log lines produced since the last call.
  std::vector<Diagnostic> TakeDiagnostics() { return std::move(diagnostics_); }

 private:
  enum class Phase { kList, kWatch, kWatching };
  void Fail(const ApiError& error, TimePoint now, const char* what);
  void Relist(const std::string& why);
  void WatchNotFound(const ApiError& error, TimePoint now);
  std::vector<ObjectEvent> ListedEmpty(TimePoint now);
  std::chrono::milliseconds Backoff();
  std::vector<ObjectEvent> ReplaceAll(std::map<std::string, nlohmann::json> fresh);
  void Log(log::Level level, std::string message, std::vector<std::pair<std::string, std::string>> fields = {});

  std::string resource_;
  ReflectorOptions options_;
  std::function<double()> rand01_;
  Phase phase_ = Phase::kList;
  std::optional<TimePoint> wait_until_;
  std::string continue_;
  std::vector<nlohmann::json> pending_;  // pages of the list in progress
  std::string rv_;
  bool synced_ = false;
  int failures_ = 0;
  TimePoint watch_started_{};
  bool watch_delivered_ = false;
  bool not_found_logged_ = false;
  bool listed_once_ = false;  // a list has succeeded at least once (404 then means failure, not "empty")
  std::optional<TimePoint> not_found_since_;  // the first of the current run of 404s after listed_once_
  int not_found_lists_ = 0;                   // lists in that run
  int watch_not_found_ = 0;  // watches answered 404 since one last worked: their backoff, which a
                             // successful relist in between does not reset
  std::map<std::string, nlohmann::json> items_;
  std::vector<Diagnostic> diagnostics_;
};

}  // namespace doorman::controller::kube
