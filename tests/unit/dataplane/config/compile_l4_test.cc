// Compile() behaviour owned by the L4 work: scheduler selection, endpoint state carried across
// snapshots (health, open connections), L4 listener settings.
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "dataplane/config/compile.h"
#include "doorman/v1/routing.pb.h"

namespace doorman::dataplane {
namespace {

v1::Snapshot Parse(const std::string& text) {
  v1::Snapshot s;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &s)) << text;
  return s;
}

std::string Snapshot(const std::string& scheduler, const std::string& extra_endpoint = "") {
  return R"pb(
    listeners { name: "tcp-9000" port: 9000 protocol: TCP routes: "ns/lb/r" }
    routes { name: "ns/lb/r" listener: "tcp-9000" backends { backend_set: "s" weight: 1 }
             policy { scheduler: ")pb" + scheduler + R"pb(" } }
    backend_sets { name: "s"
      endpoints { address: "127.0.0.1" port: 1 ready: true }
      endpoints { address: "127.0.0.1" port: 2 ready: true }
      endpoints { address: "127.0.0.1" port: 3 ready: true })pb" + extra_endpoint + R"pb( }
  )pb";
}

TEST(CompileL4Test, SchedulerSelectedByName) {
  for (const auto& [name, kind] : std::map<std::string, lb::SchedulerKind>{
           {"", lb::SchedulerKind::kRoundRobin},
           {"round-robin", lb::SchedulerKind::kRoundRobin},
           {"weighted-round-robin", lb::SchedulerKind::kWeightedRoundRobin},
           {"least-connections", lb::SchedulerKind::kLeastConnections},
           {"source-hash", lb::SchedulerKind::kSourceHash},
           {"maglev", lb::SchedulerKind::kMaglev},
           {"p2c", lb::SchedulerKind::kP2c}}) {
    const auto r = Compile(Parse(Snapshot(name)), 1, {});
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_TRUE(r.warnings.empty()) << name << ": " << (r.warnings.empty() ? "" : r.warnings[0]);
    const Route* route = r.config->FindRoute("ns/lb/r");
    EXPECT_EQ(route->scheduler, kind) << name;
    EXPECT_EQ(route->picker->kind(), kind) << name;
    EXPECT_NE(route->PickEndpoint(lb::PickContext{42, 0}), nullptr);
  }
}

TEST(CompileL4Test, HashSchedulersAreStickyPerClient) {
  for (const char* name : {"source-hash", "maglev"}) {
    const auto r = Compile(Parse(Snapshot(name)), 1, {});
    const Route* route = r.config->FindRoute("ns/lb/r");
    std::map<std::string, int> seen;
    for (uint64_t client = 0; client < 300; ++client) {
      const auto h = lb::HashKey("client" + std::to_string(client));
      const Endpoint* a = route->PickEndpoint(lb::PickContext{h, 0});
      const Endpoint* b = route->PickEndpoint(lb::PickContext{h, 0});
      ASSERT_EQ(a, b) << name;
      seen[a->key]++;
    }
    EXPECT_EQ(seen.size(), 3u) << name;
  }
}

TEST(CompileL4Test, EndpointStateSurvivesASnapshotForTheSameKey) {
  const std::string check = R"pb( health_check { protocol: TCP })pb";
  const auto first = Compile(Parse(Snapshot("least-connections", check)), 1, {});
  const Endpoint& e1 = first.config->backend_sets[0]->endpoints[0];
  ASSERT_NE(e1.health, nullptr);
  e1.health->healthy = false;
  e1.state->active = 7;
  CompileOptions opts;
  opts.previous = first.config.get();
  const auto second = Compile(
      Parse(Snapshot("maglev", R"pb(endpoints { address: "127.0.0.1" port: 4 ready: true })pb" + check)), 2, opts);
  ASSERT_TRUE(second.ok()) << second.error;
  const auto& eps = second.config->backend_sets[0]->endpoints;
  ASSERT_EQ(eps.size(), 4u);
  EXPECT_EQ(eps[0].state, e1.state);
  EXPECT_EQ(eps[0].health, e1.health);
  EXPECT_FALSE(eps[0].health->healthy.load());
  EXPECT_EQ(eps[0].state->active.load(), 7);
  EXPECT_TRUE(eps[3].health->healthy.load());  // new endpoint starts healthy
  // The unhealthy endpoint gets no new connections under the new config either.
  const Route* route = second.config->FindRoute("ns/lb/r");
  for (uint64_t c = 0; c < 200; ++c) EXPECT_NE(route->PickEndpoint(lb::PickContext{lb::HashKey(std::to_string(c)), 0}), &eps[0]);
}

// Health is per (endpoint, check), as per Envoy cluster / ALB target group: a set without a check
// is never taken out by another set's check of the same address; sets with the same check share
// one verdict (one probe); an edited check keeps the set's verdict until its thresholds flip it.
TEST(CompileL4Test, HealthIsPerEndpointAndCheckNotPerAddress) {
  auto snap = [](const std::string& check_a, const std::string& check_c) {
    return R"pb(
      listeners { name: "tcp-9000" port: 9000 protocol: TCP routes: "ns/a/r" }
      listeners { name: "tcp-9001" port: 9001 protocol: TCP routes: "ns/b/r" }
      listeners { name: "tcp-9002" port: 9002 protocol: TCP routes: "ns/c/r" }
      routes { name: "ns/a/r" listener: "tcp-9000" backends { backend_set: "a" weight: 1 } }
      routes { name: "ns/b/r" listener: "tcp-9001" backends { backend_set: "b" weight: 1 } }
      routes { name: "ns/c/r" listener: "tcp-9002" backends { backend_set: "c" weight: 1 } }
      backend_sets { name: "a" endpoints { address: "127.0.0.1" port: 1 ready: true }
                               endpoints { address: "127.0.0.1" port: 2 ready: true } )pb" + check_a + R"pb( }
      backend_sets { name: "b" endpoints { address: "127.0.0.1" port: 1 ready: true }
                               endpoints { address: "127.0.0.1" port: 2 ready: true } }
      backend_sets { name: "c" endpoints { address: "127.0.0.1" port: 1 ready: true } )pb" + check_c + R"pb( }
    )pb";
  };
  const std::string http = R"pb(health_check { protocol: HTTP path: "/status/500" })pb";
  const std::string tcp = R"pb(health_check { protocol: TCP })pb";
  const auto r = Compile(Parse(snap(http, tcp)), 1, {});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.warnings.empty()) << ::testing::PrintToString(r.warnings);
  const auto& a = r.config->backend_sets[0]->endpoints;
  const auto& b = r.config->backend_sets[1]->endpoints;
  const auto& c = r.config->backend_sets[2]->endpoints;
  ASSERT_NE(a[0].health, nullptr);
  EXPECT_EQ(b[0].health, nullptr);  // unchecked: healthy whatever the others' checks say
  ASSERT_NE(c[0].health, nullptr);
  EXPECT_NE(c[0].health, a[0].health);  // another check: another verdict
  EXPECT_EQ(a[0].state, b[0].state);    // load and drain state stay per address
  a[0].health->healthy = false;
  for (uint64_t i = 0; i < 20; ++i) {
    EXPECT_NE(r.config->FindRoute("ns/a/r")->PickEndpoint(lb::PickContext{i, 0}), &a[0]);
  }
  std::set<const Endpoint*> picked;
  for (uint64_t i = 0; i < 20; ++i) picked.insert(r.config->FindRoute("ns/b/r")->PickEndpoint(lb::PickContext{i, 0}));
  EXPECT_EQ(picked.size(), 2u) << "set b has no check: 127.0.0.1:1 still gets its share";
  EXPECT_EQ(r.config->FindRoute("ns/c/r")->PickEndpoint(lb::PickContext{}), &c[0]);

  // The same check in two sets: one slot. Next snapshot: the same slots; an edited check of set
  // a starts a new slot with set a's verdict.
  const auto same = Compile(Parse(snap(tcp, tcp)), 2, {});
  ASSERT_TRUE(same.ok()) << same.error;
  EXPECT_EQ(same.config->backend_sets[0]->endpoints[0].health, same.config->backend_sets[2]->endpoints[0].health);
  CompileOptions opts;
  opts.previous = r.config.get();
  const auto next = Compile(Parse(snap(http, tcp)), 3, opts);
  EXPECT_EQ(next.config->backend_sets[0]->endpoints[0].health, a[0].health);
  EXPECT_EQ(next.config->backend_sets[2]->endpoints[0].health, c[0].health);
  const auto edited = Compile(Parse(snap(R"pb(health_check { protocol: HTTP path: "/other" })pb", tcp)), 4, opts);
  const auto& ea = edited.config->backend_sets[0]->endpoints;
  EXPECT_NE(ea[0].health, a[0].health);
  EXPECT_FALSE(ea[0].health->healthy.load()) << "an edited check keeps the set's verdict";
  EXPECT_TRUE(ea[1].health->healthy.load());
}

TEST(CompileL4Test, UnknownSchedulerWarnsAndUsesRoundRobin) {
  const auto r = Compile(Parse(Snapshot("fastest")), 1, {});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("unknown scheduler \"fastest\""), std::string::npos);
  EXPECT_EQ(r.config->FindRoute("ns/lb/r")->scheduler, lb::SchedulerKind::kRoundRobin);
}

}  // namespace
}  // namespace doorman::dataplane

namespace doorman::dataplane {
namespace {

TEST(CompileL4Test, RemovedEndpointsStartDrainingAndComeBack) {
  const auto a = Compile(Parse(Snapshot("round-robin", R"pb(endpoints { address: "127.0.0.1" port: 4 ready: true })pb")), 1, {});
  const auto gone = a.config->backend_sets[0]->endpoints[3].state;
  CompileOptions opts;
  opts.previous = a.config.get();
  const auto b = Compile(Parse(Snapshot("round-robin")), 2, opts);
  MarkRemovedEndpoints(a.config.get(), *b.config, 5000);
  EXPECT_EQ(gone->removed_at_ms.load(), 5000);
  EXPECT_EQ(b.config->backend_sets[0]->endpoints[0].state->removed_at_ms.load(), 0);
  // A later update does not restart the drain clock. Re-adding the key after a removal starts a
  // fresh state (the old connections keep draining on the old one).
  MarkRemovedEndpoints(b.config.get(), *b.config, 9000);
  EXPECT_EQ(gone->removed_at_ms.load(), 5000);
  opts.previous = b.config.get();
  const auto c = Compile(Parse(Snapshot("round-robin", R"pb(endpoints { address: "127.0.0.1" port: 4 ready: true })pb")), 3, opts);
  MarkRemovedEndpoints(b.config.get(), *c.config, 9500);
  EXPECT_EQ(gone->removed_at_ms.load(), 5000);
  EXPECT_EQ(c.config->backend_sets[0]->endpoints[3].state->removed_at_ms.load(), 0);
  EXPECT_NE(c.config->backend_sets[0]->endpoints[3].state, gone);
}

// Drain is per listener: an address removed from one listener's route drains that listener's
// connections even while another listener keeps it; edits that keep the address on the listener
// (another set name, a set added in front) do not drain.
TEST(CompileL4Test, DrainFlagsFollowTheListener) {
  const auto parse = [](const char* a_sets, const char* a_backends) {
    return Parse(std::string(R"pb(
      listeners { name: "tcp-1" port: 1 protocol: TCP routes: "r1" }
      listeners { name: "tcp-2" port: 2 protocol: TCP routes: "r2" }
      backend_sets { name: "b" endpoints { address: "10.0.0.9" port: 80 ready: true } }
      routes { name: "r2" listener: "tcp-2" backends { backend_set: "b" weight: 1 } }
    )pb") + a_sets + R"pb( routes { name: "r1" listener: "tcp-1" )pb" + a_backends + " }");
  };
  const char* both = R"pb(backend_sets { name: "a" endpoints { address: "10.0.0.1" port: 80 ready: true }
                                          endpoints { address: "10.0.0.9" port: 80 ready: true } })pb";
  const auto x = Compile(parse(both, R"pb(backends { backend_set: "a" weight: 1 })pb"), 1, {});
  ASSERT_TRUE(x.ok()) << x.error;
  const auto f1 = x.config->FindListener("tcp-1")->DrainFlagFor("10.0.0.9:80");
  const auto f2 = x.config->FindListener("tcp-2")->DrainFlagFor("10.0.0.9:80");
  ASSERT_TRUE(f1 && f2);
  EXPECT_NE(f1, f2);
  // The set is renamed and another set put in front: the address stays on tcp-1, no drain.
  CompileOptions opts;
  opts.previous = x.config.get();
  const char* renamed = R"pb(backend_sets { name: "a0" endpoints { address: "10.0.0.5" port: 80 ready: true } }
                             backend_sets { name: "a2" endpoints { address: "10.0.0.1" port: 80 ready: true }
                                            endpoints { address: "10.0.0.9" port: 80 ready: true } })pb";
  const auto y = Compile(parse(renamed, R"pb(backends { backend_set: "a0" weight: 1 } backends { backend_set: "a2" weight: 1 })pb"), 2, opts);
  ASSERT_TRUE(y.ok()) << y.error;
  MarkRemovedEndpoints(x.config.get(), *y.config, 7000);
  EXPECT_EQ(f1->load(), 0);
  EXPECT_EQ(y.config->FindListener("tcp-1")->DrainFlagFor("10.0.0.9:80"), f1);  // carried over
  // Removed from tcp-1's route, still on tcp-2: tcp-1's connections drain, tcp-2's do not.
  opts.previous = y.config.get();
  const char* without = R"pb(backend_sets { name: "a2" endpoints { address: "10.0.0.1" port: 80 ready: true } })pb";
  const auto z = Compile(parse(without, R"pb(backends { backend_set: "a2" weight: 1 })pb"), 3, opts);
  ASSERT_TRUE(z.ok()) << z.error;
  MarkRemovedEndpoints(y.config.get(), *z.config, 8000);
  EXPECT_EQ(f1->load(), 8000);
  EXPECT_EQ(f2->load(), 0);
  EXPECT_EQ(z.config->backend_sets[0]->endpoints[0].state->removed_at_ms.load(), 0);  // address still routed
}

TEST(CompileL4Test, SourceRangesCompiledBadOnesNarrowTheList) {
  const auto r = Compile(Parse(R"pb(
    listeners { name: "tcp-1" port: 1 protocol: TCP allowed_source_ranges: "10.0.0.0/8" allowed_source_ranges: "fd00::/8" }
    listeners { name: "tcp-2" port: 2 protocol: TCP allowed_source_ranges: "10.0.0.0/8" allowed_source_ranges: "nope" }
    listeners { name: "tcp-3" port: 3 protocol: TCP allowed_source_ranges: "bad" }
  )pb"), 1, {});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.config->FindListener("tcp-1")->allowed_source_ranges.size(), 2u);
  EXPECT_EQ(r.config->FindListener("tcp-2")->allowed_source_ranges.size(), 1u);
  const auto& none = r.config->FindListener("tcp-3")->allowed_source_ranges;
  ASSERT_EQ(none.size(), 1u);
  const uint8_t lo[4] = {127, 0, 0, 1};
  EXPECT_FALSE(l4::SourceAllowed(none, lo, 4));  // fails closed
}

}  // namespace
}  // namespace doorman::dataplane

namespace doorman::dataplane {
namespace {

TEST(CompileL4Test, SourceIpStickinessTableCarriedOverForTheSameRouteAndTtl) {
  auto snap = [](const char* ttl) {
    return std::string(R"pb(
      listeners { name: "tcp-9000" port: 9000 protocol: TCP routes: "ns/lb/r" }
      routes { name: "ns/lb/r" listener: "tcp-9000" backends { backend_set: "s" weight: 1 }
               policy { stickiness { type: SOURCE_IP ttl_ms: )pb") + ttl + R"pb( } } }
      backend_sets { name: "s" endpoints { address: "127.0.0.1" port: 1 ready: true }
                               endpoints { address: "127.0.0.1" port: 2 ready: true }
                     health_check { protocol: TCP } })pb";
  };
  const auto a = Compile(Parse(snap("60000")), 1, {});
  ASSERT_TRUE(a.ok()) << a.error;
  EXPECT_TRUE(a.warnings.empty());
  const Route* ra = a.config->FindRoute("ns/lb/r");
  ASSERT_NE(ra->sticky, nullptr);
  const Endpoint* first = ra->PickSticky(lb::PickContext{77, 0}, 1000);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(ra->PickSticky(lb::PickContext{77, 0}, 1000 + i), first);
  CompileOptions opts;
  opts.previous = a.config.get();
  const auto b = Compile(Parse(snap("60000")), 2, opts);
  EXPECT_EQ(b.config->FindRoute("ns/lb/r")->sticky, ra->sticky);
  EXPECT_EQ(b.config->FindRoute("ns/lb/r")->PickSticky(lb::PickContext{77, 0}, 2000)->key, first->key);
  // An unhealthy remembered endpoint is replaced.
  first->health->healthy = false;
  EXPECT_NE(b.config->FindRoute("ns/lb/r")->PickSticky(lb::PickContext{77, 0}, 3000)->key, first->key);
  first->health->healthy = true;
  const auto c = Compile(Parse(snap("120000")), 3, opts);
  EXPECT_NE(c.config->FindRoute("ns/lb/r")->sticky, ra->sticky);  // new TTL: new table
}

std::string WithHealthCheck(const std::string& check) {
  std::string s = Snapshot("round-robin");
  const auto end = s.rfind('}');
  return s.substr(0, end) + " health_check { " + check + " } " + s.substr(end);
}

TEST(CompileL4Test, HealthCheckProtocolsCompileWithoutWarnings) {
  for (const auto& [text, proto] : std::map<std::string, health::CheckProtocol>{
           {"protocol: TCP", health::CheckProtocol::kTcp},
           {"protocol: HTTP path: \"/healthz\"", health::CheckProtocol::kHttp},
           {"protocol: GRPC interval_ms: 300 timeout_ms: 250", health::CheckProtocol::kGrpc}}) {
    const auto r = Compile(Parse(WithHealthCheck(text)), 1, {});
    ASSERT_TRUE(r.ok()) << text << ": " << r.error;
    EXPECT_TRUE(r.warnings.empty()) << text << ": " << ::testing::PrintToString(r.warnings);
    const auto& spec = r.config->backend_sets.at(0)->health_check;
    EXPECT_EQ(spec.protocol, proto) << text;
    EXPECT_EQ(spec.grpc_service, "") << text;
  }
  const auto grpc = Compile(Parse(WithHealthCheck("protocol: GRPC interval_ms: 300 timeout_ms: 250")), 1, {});
  EXPECT_EQ(grpc.config->backend_sets.at(0)->health_check.interval, health::Millis(300));
  EXPECT_EQ(grpc.config->backend_sets.at(0)->health_check.timeout, health::Millis(250));
}

TEST(CompileL4Test, GrpcHealthCheckServiceNameComesFromPath) {
  const auto r = Compile(Parse(WithHealthCheck("protocol: GRPC path: \"my.pkg.Greeter\"")), 1, {});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.config->backend_sets.at(0)->health_check.grpc_service, "my.pkg.Greeter");
  const auto bad = Compile(Parse(WithHealthCheck("protocol: GRPC path: \"my service\"")), 1, {});
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.error.find("is not a gRPC service name"), std::string::npos) << bad.error;
}

}  // namespace
}  // namespace doorman::dataplane
