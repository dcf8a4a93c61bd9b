// The controller's Prometheus metrics (API.md §3). Thread-safe (prometheus-cpp metrics are).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace doorman::controller {

class ControllerMetrics {
 public:
  explicit ControllerMetrics(std::shared_ptr<prometheus::Registry> registry);

  // doorman_controller_watch_events_total{resource,type}: resource = lowercase plural kind.
  void WatchEvent(const std::string& resource, const std::string& type);
  // doorman_controller_snapshot_version (53-bit, exact as a double).
  void SetSnapshotVersion(uint64_t version);
  // doorman_controller_dataplanes_connected.
  void SetDataplanesConnected(size_t n);
  // doorman_controller_push_seconds: change seen → ACK.
  void ObservePushSeconds(double seconds);
  // doorman_controller_objects{kind,accepted}: objects by acceptance (extra, for alerting).
  void SetObjects(const std::string& kind, bool accepted, size_t n);
  // doorman_controller_translations_total: snapshots built.
  void CountTranslation();

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* watch_events_;
  prometheus::Gauge* snapshot_version_;
  prometheus::Gauge* dataplanes_connected_;
  prometheus::Histogram* push_seconds_;
  prometheus::Family<prometheus::Gauge>* objects_;
  prometheus::Counter* translations_;
};

}  // namespace doorman::controller
