#include "controller/metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace doorman::controller {

ControllerMetrics::ControllerMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)) {
  watch_events_ = &prometheus::BuildCounter()
                       .Name("doorman_controller_watch_events_total")
                       .Help("Watch events seen by the controller's sources, by resource and type.")
                       .Register(*registry_);
  snapshot_version_ = &prometheus::BuildGauge()
                           .Name("doorman_controller_snapshot_version")
                           .Help("Content version of the snapshot the controller currently serves (0 = none yet).")
                           .Register(*registry_)
                           .Add({});
  dataplanes_connected_ = &prometheus::BuildGauge()
                               .Name("doorman_controller_dataplanes_connected")
                               .Help("Dataplanes with an open routing-state stream (after Hello).")
                               .Register(*registry_)
                               .Add({});
  push_seconds_ = &prometheus::BuildHistogram()
                       .Name("doorman_controller_push_seconds")
                       .Help("Time from a change seen by the controller to a dataplane ACKing the snapshot with it.")
                       .Register(*registry_)
                       .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                                         2.5, 5, 10, 30});
  objects_ = &prometheus::BuildGauge()
                  .Name("doorman_controller_objects")
                  .Help("Translated objects by kind and whether their current spec is accepted.")
                  .Register(*registry_);
  translations_ = &prometheus::BuildCounter()
                       .Name("doorman_controller_translations_total")
                       .Help("Snapshots built by the translator.")
                       .Register(*registry_)
                       .Add({});
}

void ControllerMetrics::WatchEvent(const std::string& resource, const std::string& type) {
  watch_events_->Add({{"resource", resource}, {"type", type}}).Increment();
}

void ControllerMetrics::SetSnapshotVersion(uint64_t version) { snapshot_version_->Set(static_cast<double>(version)); }

void ControllerMetrics::SetDataplanesConnected(size_t n) { dataplanes_connected_->Set(static_cast<double>(n)); }

void ControllerMetrics::ObservePushSeconds(double seconds) { push_seconds_->Observe(seconds); }

void ControllerMetrics::SetObjects(const std::string& kind, bool accepted, size_t n) {
  objects_->Add({{"kind", kind}, {"accepted", accepted ? "true" : "false"}}).Set(static_cast<double>(n));
}

void ControllerMetrics::CountTranslation() { translations_->Increment(); }

}  // namespace doorman::controller
