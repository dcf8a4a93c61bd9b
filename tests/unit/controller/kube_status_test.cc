// Status and Event builders: LoadBalancer conditions/listeners/addresses/dataplanes, Programmed
// from ACKed versions, Service/Ingress loadBalancer.ingress, merge patches, Event dedupe names.
#include <gtest/gtest.h>

#include "controller/status/status.h"

#include "common/address.h"

namespace doorman::controller::status {
namespace {

using nlohmann::json;

ObjectStatus Accepted(const std::string& name, int64_t gen) {
  ObjectStatus st;
  st.key = {kKindLoadBalancer, "default", name};
  st.generation = gen;
  st.serving_generation = gen;
  st.accepted = true;
  st.reason = "Accepted";
  st.listeners = {{"web", 2}, {"cache", 1}};
  return st;
}

const json* Cond(const json& status, const std::string& type) {
  for (const auto& c : status["conditions"]) {
    if (c["type"] == type) return &c;
  }
  return nullptr;
}

TEST(StatusTest, ProgrammedWhenEveryDataplaneAckedAVersionWithThisGeneration) {
  ServedGenerations served;
  const ObjectKey key{kKindLoadBalancer, "default", "shop"};
  served.Record(100, {{key, 1}});
  served.Record(200, {{key, 2}});
  ObjectStatus st = Accepted("shop", 2);
  std::vector<DataplaneView> dps = {{"n1", "192.0.2.10", 200}, {"n2", "192.0.2.11", 100}};

  json s = LoadBalancerStatus(st, dps, served, nullptr, "T1");
  EXPECT_EQ(s["observedGeneration"], 2);
  EXPECT_EQ((*Cond(s, "Accepted"))["status"], "True");
  const json& p = *Cond(s, "Programmed");
  EXPECT_EQ(p["status"], "False");
  EXPECT_EQ(p["reason"], "Pending");
  EXPECT_EQ(p["message"], "1 of 2 dataplanes programmed generation 2");
  EXPECT_EQ(p["observedGeneration"], 2);
  EXPECT_EQ(p["lastTransitionTime"], "T1");
  EXPECT_EQ(s["dataplanes"], json({{"ready", 2}, {"programmed", 1}}));
  EXPECT_EQ(s["addresses"], json::parse(R"([{"type":"IPAddress","value":"192.0.2.10"},{"type":"IPAddress","value":"192.0.2.11"}])"));
  EXPECT_EQ(s["listeners"], json::parse(R"([{"name":"web","attachedRoutes":2},{"name":"cache","attachedRoutes":1}])"));

  dps[1].acked_version = 200;
  json s2 = LoadBalancerStatus(st, dps, served, s, "T2");
  EXPECT_EQ((*Cond(s2, "Programmed"))["status"], "True");
  EXPECT_EQ((*Cond(s2, "Programmed"))["lastTransitionTime"], "T2");  // status changed
  EXPECT_EQ((*Cond(s2, "Accepted"))["lastTransitionTime"], "T1");    // unchanged: kept
  // Same inputs later: identical → nothing to write (no storm).
  EXPECT_EQ(LoadBalancerStatus(st, dps, served, s2, "T3"), s2);
}

// metav1.Condition allows 32768 characters of message; a longer one would make every status
// write fail with 422. Clipped, at a character boundary.
TEST(StatusTest, ConditionMessagesAreClippedToTheApiLimit) {
  ServedGenerations served;
  ObjectStatus st = Accepted("shop", 2);
  st.accepted = false;
  st.reason = "InvalidSpec";
  st.message.clear();
  for (int i = 0; i < 20000; ++i) st.message += "\xc3\xa9";
  const json s = LoadBalancerStatus(st, {}, served, nullptr, "T1");
  const std::string m = (*Cond(s, "Accepted"))["message"];
  EXPECT_LE(m.size(), 32768u);
  EXPECT_GE(m.size(), 32600u);
  EXPECT_EQ(m.substr(m.size() - 5), "\xc3\xa9...");
  EXPECT_NO_THROW(s.dump());
  // Served from the last good version: that note survives the clipping.
  st.serving_last_good = true;
  st.serving_generation = 1;
  const std::string m2 = (*Cond(LoadBalancerStatus(st, {}, served, nullptr, "T1"), "Accepted"))["message"];
  EXPECT_LE(m2.size(), 32768u);
  EXPECT_NE(m2.find("... (still routing generation 1, the last accepted one)"), std::string::npos) << m2.substr(m2.size() - 80);
}

// A dataplane that runs the generation but could not open one of its listeners (port in use)
// does not make the object Programmed: the condition names the listener and the node.
TEST(StatusTest, AListenerADataplaneCouldNotOpenIsNotProgrammed) {
  ServedGenerations served;
  const ObjectKey key{kKindLoadBalancer, "default", "shop"};
  served.Record(200, {{key, 2}});
  ObjectStatus st = Accepted("shop", 2);
  st.listeners = {{"web", 2, "http-8080"}, {"cache", 1, "tcp-6379"}};
  std::vector<DataplaneView> dps = {{"n1", "192.0.2.10", 200, {}}, {"n2", "192.0.2.11", 200, {"tcp-6379", "other"}}};
  json s = LoadBalancerStatus(st, dps, served, nullptr, "T1");
  const json& p = *Cond(s, "Programmed");
  EXPECT_EQ(p["status"], "False");
  EXPECT_EQ(p["reason"], "ListenerNotServed");
  const std::string m = p["message"];
  EXPECT_NE(m.find("listener \"cache\" (tcp-6379) could not be opened on n2"), std::string::npos) << m;
  EXPECT_EQ(m.find("web"), std::string::npos) << m;
  // n2 runs the generation but does not serve all of it: not counted (helper-84).
  EXPECT_EQ(s["dataplanes"], json({{"ready", 2}, {"programmed", 1}}));
  // Opened on the next update: Programmed.
  dps[1].unserved_listeners = {"other"};
  const json s2 = LoadBalancerStatus(st, dps, served, s, "T2");
  EXPECT_EQ((*Cond(s2, "Programmed"))["status"], "True");
  EXPECT_EQ(s2["dataplanes"], json({{"ready", 2}, {"programmed", 2}}));
  // Peers' views carry the list through their Lease.
  const json lease = {{"spec", {{"holderIdentity", "ctl-b"}, {"renewTime", "2026-01-01T00:00:00.000000Z"},
                                {"leaseDurationSeconds", 15}}},
                      {"metadata", {{"annotations", {{kViewAnnotation, DataplaneViewJson({dps[1]}).dump()}}}}}};
  auto v = ParsePeerView(lease);
  ASSERT_TRUE(v);
  ASSERT_EQ(v->dataplanes.size(), 1u);
  EXPECT_EQ(v->dataplanes[0].unserved_listeners, std::vector<std::string>{"other"});
}

TEST(StatusTest, NoDataplaneOrUnknownVersionIsPending) {
  ServedGenerations served;
  ObjectStatus st = Accepted("shop", 1);
  json s = LoadBalancerStatus(st, {}, served, nullptr, "T");
  EXPECT_EQ((*Cond(s, "Programmed"))["reason"], "NoDataplanes");
  EXPECT_EQ((*Cond(s, "Programmed"))["message"], "no dataplane is connected");
  EXPECT_EQ(s["addresses"], json::array());
  s = LoadBalancerStatus(st, {{"n1", "", 999}}, served, nullptr, "T");
  EXPECT_EQ(s["dataplanes"], json({{"ready", 1}, {"programmed", 0}}));
  EXPECT_EQ(s["addresses"], json::array());  // no advertise address given
}

// LoadBalancer "shop" at `generation`, not accepted (`reason`, `message`), still routing the
// last good translation of `serving`.
ObjectStatus RoutingLastGood(int64_t generation, int64_t serving, const std::string& reason, const std::string& message) {
  ObjectStatus st = Accepted("shop", generation);
  st.accepted = false;
  st.reason = reason;
  st.message = message;
  st.serving_last_good = true;
  st.serving_generation = serving;
  return st;
}

TEST(StatusTest, NotAcceptedCarriesReasonAndMessageAndIsNotProgrammed) {
  ServedGenerations served;
  const ObjectStatus st = RoutingLastGood(3, 2, "InvalidSpec", "spec.routes[1].match.path.value: invalid regular expression");
  served.Record(7, ServedBy({st}));
  EXPECT_EQ(served.Find(7)->at(st.key), 2);
  json s = LoadBalancerStatus(st, {{"n1", "192.0.2.1", 7}}, served, nullptr, "T");
  const json& a = *Cond(s, "Accepted");
  EXPECT_EQ(a["status"], "False");
  EXPECT_EQ(a["reason"], "InvalidSpec");
  EXPECT_EQ(a["message"],
            "spec.routes[1].match.path.value: invalid regular expression (still routing generation 2, the last "
            "accepted one)");
  EXPECT_EQ((*Cond(s, "Programmed"))["reason"], "Invalid");
  EXPECT_EQ(s["dataplanes"]["programmed"], 0);
}

// The spec did not change but a Secret it names broke: the last good translation is of this
// very generation, and the dataplanes still route it. Programmed stays False (the generation as
// its references stand now is refused) but says what is routed, and the count shows it.
TEST(StatusTest, ALastGoodOfTheSameGenerationIsCountedNotDenied) {
  ServedGenerations served;
  const ObjectStatus st = RoutingLastGood(3, 3, "InvalidCertificateRef", "Secret default/tls1 not found");
  served.Record(7, ServedBy({st}));
  const json s = LoadBalancerStatus(st, {{"n1", "192.0.2.1", 7}, {"n2", "192.0.2.2", 7}}, served, nullptr, "T");
  EXPECT_EQ((*Cond(s, "Accepted"))["status"], "False");
  const json& p = *Cond(s, "Programmed");
  EXPECT_EQ(p["status"], "False");
  EXPECT_EQ(p["reason"], "Invalid");
  EXPECT_EQ(p["message"], "generation 3 is not accepted as the objects it refers to stand now: 2 of 2 dataplanes "
                          "still route its last accepted translation");
  EXPECT_EQ(s["dataplanes"], json({{"ready", 2}, {"programmed", 2}}));
  EXPECT_EQ(s["addresses"].size(), 2u);
}

TEST(StatusTest, ServedGenerationsEvictOldestButKeepVersionsInUse) {
  ServedGenerations served;
  for (uint64_t v = 1; v <= 5; ++v) served.Record(v, {}, {1}, 3);
  EXPECT_EQ(served.size(), 3u);
  EXPECT_TRUE(served.Find(1));  // a dataplane still serves it
  EXPECT_FALSE(served.Find(2));
  EXPECT_FALSE(served.Find(3));
  EXPECT_TRUE(served.Find(4));
  EXPECT_TRUE(served.Find(5));
}

TEST(StatusTest, IngressPointsForServicesAndIngresses) {
  ObjectStatus st;
  st.key = {kKindService, "default", "db"};
  st.accepted = true;
  std::vector<DataplaneView> dps = {{"n2", "lb.example.com", 1}, {"n1", "192.0.2.1", 1}, {"n3", "192.0.2.1", 1}};
  json current = {{"loadBalancer", json::object()}, {"conditions", json::array()}};
  auto s = DesiredStatus(st, dps, ServedGenerations{}, current, "T");
  ASSERT_TRUE(s);
  // A Service's IP says ipMode Proxy (kube-proxy must not route it itself); a hostname cannot.
  EXPECT_EQ((*s)["loadBalancer"]["ingress"],
            json::parse(R"([{"ip":"192.0.2.1","ipMode":"Proxy"},{"hostname":"lb.example.com"}])"));
  EXPECT_EQ((*DesiredStatus(st, dps, ServedGenerations{}, current, "T", false))["loadBalancer"]["ingress"],
            json::parse(R"([{"ip":"192.0.2.1"},{"hostname":"lb.example.com"}])"));
  EXPECT_EQ(WithoutIpMode(*s)["loadBalancer"]["ingress"], json::parse(R"([{"ip":"192.0.2.1"},{"hostname":"lb.example.com"}])"));
  st.key.kind = kKindIngress;  // an Ingress status has no ipMode
  EXPECT_EQ((*DesiredStatus(st, dps, ServedGenerations{}, current, "T"))["loadBalancer"]["ingress"],
            json::parse(R"([{"ip":"192.0.2.1"},{"hostname":"lb.example.com"}])"));
  st.key.kind = kKindService;
  EXPECT_TRUE(s->contains("conditions"));  // other status fields are left alone
  st.accepted = false;  // claimed but not routed: no addresses
  s = DesiredStatus(st, dps, ServedGenerations{}, *s, "T");
  EXPECT_EQ((*s)["loadBalancer"], json::object());
  st.key.kind = kKindSecret;
  EXPECT_FALSE(DesiredStatus(st, dps, ServedGenerations{}, nullptr, "T"));
}

TEST(StatusTest, NoDataplaneInViewKeepsAddressesWrittenEarlier) {
  ServedGenerations served;
  ObjectStatus lb = Accepted("shop", 1);
  json earlier = LoadBalancerStatus(lb, {{"n1", "192.0.2.10", 0}}, served, nullptr, "T1");
  json s = LoadBalancerStatus(lb, {}, served, earlier, "T2");
  EXPECT_EQ(s["addresses"], earlier["addresses"]);
  EXPECT_EQ((*Cond(s, "Programmed"))["status"], "False");
  EXPECT_EQ((*Cond(s, "Programmed"))["reason"], "NoDataplanes");
  EXPECT_EQ(s["dataplanes"], json({{"ready", 0}, {"programmed", 0}}));

  ObjectStatus svc;
  svc.key = {kKindService, "default", "db"};
  svc.accepted = true;
  const json current = json::parse(R"({"loadBalancer":{"ingress":[{"ip":"192.0.2.1"}]}})");
  EXPECT_EQ(*DesiredStatus(svc, {}, served, current, "T"), current);  // kept
  svc.accepted = false;  // not routed any more: removed even with no dataplane in view
  EXPECT_EQ((*DesiredStatus(svc, {}, served, current, "T"))["loadBalancer"], json::object());
}

TEST(DataplaneViewTest, MergeIncludesOwnViewDedupesByNodeAndIgnoresExpiredViews) {
  const auto now = std::chrono::system_clock::now();
  std::vector<DataplaneView> own = {{"n1", "192.0.2.1", 7}};
  PeerView live{"ctl-b", now - std::chrono::seconds(3), std::chrono::seconds(15),
                {{"n2", "192.0.2.2", 7}, {"n1", "192.0.2.1", 5}}};
  PeerView expired{"ctl-c", now - std::chrono::seconds(20), std::chrono::seconds(15), {{"n3", "192.0.2.3", 7}}};
  auto merged = MergeDataplaneViews(own, {live, expired}, now);
  ASSERT_EQ(merged.size(), 2u);  // n1 counted once, n3's view expired
  EXPECT_EQ(merged[0].node_name, "n1");
  EXPECT_EQ(merged[0].acked_version, 7u);  // own view first
  EXPECT_EQ(merged[1].node_name, "n2");
  // Within the skew an about-to-expire view still counts (clocks differ a little).
  PeerView edge{"ctl-d", now - std::chrono::seconds(16), std::chrono::seconds(15), {{"n4", "", 0}}};
  EXPECT_EQ(MergeDataplaneViews({}, {edge}, now).size(), 1u);
  // An entry that has ACKed beats one that has not.
  auto m2 = MergeDataplaneViews({{"n1", "192.0.2.1", 0}}, {live}, now);
  EXPECT_EQ(m2[0].acked_version, 5u);
  // Own view only; empty cluster.
  EXPECT_EQ(MergeDataplaneViews(own, {}, now).size(), 1u);
  EXPECT_TRUE(MergeDataplaneViews({}, {}, now).empty());
  EXPECT_TRUE(MergeDataplaneViews({}, {expired}, now).empty());
}

TEST(DataplaneViewTest, LeaseRoundTripAndNames) {
  json lease = {{"metadata",
                 {{"name", "x"},
                  {"annotations",
                   {{kViewAnnotation, DataplaneViewJson({{"n2", "192.0.2.2", 9007199254740991ULL}, {"n1", "", 0}}).dump()}}}}},
                {"spec",
                 {{"holderIdentity", "ctl-b"},
                  {"leaseDurationSeconds", 15},
                  {"renewTime", "2024-05-01T12:00:00.250000Z"}}}};
  EXPECT_EQ(lease["metadata"]["annotations"][kViewAnnotation],
            R"([{"ackedVersion":0,"address":"","node":"n1"},{"ackedVersion":9007199254740991,"address":"192.0.2.2","node":"n2"}])");
  auto v = ParsePeerView(lease);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->identity, "ctl-b");
  EXPECT_EQ(v->duration, std::chrono::seconds(15));
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(v->renew_time.time_since_epoch()).count(),
            1714564800250);
  ASSERT_EQ(v->dataplanes.size(), 2u);
  EXPECT_EQ(v->dataplanes[1].acked_version, 9007199254740991ULL);
  lease["spec"]["renewTime"] = "garbage";
  EXPECT_FALSE(ParsePeerView(lease));
  EXPECT_FALSE(ParseKubeTime("2024-05-01T12:00:00"));
  EXPECT_TRUE(ParseKubeTime("2024-05-01T12:00:00Z"));

  EXPECT_EQ(ViewLeaseName("doorman-controller", "ctl-a"), "doorman-controller-view-ctl-a");
  const std::string odd = ViewLeaseName("doorman-controller", "Host_Name.example_123");
  EXPECT_NE(odd, ViewLeaseName("doorman-controller", "host-name-example-123"));
  const std::string longer = ViewLeaseName("doorman-controller", std::string(80, 'a'));
  EXPECT_LE(longer.size(), 63u);
  EXPECT_NE(longer, ViewLeaseName("doorman-controller", std::string(81, 'a')));
  for (const auto& n : {odd, longer}) {
    for (char c : n) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') << n;
    EXPECT_NE(n.back(), '-');
  }
}

TEST(StatusTest, MergePatchRemovesKeysWithNullAndReplacesArrays) {
  json from = {{"a", 1}, {"b", {{"x", 1}, {"y", 2}}}, {"c", json::array({1, 2})}, {"gone", true}};
  json to = {{"a", 1}, {"b", {{"x", 1}, {"z", 3}}}, {"c", json::array({2})}, {"new", "v"}};
  EXPECT_EQ(CreateMergePatch(from, to),
            json::parse(R"({"b":{"y":null,"z":3},"c":[2],"gone":null,"new":"v"})"));
  EXPECT_EQ(CreateMergePatch(to, to), json::object());
  EXPECT_EQ(StatusPatch(nullptr, {{"k", 1}}, "42"),
            json::parse(R"({"metadata":{"resourceVersion":"42"},"status":{"k":1}})"));
  const json with_ingress = json::parse(R"({"loadBalancer":{"ingress":[{"ip":"1.2.3.4"}]}})");
  EXPECT_EQ(StatusPatch(with_ingress, json::parse(R"({"loadBalancer":{}})"), "7")["status"],
            json::parse(R"({"loadBalancer":{"ingress":null}})"));
}

TEST(StatusTest, WarningEventHasADeterministicNameAndInvolvedObject) {
  ObjectStatus st = Accepted("shop", 3);
  st.accepted = false;
  st.reason = "PortConflict";
  st.message = "spec.listeners[0].port: 8080/TCP is used by LoadBalancer default/older";
  json obj = {{"metadata", {{"name", "shop"}, {"namespace", "default"}, {"uid", "u-1"}, {"resourceVersion", "9"}}}};
  json e = WarningEvent(st, obj, "doorman.dev/v1alpha1", "ctl-a", "T");
  EXPECT_EQ(e["type"], "Warning");
  EXPECT_EQ(e["reason"], "PortConflict");
  EXPECT_EQ(e["message"], st.message);
  EXPECT_EQ(e["count"], 1);
  EXPECT_EQ(e["metadata"]["namespace"], "default");
  EXPECT_EQ(e["involvedObject"],
            json::parse(R"({"apiVersion":"doorman.dev/v1alpha1","kind":"LoadBalancer","name":"shop","namespace":"default","uid":"u-1","resourceVersion":"9"})"));
  EXPECT_EQ(e["reportingInstance"], "ctl-a");
  // A cluster-scoped object's Event goes to "default", whatever namespace the controller watches:
  // the API server refuses (422) an Event without eventTime whose involved object has no
  // namespace in any namespace but "" and "default" (legacyValidateEvent).
  ObjectStatus cls = st;
  cls.key = {"IngressClass", "", "doorman"};
  const json cluster = WarningEvent(cls, obj, "networking.k8s.io/v1", "ctl-a", "T");
  EXPECT_EQ(cluster["metadata"]["namespace"], "default");
  EXPECT_FALSE(cluster["involvedObject"].contains("namespace"));
  EXPECT_FALSE(cluster.contains("eventTime"));
  const std::string name = e["metadata"]["name"];
  EXPECT_EQ(name.rfind("shop.", 0), 0u);
  EXPECT_EQ(WarningEvent(st, obj, "doorman.dev/v1alpha1", "ctl-b", "T2")["metadata"]["name"], name);  // same problem
  st.message = "something else";
  EXPECT_NE(WarningEvent(st, obj, "doorman.dev/v1alpha1", "ctl-a", "T")["metadata"]["name"], name);
  EXPECT_EQ(EventRepeatPatch({{"count", 4}}, "T5"), json::parse(R"({"count":5,"lastTimestamp":"T5"})"));
  st.message = std::string(5000, 'x');
  EXPECT_EQ(WarningEvent(st, obj, "v", "i", "T")["message"].get<std::string>().size(), 1024u);
  // Still routing its last good version: said (a Service has no condition to say it), and never
  // clipped away.
  ObjectStatus kept = st;
  kept.serving_last_good = true;
  kept.serving_generation = 2;
  const std::string long_note = WarningEvent(kept, obj, "v", "i", "T")["message"];
  EXPECT_LE(long_note.size(), 1024u);
  const std::string note = "... (still routing generation 2, the last accepted one)";
  ASSERT_GE(long_note.size(), note.size());
  EXPECT_EQ(long_note.substr(long_note.size() - note.size()), note) << long_note;
  kept.message = "metadata.annotations[doorman.dev/scheduler]: unknown scheduler \"bogus\"";
  EXPECT_EQ(WarningEvent(kept, obj, "v", "i", "T")["message"],
            kept.message + " (still routing generation 2, the last accepted one)");
  // The refused edit left the generation alone (an annotation), or the kind has none (a
  // Service): no generation names the version still routed (helper-81).
  kept.generation = 2;
  EXPECT_EQ(WarningEvent(kept, obj, "v", "i", "T")["message"], kept.message + " (still routing its last accepted version)");
  kept.generation = 0;
  kept.serving_generation = 0;
  EXPECT_EQ(WarningEvent(kept, obj, "v", "i", "T")["message"], kept.message + " (still routing its last accepted version)");
  // Clipped at a character boundary: a cut through "é" would be invalid UTF-8, which the JSON
  // encoder refuses (it threw, from the status writer).
  st.message.clear();
  for (int i = 0; i < 1000; ++i) st.message += "\xc3\xa9";  // "é" × 1000: byte 1021 is inside one
  const std::string clipped = WarningEvent(st, obj, "v", "i", "T")["message"];
  EXPECT_EQ(clipped.size(), 1023u);  // 510 × "é" + "..."
  EXPECT_EQ(clipped.substr(clipped.size() - 5), "\xc3\xa9...");
  EXPECT_NO_THROW(WarningEvent(st, obj, "v", "i", "T").dump());
  // A 253-character object name still gives a valid (<= 253) Event name.
  st.key.name = std::string(253, 'a');
  const std::string long_name = WarningEvent(st, obj, "v", "i", "T")["metadata"]["name"];
  EXPECT_EQ(long_name.size(), 253u);
  // Cut where a label ends ('-' or '.' at the cut): the stem still ends with an alphanumeric.
  std::string labels;  // DNS labels of 58 characters: ".", then a label, at index 235
  while (labels.size() < 235) labels += std::string(58, 'a') + ".";
  labels.resize(235);
  for (const char* tail : {"-bbbbbbbbbb", ".bbbbbbbbbb", "-.bbbbbbbbb"}) {
    st.key.name = labels + tail;
    const std::string cut = WarningEvent(st, obj, "v", "i", "T")["metadata"]["name"];
    EXPECT_LE(cut.size(), 253u) << tail;
    EXPECT_TRUE(IsDns1123Subdomain(cut)) << cut;
  }
  EXPECT_EQ(long_name.rfind(std::string(236, 'a') + ".", 0), 0u);
}

TEST(StatusTest, HostnameAddresses) {
  EXPECT_TRUE(IsIpAddress("192.0.2.1"));
  EXPECT_TRUE(IsIpAddress("2001:db8::1"));
  EXPECT_FALSE(IsIpAddress("lb.example.com"));
  EXPECT_EQ(LoadBalancerAddresses({{"n", "lb.example.com", 0}}),
            json::parse(R"([{"type":"Hostname","value":"lb.example.com"}])"));
}

// The last-good Lease: objects reduced to what the translator reads, left out largest first when
// over budget, read back by key; adopted only for the same uid and a generation not newer.
TEST(LastGoodLease, RoundTripsStripsAndFitsTheBudget) {
  auto object = [](const std::string& name, const std::string& uid, int64_t generation, size_t pad) {
    return json{{"apiVersion", "doorman.dev/v1alpha1"},
                {"kind", "LoadBalancer"},
                {"metadata",
                 {{"name", name},
                  {"namespace", "default"},
                  {"uid", uid},
                  {"generation", generation},
                  {"resourceVersion", "77"},
                  {"managedFields", json::array({{{"manager", "kubectl"}}})},
                  {"annotations",
                   {{"kubectl.kubernetes.io/last-applied-configuration", "{...}"}, {"doorman.dev/x", std::string(pad, 'p')}}}}},
                {"spec", {{"listeners", json::array()}}},
                {"status", {{"conditions", json::array()}}}};
  };
  const ObjectKey small{"LoadBalancer", "default", "small"}, big{"LoadBalancer", "default", "big"},
      ing{"Ingress", "ns-1", "web"};
  std::map<ObjectKey, json> in = {{small, object("small", "u1", 3, 10)},
                                  {big, object("big", "u2", 1, 4000)},
                                  {ing, object("web", "u3", 2, 10)}};
  std::vector<ObjectKey> left_out;
  const std::string all = LastGoodAnnotation(in, kLastGoodBudgetBytes, &left_out);
  EXPECT_TRUE(left_out.empty());
  const json lease = {{"metadata", {{"annotations", {{kLastGoodAnnotation, all}}}}}};
  const auto back = ParseLastGood(lease);
  ASSERT_EQ(back.size(), 3u);
  const json& s = back.at(small);
  EXPECT_FALSE(s.contains("status"));
  EXPECT_FALSE(s["metadata"].contains("managedFields"));
  EXPECT_FALSE(s["metadata"].contains("resourceVersion"));
  EXPECT_FALSE(s["metadata"]["annotations"].contains("kubectl.kubernetes.io/last-applied-configuration"));
  EXPECT_EQ(s["metadata"]["annotations"]["doorman.dev/x"], std::string(10, 'p'));
  EXPECT_EQ(s["spec"], in.at(small)["spec"]);
  EXPECT_EQ(back.at(ing)["metadata"]["name"], "web");  // the key "Ingress/ns-1/web" read back

  left_out.clear();
  const auto fitted = ParseLastGood({{"metadata", {{"annotations", {{kLastGoodAnnotation, LastGoodAnnotation(in, 2000, &left_out)}}}}}});
  EXPECT_EQ(left_out, std::vector<ObjectKey>{big});
  EXPECT_EQ(fitted.size(), 2u);
  EXPECT_EQ(fitted.count(big), 0u);

  EXPECT_TRUE(ParseLastGood(json{{"metadata", {{"annotations", {{kLastGoodAnnotation, "not json"}}}}}}).empty());
  EXPECT_TRUE(ParseLastGood(json{{"metadata", {{"annotations", {{kLastGoodAnnotation, R"({"no-slashes": {}})"}}}}}}).empty());
  EXPECT_TRUE(ParseLastGood(json::object()).empty());

  // Seeds: same uid and a generation not newer than the store's.
  std::map<ObjectKey, StoredObject> store;
  store[small] = StoredObject{object("small", "u1", 4, 0), {}, ""};  // edited since: adopted
  store[big] = StoredObject{object("big", "other-uid", 1, 0), {}, ""};  // re-created: not
  store[ing] = StoredObject{object("web", "u3", 1, 0), {}, ""};        // older than saved?: not
  const auto seeds = LastGoodSeeds(back, store);
  ASSERT_EQ(seeds.size(), 1u);
  EXPECT_EQ(seeds.begin()->first, small);
  EXPECT_TRUE(LastGoodSeeds(back, {}).empty());  // deleted
}

}  // namespace
}  // namespace doorman::controller::status
