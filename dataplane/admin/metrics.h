// Dataplane metrics (names binding: API.md §3). Families live in the process registry; the data
// path never takes a family lock per byte or per request: each worker keeps a WorkerMetrics cache
// of the series it touches (label lookups stay on the worker thread), TCP byte counts are added
// per connection in batches, not per read.
//
// Labels: listener = Listener.name ("http-8080"); route = Route.name; backend = the endpoint
// "address:port"; direction = "rx" (bytes received from clients) | "tx" (bytes sent to clients).
//
// Series of endpoints that left the routing state are removed (pods come and go: their
// addresses must not pile up as series forever). Workers cache raw series pointers, so removal
// is epoch-based: a snapshot that drops endpoints retires their keys and bumps the epoch; each
// worker, at its next tick, drops its caches (sessions see the worker epoch change and drop
// theirs) and acknowledges; from then on a worker never re-creates a retired key's series (a
// request still in flight to it is counted in an unexported sink). Once every worker has
// acknowledged, the series are removed from their families. A key that comes back (a reused pod
// IP) is un-retired and starts new series (Prometheus sees a counter reset).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dataplane/health/health_state.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace doorman::dataplane {

struct RuntimeConfig;

// L7 events counted by doorman_l7_<event>_total{listener,route,backend} (see docs/l7.md).
enum class L7Event { kConnectFailure, kRetry, kRateLimited, kEjection };

class Metrics {
 public:
  explicit Metrics(std::shared_ptr<prometheus::Registry> registry);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  void ConfigApplied(const RuntimeConfig& config);  // version gauge, applied counter, backend_up
  void ConfigRejected();
  // A health-check transition (any thread): doorman_backend_up{backend} = ready && healthy.
  void SetBackendHealth(const std::string& backend, bool healthy);
  // One active health probe's outcome (the checker's thread): doorman_health_probes_total{result}.
  void HealthProbed(health::ProbeResult result);
  // Series with a backend label, for tests and the debug endpoint.
  std::size_t backend_series() const;
  // doorman_worker_connections{worker}: open client connections a worker serves (set by the
  // worker's tick; shows how connections are spread, see --connection-balance).
  prometheus::Gauge& WorkerConnections(int worker);

 private:
  friend class WorkerMetrics;
  using CounterFamily = prometheus::Family<prometheus::Counter>;
  std::atomic<uint64_t>* RegisterWorker();
  bool IsLive(std::string_view backend) const;  // under retire_mu_
  // Records a series created for `backend` (removed when the key is retired and released).
  void Track(const std::string& backend, CounterFamily* family, prometheus::Counter* series);
  void RemoveReleased();  // removes retired series every worker has let go of

  mutable std::mutex retire_mu_;
  std::atomic<uint64_t> retire_epoch_{0};
  std::set<std::string, std::less<>> live_backends_;      // endpoint keys of the applied config
  std::map<std::string, uint64_t, std::less<>> retired_;  // key -> epoch at which it left
  std::map<std::string, std::set<std::pair<CounterFamily*, prometheus::Counter*>>, std::less<>> series_;
  std::vector<std::unique_ptr<std::atomic<uint64_t>>> worker_acks_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge* config_version_;
  prometheus::Counter* updates_applied_;
  prometheus::Counter* updates_rejected_;
  prometheus::Counter* health_probes_[3];  // by health::ProbeResult
  prometheus::Family<prometheus::Gauge>* l4_active_;
  prometheus::Family<prometheus::Counter>* l4_connections_;
  prometheus::Family<prometheus::Counter>* l4_ejections_;
  prometheus::Family<prometheus::Counter>* l4_bytes_;
  prometheus::Family<prometheus::Counter>* l7_requests_;
  prometheus::Family<prometheus::Histogram>* l7_duration_;
  prometheus::Family<prometheus::Counter>* l7_events_[4];
  prometheus::Family<prometheus::Gauge>* backend_up_;
  prometheus::Family<prometheus::Gauge>* worker_connections_;
  prometheus::Family<prometheus::Counter>* l4_drops_;
  prometheus::Family<prometheus::Gauge>* tls_expiry_;
  std::mutex tls_expiry_mu_;
  std::map<std::pair<std::string, std::string>, prometheus::Gauge*> tls_expiry_series_;  // (listener, certificate)
  std::mutex backend_up_mu_;  // the health checker's thread and Apply both touch the map below
  std::map<std::string, prometheus::Gauge*> backend_up_series_;
  std::map<std::string, bool> backend_ready_;
};

// One per worker thread; not thread-safe. Returned references stay valid until the worker's
// epoch() changes (series of retired endpoints are removed after every worker let go of them):
// callers that keep a series pointer across operations compare the epoch first.
class WorkerMetrics {
 public:
  explicit WorkerMetrics(Metrics& m);
  ~WorkerMetrics();
  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;
  // The worker calls this between operations (its periodic tick): drops the caches when
  // endpoints were retired, acknowledges, and lets Metrics remove what no worker can reach.
  void Tick();
  uint64_t epoch() const { return epoch_; }

  prometheus::Gauge& L4Active(const std::string& listener);
  prometheus::Counter& L4Connections(const std::string& listener, const std::string& backend);
  prometheus::Counter& L4Bytes(const std::string& listener, bool rx);
  // doorman_l4_outlier_ejections_total{listener,backend}
  prometheus::Counter& L4Ejections(const std::string& listener, const std::string& backend);
  // doorman_l4_drops_total{listener,reason}: connections/datagrams refused or closed early.
  // reason: source_range | no_backend | connect_failed | proxy_protocol | tls_clienthello |
  //         udp_table_full | drain_timeout | no_route (TLS: no route for the SNI)
  prometheus::Counter& L4Drops(const std::string& listener, std::string_view reason);
  prometheus::Counter& L7Requests(std::string_view listener, std::string_view route, std::string_view backend,
                                  unsigned code);
  prometheus::Histogram& L7Duration(std::string_view listener, std::string_view route);
  prometheus::Counter& L7Count(L7Event event, std::string_view listener, std::string_view route,
                               std::string_view backend);

 private:
  prometheus::Counter& BackendCounter(Metrics::CounterFamily* family, const std::string& backend,
                                      const std::map<std::string, std::string>& labels);

  Metrics& m_;
  std::atomic<uint64_t>* ack_;  // the retire epoch this worker has acknowledged
  uint64_t epoch_ = 0;          // bumped whenever cached series may have been removed
  std::unique_ptr<prometheus::Counter> sink_;  // counts for retired endpoints (not exported)
  std::unordered_map<std::string, prometheus::Gauge*> l4_active_;
  std::unordered_map<std::string, prometheus::Counter*> l4_connections_;
  std::unordered_map<std::string, prometheus::Counter*> l4_ejections_;
  std::unordered_map<std::string, prometheus::Counter*> l4_bytes_;
  std::unordered_map<std::string, prometheus::Counter*> l4_drops_;
  std::unordered_map<std::string, prometheus::Counter*> l7_requests_;
  std::unordered_map<std::string, prometheus::Histogram*> l7_duration_;
  std::unordered_map<std::string, prometheus::Counter*> l7_events_;
  std::string key_;  // reused lookup key
};

}  // namespace doorman::dataplane
