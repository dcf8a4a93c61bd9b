#include "dataplane/admin/metrics.h"

#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <initializer_list>
#include <memory>
#include <string>

#include "dataplane/config/runtime_config.h"

namespace doorman::dataplane {
namespace {

RuntimeConfig WithEndpoints(std::initializer_list<const char*> keys) {
  RuntimeConfig c;
  auto set = std::make_unique<BackendSet>();
  set->name = "s";
  for (const char* k : keys) {
    Endpoint e;
    e.key = k;
    e.ready = true;
    e.state = std::make_shared<lb::EndpointState>();
    set->endpoints.push_back(std::move(e));
  }
  c.backend_sets.push_back(std::move(set));
  return c;
}

// How many exported doorman_l7_requests_total series carry backend=`backend`.
int Series(prometheus::Registry& r, const std::string& backend) {
  int n = 0;
  for (const auto& family : r.Collect()) {
    if (family.name != "doorman_l7_requests_total") continue;
    for (const auto& m : family.metric) {
      for (const auto& l : m.label) n += (l.name == "backend" && l.value == backend) ? 1 : 0;
    }
  }
  return n;
}

// Pods come and go: the series of an endpoint that left must go too, but only once no worker
// can still write through a cached pointer to them.
TEST(MetricsTest, SeriesOfDepartedEndpointsAreRemovedOnceEveryWorkerLetGo) {
  auto registry = std::make_shared<prometheus::Registry>();
  Metrics m(registry);
  WorkerMetrics w1(m), w2(m);
  m.ConfigApplied(WithEndpoints({"10.0.0.1:80", "10.0.0.2:80"}));
  w1.L7Requests("web", "r", "10.0.0.1:80", 200).Increment();
  w2.L7Requests("web", "r", "10.0.0.1:80", 200).Increment();
  w2.L7Requests("web", "r", "10.0.0.2:80", 503).Increment();
  w1.L7Count(L7Event::kConnectFailure, "web", "r", "10.0.0.1:80").Increment();
  w1.L7Count(L7Event::kRetry, "web", "r", "").Increment();  // no backend label value: kept
  EXPECT_EQ(Series(*registry, "10.0.0.1:80"), 1);
  EXPECT_EQ(m.backend_series(), 3u);

  m.ConfigApplied(WithEndpoints({"10.0.0.2:80"}));
  const uint64_t e1 = w1.epoch();
  w1.Tick();
  EXPECT_NE(w1.epoch(), e1);  // sessions holding series pointers must look them up again
  EXPECT_EQ(Series(*registry, "10.0.0.1:80"), 1);  // w2 may still hold a pointer to it
  // A request still in flight to the departed endpoint is not exported again.
  w1.L7Requests("web", "r", "10.0.0.1:80", 200).Increment();
  w2.Tick();
  EXPECT_EQ(Series(*registry, "10.0.0.1:80"), 0);
  EXPECT_EQ(Series(*registry, "10.0.0.2:80"), 1);
  EXPECT_EQ(m.backend_series(), 1u);
  w2.L7Requests("web", "r", "10.0.0.1:80", 200).Increment();
  EXPECT_EQ(Series(*registry, "10.0.0.1:80"), 0);

  // The address comes back (a new pod reusing it): counted again from zero.
  m.ConfigApplied(WithEndpoints({"10.0.0.1:80", "10.0.0.2:80"}));
  w1.Tick();
  w2.Tick();
  auto& again = w1.L7Requests("web", "r", "10.0.0.1:80", 200);
  EXPECT_EQ(again.Value(), 0);
  again.Increment();
  EXPECT_EQ(Series(*registry, "10.0.0.1:80"), 1);
  EXPECT_EQ(&w2.L7Requests("web", "r", "10.0.0.1:80", 200), &again);  // one series for both workers
}

TEST(MetricsTest, UnchangedEndpointsKeepTheirSeriesAndCaches) {
  auto registry = std::make_shared<prometheus::Registry>();
  Metrics m(registry);
  WorkerMetrics w(m);
  m.ConfigApplied(WithEndpoints({"10.0.0.1:80"}));
  auto* first = &w.L4Connections("tcp", "10.0.0.1:80");
  w.Tick();
  const uint64_t e = w.epoch();
  m.ConfigApplied(WithEndpoints({"10.0.0.1:80"}));  // same endpoints: nothing retired
  w.Tick();
  EXPECT_EQ(w.epoch(), e);
  EXPECT_EQ(&w.L4Connections("tcp", "10.0.0.1:80"), first);
}

// The gauge value of doorman_tls_certificate_expiry_timestamp_seconds{listener,certificate}, or
// -1 when there is no such series.
double Expiry(prometheus::Registry& r, const std::string& listener, const std::string& certificate) {
  for (const auto& family : r.Collect()) {
    if (family.name != "doorman_tls_certificate_expiry_timestamp_seconds") continue;
    for (const auto& m : family.metric) {
      std::string l, c;
      for (const auto& label : m.label) {
        if (label.name == "listener") l = label.value;
        if (label.name == "certificate") c = label.value;
      }
      if (l == listener && c == certificate) return m.gauge.value;
    }
  }
  return -1;
}

RuntimeConfig WithCertificates(std::initializer_list<CertificateExpiry> certs, bool served = true) {
  RuntimeConfig c;
  auto l = std::make_unique<Listener>();
  l->name = "https-8443";
  l->protocol = Protocol::kHttps;
  l->served = served;
  l->tls_expiry = certs;
  c.listeners.push_back(std::move(l));
  return c;
}

// One series per certificate a served HTTPS listener holds, valued at its notAfter; a rotated
// certificate's value follows it, a certificate no longer served loses its series (so an expiry
// alert never fires for a Secret that was replaced or removed).
TEST(MetricsTest, CertificateExpiryFollowsTheServedCertificates) {
  auto registry = std::make_shared<prometheus::Registry>();
  Metrics m(registry);
  m.ConfigApplied(WithCertificates({{"shop/a", 1'900'000'000}, {"shop/b", 2'000'000'000}}));
  EXPECT_EQ(Expiry(*registry, "https-8443", "shop/a"), 1'900'000'000);
  EXPECT_EQ(Expiry(*registry, "https-8443", "shop/b"), 2'000'000'000);
  m.ConfigApplied(WithCertificates({{"shop/a", 1'950'000'000}}));  // a rotated, b removed
  EXPECT_EQ(Expiry(*registry, "https-8443", "shop/a"), 1'950'000'000);
  EXPECT_EQ(Expiry(*registry, "https-8443", "shop/b"), -1);
  m.ConfigApplied(WithCertificates({{"shop/a", 1'950'000'000}}, /*served=*/false));  // port not opened
  EXPECT_EQ(Expiry(*registry, "https-8443", "shop/a"), -1);
}

}  // namespace
}  // namespace doorman::dataplane
