#include "dataplane/admin/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <set>

#include "dataplane/config/runtime_config.h"

namespace doorman::dataplane {

namespace {
const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const prometheus::Histogram::BucketBoundaries b = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                            0.1,    0.25,  0.5,    1,     2.5,  5,     10, 30};
  return b;
}
}  // namespace

Metrics::Metrics(std::shared_ptr<prometheus::Registry> registry) : registry_(std::move(registry)) {
  auto& r = *registry_;
  config_version_ = &prometheus::BuildGauge()
                         .Name("doorman_config_version")
                         .Help("Version of the routing state this dataplane serves (0 = none yet)")
                         .Register(r)
                         .Add({});
  auto& updates = prometheus::BuildCounter()
                      .Name("doorman_config_updates_total")
                      .Help("Routing-state updates received, by result (applied | rejected)")
                      .Register(r);
  updates_applied_ = &updates.Add({{"result", "applied"}});
  updates_rejected_ = &updates.Add({{"result", "rejected"}});
  auto& probes = prometheus::BuildCounter()
                     .Name("doorman_health_probes_total")
                     .Help("Active health probes by result (passed | failed | skipped: could not run for want of local "
                           "descriptors, buffers or memory; no verdict)")
                     .Register(r);
  for (const auto result : {health::ProbeResult::kPassed, health::ProbeResult::kFailed, health::ProbeResult::kSkipped}) {
    health_probes_[static_cast<int>(result)] = &probes.Add({{"result", std::string(health::ProbeResultName(result))}});
  }
  l4_active_ = &prometheus::BuildGauge()
                    .Name("doorman_l4_connections_active")
                    .Help("Open client connections on L4 listeners (TCP, TLS) and open UDP flows")
                    .Register(r);
  l4_connections_ = &prometheus::BuildCounter()
                         .Name("doorman_l4_connections_total")
                         .Help("L4 connections forwarded, by listener and backend endpoint")
                         .Register(r);
  l4_ejections_ = &prometheus::BuildCounter()
                        .Name("doorman_l4_outlier_ejections_total")
                        .Help("Endpoints ejected by L4 passive outlier detection (consecutive connect failures)")
                        .Register(r);
  l4_bytes_ = &prometheus::BuildCounter()
                   .Name("doorman_l4_bytes_total")
                   .Help("L4 bytes by direction: rx = received from clients, tx = sent to clients")
                   .Register(r);
  l7_requests_ = &prometheus::BuildCounter()
                      .Name("doorman_l7_requests_total")
                      .Help("HTTP requests by listener, route, backend endpoint and status code")
                      .Register(r);
  l7_duration_ = &prometheus::BuildHistogram()
                      .Name("doorman_l7_request_duration_seconds")
                      .Help("HTTP request duration, from the request header to the end of the response")
                      .Register(r);
  {
    static constexpr const char* kEvents[4][2] = {
        {"doorman_l7_upstream_connect_failures_total", "Failed connection attempts to backend endpoints"},
        {"doorman_l7_retries_total", "Requests re-sent to a backend by the route's retry policy"},
        {"doorman_l7_rate_limited_total", "Requests refused with 429 by the route's rate limit"},
        {"doorman_l7_outlier_ejections_total", "Endpoints ejected by passive outlier detection"},
    };
    for (int i = 0; i < 4; ++i) {
      l7_events_[i] = &prometheus::BuildCounter().Name(kEvents[i][0]).Help(kEvents[i][1]).Register(r);
    }
  }
  l4_drops_ = &prometheus::BuildCounter()
                   .Name("doorman_l4_drops_total")
                   .Help("Connections or datagrams refused or closed early by a listener, by reason")
                   .Register(r);
  backend_up_ = &prometheus::BuildGauge()
                     .Name("doorman_backend_up")
                     .Help("1 when the backend endpoint is ready and usable by a backend set that routes it (one without an active check, or one whose check it passes)")
                     .Register(r);
  worker_connections_ = &prometheus::BuildGauge()
                             .Name("doorman_worker_connections")
                             .Help("Open client connections (L4 and L7) each worker thread serves")
                             .Register(r);
  tls_expiry_ = &prometheus::BuildGauge()
                     .Name("doorman_tls_certificate_expiry_timestamp_seconds")
                     .Help("End of validity (X.509 notAfter, Unix seconds) of each certificate an HTTPS listener serves")
                     .Register(r);
}

prometheus::Gauge& Metrics::WorkerConnections(int worker) {
  return worker_connections_->Add({{"worker", std::to_string(worker)}});
}

Metrics::~Metrics() = default;

void Metrics::ConfigApplied(const RuntimeConfig& config) {
  config_version_->Set(static_cast<double>(config.version));
  updates_applied_->Increment();
  std::map<std::string, bool> up;
  std::map<std::string, bool> ready;
  for (const auto& set : config.backend_sets) {
    for (const auto& e : set->endpoints) {
      ready[e.key] = ready[e.key] || e.ready;
      up[e.key] = up[e.key] || (e.ready && lb::Healthy(e.health.get()));  // any set: unchecked or passing
    }
  }
  {
    // Endpoints that left the routing state: their series go once every worker let go of them.
    std::set<std::string, std::less<>> live;
    for (const auto& [key, r] : ready) live.insert(key);
    std::lock_guard lock(retire_mu_);
    const uint64_t epoch = retire_epoch_.load(std::memory_order_relaxed) + 1;
    bool changed = false;
    for (const auto& key : live_backends_) {
      if (!live.count(key)) {
        retired_[key] = epoch;
        changed = true;
      }
    }
    // New keys (possibly a departed address coming back, for which workers may have cached the
    // sink) are an epoch change too; a retired key that is back before its series went keeps them.
    for (const auto& key : live) {
      if (!live_backends_.count(key)) {
        retired_.erase(key);
        changed = true;
      }
    }
    live_backends_ = std::move(live);
    if (changed) retire_epoch_.store(epoch, std::memory_order_release);
  }
  RemoveReleased();  // with no workers (tests) at once; otherwise when the last one acknowledges
  {
    // Certificates: the series are exactly those of this config. A rotated Secret's value follows
    // the new certificate; a removed one's series goes (an expiry alert never fires for a
    // certificate no longer served).
    std::lock_guard lock(tls_expiry_mu_);
    std::map<std::pair<std::string, std::string>, prometheus::Gauge*> now;
    for (const auto& l : config.listeners) {
      if (!l->served) continue;
      for (const auto& c : l->tls_expiry) {
        auto key = std::make_pair(l->name, c.name);
        auto it = tls_expiry_series_.find(key);
        auto* g = it != tls_expiry_series_.end() ? it->second
                                                 : &tls_expiry_->Add({{"listener", l->name}, {"certificate", c.name}});
        g->Set(static_cast<double>(c.not_after));
        now[key] = g;
      }
    }
    for (const auto& [key, g] : tls_expiry_series_) {
      if (!now.count(key)) tls_expiry_->Remove(g);
    }
    tls_expiry_series_ = std::move(now);
  }
  std::lock_guard lock(backend_up_mu_);
  backend_ready_ = std::move(ready);
  for (auto it = backend_up_series_.begin(); it != backend_up_series_.end();) {
    if (!up.count(it->first)) {
      backend_up_->Remove(it->second);
      it = backend_up_series_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [key, is_up] : up) {
    auto& g = backend_up_series_[key];
    if (g == nullptr) g = &backend_up_->Add({{"backend", key}});
    g->Set(is_up ? 1 : 0);
  }
}

void Metrics::ConfigRejected() { updates_rejected_->Increment(); }

void Metrics::HealthProbed(health::ProbeResult result) { health_probes_[static_cast<int>(result)]->Increment(); }

void Metrics::SetBackendHealth(const std::string& backend, bool healthy) {
  std::lock_guard lock(backend_up_mu_);
  auto it = backend_up_series_.find(backend);
  if (it == backend_up_series_.end()) return;
  it->second->Set(healthy && backend_ready_[backend] ? 1 : 0);
}

std::atomic<uint64_t>* Metrics::RegisterWorker() {
  std::lock_guard lock(retire_mu_);
  worker_acks_.push_back(std::make_unique<std::atomic<uint64_t>>(retire_epoch_.load(std::memory_order_relaxed)));
  return worker_acks_.back().get();
}

bool Metrics::IsLive(std::string_view backend) const { return live_backends_.find(backend) != live_backends_.end(); }

void Metrics::Track(const std::string& backend, CounterFamily* family, prometheus::Counter* series) {
  series_[backend].emplace(family, series);
}

void Metrics::RemoveReleased() {
  std::lock_guard lock(retire_mu_);
  uint64_t released = retire_epoch_.load(std::memory_order_acquire);
  for (const auto& ack : worker_acks_) released = std::min(released, ack->load(std::memory_order_acquire));
  for (auto it = retired_.begin(); it != retired_.end();) {
    if (it->second > released) {
      ++it;
      continue;
    }
    if (auto s = series_.find(it->first); s != series_.end()) {
      for (const auto& [family, series] : s->second) family->Remove(series);
      series_.erase(s);
    }
    it = retired_.erase(it);
  }
}

std::size_t Metrics::backend_series() const {
  std::lock_guard lock(retire_mu_);
  std::size_t n = 0;
  for (const auto& [key, set] : series_) n += set.size();
  return n;
}

WorkerMetrics::WorkerMetrics(Metrics& m)
    : m_(m), ack_(m.RegisterWorker()), sink_(std::make_unique<prometheus::Counter>()) {}

WorkerMetrics::~WorkerMetrics() = default;

void WorkerMetrics::Tick() {
  const uint64_t target = m_.retire_epoch_.load(std::memory_order_acquire);
  if (ack_->load(std::memory_order_relaxed) == target) return;
  // Cached pointers may be to series about to be removed: drop them all (they are re-looked up).
  l4_connections_.clear();
  l4_ejections_.clear();
  l7_requests_.clear();
  l7_events_.clear();
  ++epoch_;
  ack_->store(target, std::memory_order_release);
  m_.RemoveReleased();
}

prometheus::Counter& WorkerMetrics::BackendCounter(Metrics::CounterFamily* family, const std::string& backend,
                                                   const std::map<std::string, std::string>& labels) {
  std::lock_guard lock(m_.retire_mu_);
  // Only endpoints of the applied config get series: a request still in flight to one that left
  // is counted in the sink, so nothing re-creates a series after (or while) it is removed.
  if (!backend.empty() && !m_.IsLive(backend)) return *sink_;
  auto& series = family->Add(labels);
  if (!backend.empty()) m_.Track(backend, family, &series);
  return series;
}

prometheus::Gauge& WorkerMetrics::L4Active(const std::string& listener) {
  auto& p = l4_active_[listener];
  if (p == nullptr) p = &m_.l4_active_->Add({{"listener", listener}});
  return *p;
}

prometheus::Counter& WorkerMetrics::L4Connections(const std::string& listener, const std::string& backend) {
  key_.assign(listener).append(1, '\0').append(backend);
  auto& p = l4_connections_[key_];
  if (p == nullptr) p = &BackendCounter(m_.l4_connections_, backend, {{"listener", listener}, {"backend", backend}});
  return *p;
}

prometheus::Counter& WorkerMetrics::L4Ejections(const std::string& listener, const std::string& backend) {
  key_.assign(listener).append(1, '\0').append(backend);
  auto& p = l4_ejections_[key_];
  if (p == nullptr) p = &BackendCounter(m_.l4_ejections_, backend, {{"listener", listener}, {"backend", backend}});
  return *p;
}

prometheus::Counter& WorkerMetrics::L4Bytes(const std::string& listener, bool rx) {
  key_.assign(listener).append(rx ? "\0rx" : "\0tx", 3);
  auto& p = l4_bytes_[key_];
  if (p == nullptr) p = &m_.l4_bytes_->Add({{"listener", listener}, {"direction", rx ? "rx" : "tx"}});
  return *p;
}

prometheus::Counter& WorkerMetrics::L4Drops(const std::string& listener, std::string_view reason) {
  key_.assign(listener).append(1, '\0').append(reason);
  auto& p = l4_drops_[key_];
  if (p == nullptr) p = &m_.l4_drops_->Add({{"listener", listener}, {"reason", std::string(reason)}});
  return *p;
}

prometheus::Counter& WorkerMetrics::L7Requests(std::string_view listener, std::string_view route,
                                               std::string_view backend, unsigned code) {
  const std::string code_str = std::to_string(code);
  key_.assign(listener).append(1, '\0').append(route).append(1, '\0').append(backend).append(1, '\0').append(code_str);
  auto& p = l7_requests_[key_];
  if (p == nullptr) {
    const std::string b(backend);
    p = &BackendCounter(m_.l7_requests_, b,
                        {{"listener", std::string(listener)}, {"route", std::string(route)}, {"backend", b}, {"code", code_str}});
  }
  return *p;
}

prometheus::Histogram& WorkerMetrics::L7Duration(std::string_view listener, std::string_view route) {
  key_.assign(listener).append(1, '\0').append(route);
  auto& p = l7_duration_[key_];
  if (p == nullptr) {
    p = &m_.l7_duration_->Add({{"listener", std::string(listener)}, {"route", std::string(route)}}, DurationBuckets());
  }
  return *p;
}

prometheus::Counter& WorkerMetrics::L7Count(L7Event event, std::string_view listener, std::string_view route,
                                            std::string_view backend) {
  const auto i = static_cast<int>(event);
  key_.assign(1, static_cast<char>('0' + i)).append(listener).append(1, '\0').append(route).append(1, '\0').append(backend);
  auto& p = l7_events_[key_];
  if (p == nullptr) {
    const std::string b(backend);
    p = &BackendCounter(m_.l7_events_[i], b, {{"listener", std::string(listener)}, {"route", std::string(route)}, {"backend", b}});
  }
  return *p;
}

}  // namespace doorman::dataplane
