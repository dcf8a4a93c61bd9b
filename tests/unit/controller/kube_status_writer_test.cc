// StatusWriter against a scripted fake KubeHttp: writes only differences, merge patch with
// resourceVersion, 409 → re-read and recompute, Events once (409 → count+1), 429 → pause.
#include <gtest/gtest.h>

#include <deque>

#include "controller/kube/status_writer.h"

namespace doorman::controller::kube {
namespace {

using nlohmann::json;

struct Call {
  std::string method, path, body, content_type;
};

class FakeHttp : public KubeHttp {
 public:
  HttpResponse Request(const std::string& method, const std::string& path, const std::string& body,
                       const std::string& content_type) override {
    calls.push_back({method, path, body, content_type});
    if (script.empty()) return {200, "{}", std::nullopt, ""};
    HttpResponse r = script.front();
    script.pop_front();
    return r;
  }
  HttpResponse Stream(const std::string&, const std::function<bool(std::string_view)>&, bool*) override { return {}; }
  void Cancel() override {}

  std::vector<Call> calls;
  std::deque<HttpResponse> script;
};

ObjectStatus Lb(bool accepted) {
  ObjectStatus st;
  st.key = {"LoadBalancer", "default", "shop"};
  st.generation = 1;
  st.serving_generation = 1;
  st.accepted = accepted;
  st.reason = accepted ? "Accepted" : "InvalidSpec";
  st.message = accepted ? "" : "spec.routes[0].listener: unknown listener \"x\"";
  st.listeners = {{"web", 1}};
  return st;
}

ObjectStatus Svc() {
  ObjectStatus st;
  st.key = {"Service", "default", "shop"};
  st.generation = 1;
  st.serving_generation = 1;
  st.accepted = true;
  return st;
}

// One Service served by one dataplane at 192.0.2.1.
StatusInputs ServiceIn() {
  StatusInputs in;
  in.statuses = {Svc()};
  in.dataplanes = {{"n1", "192.0.2.1", 5}};
  return in;
}

json Object(const std::string& rv, json status = nullptr) {
  json o = {{"metadata", {{"name", "shop"}, {"namespace", "default"}, {"uid", "u1"}, {"resourceVersion", rv}, {"generation", 1}}}};
  if (!status.is_null()) o["status"] = status;
  return o;
}

class StatusWriterTest : public ::testing::Test {
 protected:
  FakeHttp http_;
  json cached_ = Object("10");
  StatusWriter writer_{&http_, [this](const ObjectKey&) -> std::optional<json> { return cached_; }, "ctl-a"};
  status::ServedGenerations served_;
  StatusInputs In(bool accepted) {
    StatusInputs in;
    in.statuses = {Lb(accepted)};
    in.dataplanes = {{"n1", "192.0.2.1", 5}};
    served_.Record(5, status::ServedBy(in.statuses));
    in.served = &served_;
    return in;
  }
};

TEST_F(StatusWriterTest, WritesOnceWithMergePatchGuardedByResourceVersion) {
  ASSERT_TRUE(writer_.Sync(In(true)));
  ASSERT_EQ(http_.calls.size(), 1u);
  const Call& c = http_.calls[0];
  EXPECT_EQ(c.method, "PATCH");
  EXPECT_EQ(c.path, "/apis/doorman.dev/v1alpha1/namespaces/default/loadbalancers/shop/status");
  EXPECT_EQ(c.content_type, "application/merge-patch+json");
  json patch = json::parse(c.body);
  EXPECT_EQ(patch["metadata"]["resourceVersion"], "10");
  EXPECT_EQ(patch["status"]["dataplanes"], json({{"ready", 1}, {"programmed", 1}}));
  // The informer has not seen our write yet: no second write.
  ASSERT_TRUE(writer_.Sync(In(true)));
  EXPECT_EQ(http_.calls.size(), 1u);
  // It has: the object carries exactly the desired status → nothing to do.
  cached_ = Object("11", patch["status"]);
  ASSERT_TRUE(writer_.Sync(In(true)));
  EXPECT_EQ(http_.calls.size(), 1u);
}

// The desired status's conditions are stamped "now" (lastTransitionTime, seconds). A pass that
// runs a second later, before the informer saw our write, must not write the same status again.
TEST_F(StatusWriterTest, AWriteTheInformerHasNotSeenIsNotRepeatedASecondLater) {
  auto wall = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  StatusWriterOptions options;
  options.wall_now = [&wall] { return wall; };
  StatusWriter writer(&http_, [this](const ObjectKey&) -> std::optional<json> { return cached_; }, "ctl-a", options);
  ASSERT_TRUE(writer.Sync(In(true)));
  ASSERT_EQ(http_.calls.size(), 1u);
  const json first = json::parse(http_.calls[0].body);
  ASSERT_TRUE(first["status"].contains("conditions"));
  wall += std::chrono::seconds(1);
  ASSERT_TRUE(writer.Sync(In(true)));
  EXPECT_EQ(http_.calls.size(), 1u);
  // A different status is still written at once.
  ASSERT_TRUE(writer.Sync(In(false)));
  EXPECT_GT(http_.calls.size(), 1u);
  EXPECT_EQ(http_.calls.back().method, "PATCH");
}

TEST_F(StatusWriterTest, NeverAcceptedLoadBalancerHasNoAddresses) {
  ASSERT_TRUE(writer_.Sync(In(false)));  // not accepted, no last good version: routes nothing
  ASSERT_EQ(http_.calls.size(), 2u);      // the Warning Event, then the status
  json patch = json::parse(http_.calls[1].body);
  EXPECT_EQ(patch["status"]["addresses"], json::array());
  // Accepted: the dataplanes' addresses.
  ASSERT_TRUE(writer_.Sync(In(true)));
  patch = json::parse(http_.calls.back().body);
  EXPECT_EQ(patch["status"]["addresses"], json::parse(R"([{"type":"IPAddress","value":"192.0.2.1"}])"));
}

// A Service this controller stops serving (type, class or annotation changed) loses the ingress
// points the controller wrote; points another controller wrote meanwhile are left alone.
TEST_F(StatusWriterTest, ServiceNoLongerServedHasItsAddressesCleared) {
  const ObjectStatus svc = Svc();
  StatusInputs in = ServiceIn();
  ASSERT_TRUE(writer_.Sync(in));
  ASSERT_EQ(http_.calls.size(), 1u);
  json patch = json::parse(http_.calls[0].body);
  EXPECT_EQ(patch["status"]["loadBalancer"]["ingress"], json::parse(R"([{"ip":"192.0.2.1","ipMode":"Proxy"}])"));
  cached_ = Object("11", patch["status"]);
  // No longer claimed: one patch removes the points, guarded by the resourceVersion.
  in.statuses.clear();
  ASSERT_TRUE(writer_.Sync(in));
  ASSERT_EQ(http_.calls.size(), 2u);
  EXPECT_EQ(http_.calls[1].path, "/api/v1/namespaces/default/services/shop/status");
  patch = json::parse(http_.calls[1].body);
  EXPECT_TRUE(patch["status"]["loadBalancer"]["ingress"].is_null());
  EXPECT_EQ(patch["metadata"]["resourceVersion"], "11");
  // Released once: later passes write nothing.
  cached_ = Object("12", json{{"loadBalancer", json::object()}});
  ASSERT_TRUE(writer_.Sync(in));
  EXPECT_EQ(http_.calls.size(), 2u);

  // Claimed again, then handed to another controller that already wrote its own address.
  in.statuses = {svc};
  ASSERT_TRUE(writer_.Sync(in));
  const size_t before = http_.calls.size();
  cached_ = Object("14", json{{"loadBalancer", {{"ingress", json::parse(R"([{"ip":"198.51.100.7"}])")}}}});
  in.statuses.clear();
  ASSERT_TRUE(writer_.Sync(in));
  EXPECT_EQ(http_.calls.size(), before);
}

// A LoadBalancer no longer claimed (its class, or its labels under --loadbalancer-selector,
// changed) loses the status this controller wrote (helper-123: it kept Accepted, Programmed and
// our addresses). Out of the cache (a selector filters the watch) it is read from the API first.
TEST_F(StatusWriterTest, LoadBalancerNoLongerClaimedHasItsStatusRemoved) {
  std::optional<json> cached = cached_;
  StatusWriter writer{&http_, [&cached](const ObjectKey&) { return cached; }, "ctl-a"};
  StatusInputs in = In(true);
  ASSERT_TRUE(writer.Sync(in));
  ASSERT_EQ(http_.calls.size(), 1u);
  const json written = json::parse(http_.calls[0].body)["status"];
  EXPECT_EQ(written["addresses"][0]["value"], "192.0.2.1");
  cached = Object("11", written);
  // Its class changed: still in the cache, not in the statuses.
  in.statuses.clear();
  ASSERT_TRUE(writer.Sync(in));
  ASSERT_EQ(http_.calls.size(), 2u);
  EXPECT_EQ(http_.calls[1].method, "PATCH");
  EXPECT_EQ(http_.calls[1].path, "/apis/doorman.dev/v1alpha1/namespaces/default/loadbalancers/shop/status");
  json patch = json::parse(http_.calls[1].body);
  EXPECT_TRUE(patch.contains("status") && patch["status"].is_null());
  EXPECT_EQ(patch["metadata"]["resourceVersion"], "11");
  ASSERT_TRUE(writer.Sync(in));  // released once
  EXPECT_EQ(http_.calls.size(), 2u);

  // Claimed again, then relabelled out of the selector: gone from the cache, read, released.
  cached = Object("12");
  in = In(true);
  ASSERT_TRUE(writer.Sync(in));
  ASSERT_EQ(http_.calls.size(), 3u);
  const json again = json::parse(http_.calls[2].body)["status"];
  cached.reset();
  in.statuses.clear();
  http_.script = {{200, Object("13", again).dump(), std::nullopt, ""}, {200, "{}", std::nullopt, ""}};
  ASSERT_TRUE(writer.Sync(in));
  ASSERT_EQ(http_.calls.size(), 5u);
  EXPECT_EQ(http_.calls[3].method, "GET");
  EXPECT_EQ(http_.calls[4].method, "PATCH");
  EXPECT_EQ(json::parse(http_.calls[4].body)["metadata"]["resourceVersion"], "13");

  // Deleted (the GET says 404): nothing to write. Another controller's status: left alone.
  cached = Object("14");
  in = In(true);
  ASSERT_TRUE(writer.Sync(in));
  cached.reset();
  in.statuses.clear();
  http_.calls.clear();
  http_.script = {{404, R"({"code":404})", std::nullopt, ""}};
  ASSERT_TRUE(writer.Sync(in));
  ASSERT_EQ(http_.calls.size(), 1u);
  EXPECT_EQ(http_.calls[0].method, "GET");
  cached = Object("15");
  in = In(true);
  ASSERT_TRUE(writer.Sync(in));
  // A new leader (a fresh writer) that finds the status already as it would write it, and so
  // writes nothing, still releases it when the object leaves (helper-133).
  {
    ASSERT_EQ(http_.calls.back().method, "PATCH");  // the old leader wrote it
    cached = Object("15a", json::parse(http_.calls.back().body)["status"]);
    StatusWriter leader{&http_, [&cached](const ObjectKey&) { return cached; }, "ctl-b"};
    StatusInputs claimed = In(true);
    http_.calls.clear();
    ASSERT_TRUE(leader.Sync(claimed));
    EXPECT_TRUE(http_.calls.empty());  // nothing to write
    claimed.statuses.clear();
    ASSERT_TRUE(leader.Sync(claimed));
    ASSERT_EQ(http_.calls.size(), 1u);
    EXPECT_TRUE(json::parse(http_.calls[0].body)["status"].is_null());
    writer.Reset();
  }
  cached = Object("15");
  in = In(true);
  ASSERT_TRUE(writer.Sync(in));
  // Another install whose dataplanes advertise the same node address (helper-128): its status is
  // not ours, though its addresses are; with no dataplane in view either.
  json theirs = json::parse(http_.calls.back().body)["status"];
  theirs["observedGeneration"] = 7;
  // Our dataplanes are gone for a pass (a rollout) while it moves, and back for the next.
  cached = Object("16", theirs);
  in.statuses.clear();
  const auto dataplanes = in.dataplanes;
  in.dataplanes.clear();
  http_.calls.clear();
  ASSERT_TRUE(writer.Sync(in));
  in.dataplanes = dataplanes;
  ASSERT_TRUE(writer.Sync(in));
  EXPECT_TRUE(http_.calls.empty());
}

// An API server that drops ipMode (Kubernetes before 1.30): the answer to our own write shows the
// status stored without it. The writer then stops asking for it (rather than patching forever),
// still releases the points it wrote, and asks again after a leadership change.
TEST_F(StatusWriterTest, ServiceIpModeIsDroppedWhenTheApiServerDoesNotKeepIt) {
  StatusInputs in = ServiceIn();
  const json stored = json::parse(R"({"loadBalancer":{"ingress":[{"ip":"192.0.2.1"}]}})");
  http_.script = {{200, Object("11", stored).dump(), std::nullopt, ""}};
  ASSERT_TRUE(writer_.Sync(in));
  ASSERT_EQ(http_.calls.size(), 1u);
  EXPECT_EQ(json::parse(http_.calls[0].body)["status"]["loadBalancer"]["ingress"][0]["ipMode"], "Proxy");
  for (int pass = 0; pass < 2; ++pass) ASSERT_TRUE(writer_.Sync(in));  // the informer has not caught up
  cached_ = Object("11", stored);
  for (int pass = 0; pass < 2; ++pass) ASSERT_TRUE(writer_.Sync(in));
  EXPECT_EQ(http_.calls.size(), 1u) << http_.calls.back().body;
  // A new address is written without ipMode from now on.
  in.dataplanes.push_back({"n2", "192.0.2.2", 5});
  ASSERT_TRUE(writer_.Sync(in));
  ASSERT_EQ(http_.calls.size(), 2u);
  const json two = json::parse(http_.calls[1].body)["status"];
  EXPECT_EQ(two["loadBalancer"]["ingress"], json::parse(R"([{"ip":"192.0.2.1"},{"ip":"192.0.2.2"}])"));
  // No longer served: the points it wrote are released, though stored without ipMode.
  cached_ = Object("12", two);
  in.statuses.clear();
  ASSERT_TRUE(writer_.Sync(in));
  ASSERT_EQ(http_.calls.size(), 3u);
  EXPECT_TRUE(json::parse(http_.calls[2].body)["status"]["loadBalancer"]["ingress"].is_null());
  // After a leadership change it is asked for again (the API server may have been upgraded).
  writer_.Reset();
  cached_ = Object("13", stored);
  in = ServiceIn();
  ASSERT_TRUE(writer_.Sync(in));
  ASSERT_EQ(http_.calls.size(), 4u);
  EXPECT_EQ(json::parse(http_.calls[3].body)["status"]["loadBalancer"]["ingress"][0]["ipMode"], "Proxy");
}

// Someone else removing ipMode from one Service's status (kubectl patch, a restore) says nothing
// about the API server: the writer puts it back and keeps writing it.
TEST_F(StatusWriterTest, AForeignWriteWithoutIpModeIsRepaired) {
  StatusInputs in = ServiceIn();
  ASSERT_TRUE(writer_.Sync(in));
  ASSERT_EQ(http_.calls.size(), 1u);
  cached_ = Object("12", json::parse(R"({"loadBalancer":{"ingress":[{"ip":"192.0.2.1"}]}})"));
  ASSERT_TRUE(writer_.Sync(in));
  ASSERT_EQ(http_.calls.size(), 2u);
  EXPECT_EQ(json::parse(http_.calls[1].body)["status"]["loadBalancer"]["ingress"][0]["ipMode"], "Proxy");
}

TEST_F(StatusWriterTest, ConflictRereadsAndRecomputes) {
  http_.script = {{409, R"({"kind":"Status","code":409,"message":"the object has been modified"})", std::nullopt, ""},
                  {200, Object("12", {{"foreign", "x"}}).dump(), std::nullopt, ""},
                  {200, "{}", std::nullopt, ""}};
  ASSERT_TRUE(writer_.Sync(In(true)));
  ASSERT_EQ(http_.calls.size(), 3u);
  EXPECT_EQ(http_.calls[1].method, "GET");
  EXPECT_EQ(http_.calls[1].path, "/apis/doorman.dev/v1alpha1/namespaces/default/loadbalancers/shop");
  json patch = json::parse(http_.calls[2].body);
  EXPECT_EQ(patch["metadata"]["resourceVersion"], "12");
  EXPECT_TRUE(patch["status"]["foreign"].is_null());  // the re-read status is what gets replaced
}

TEST_F(StatusWriterTest, WarningEventOnceAndRepeatsCounted) {
  ASSERT_TRUE(writer_.Sync(In(false)));
  ASSERT_EQ(http_.calls.size(), 2u);
  EXPECT_EQ(http_.calls[0].method, "POST");
  EXPECT_EQ(http_.calls[0].path, "/api/v1/namespaces/default/events");
  json ev = json::parse(http_.calls[0].body);
  EXPECT_EQ(ev["reason"], "InvalidSpec");
  EXPECT_EQ(ev["involvedObject"]["uid"], "u1");
  EXPECT_EQ(http_.calls[1].method, "PATCH");  // status: Accepted=False
  EXPECT_EQ(json::parse(http_.calls[1].body)["status"]["conditions"][0]["status"], "False");
  cached_ = Object("11", json::parse(http_.calls[1].body)["status"]);
  ASSERT_TRUE(writer_.Sync(In(false)));
  EXPECT_EQ(http_.calls.size(), 2u);  // no Event or status storm

  // This replica loses and regains the Lease (an API slowdown): the status is checked again, but
  // an Event it already sent is not sent again (its count would grow with every slowdown).
  writer_.Reset();
  http_.calls.clear();
  ASSERT_TRUE(writer_.Sync(In(false)));
  for (const auto& c : http_.calls) EXPECT_EQ(c.path.find("/events"), std::string::npos) << c.method << " " << c.path;

  // A new leader (another replica: fresh writer state) reports the same problem: the Event
  // exists → count + 1.
  StatusWriter other{&http_, [this](const ObjectKey&) -> std::optional<json> { return cached_; }, "ctl-b"};
  http_.calls.clear();
  http_.script = {{409, R"({"code":409,"reason":"AlreadyExists"})", std::nullopt, ""},
                  {200, R"({"count": 3})", std::nullopt, ""},
                  {200, "{}", std::nullopt, ""}};
  ASSERT_TRUE(other.Sync(In(false)));
  ASSERT_EQ(http_.calls.size(), 3u);
  EXPECT_EQ(http_.calls[1].method, "GET");
  EXPECT_EQ(http_.calls[1].path, "/api/v1/namespaces/default/events/" + ev["metadata"]["name"].get<std::string>());
  EXPECT_EQ(http_.calls[2].method, "PATCH");
  EXPECT_EQ(json::parse(http_.calls[2].body)["count"], 4);
}

// A Service or Ingress whose listener a dataplane could not open (its port is held, or below 1024
// without NET_BIND_SERVICE) has no condition to say so: it gets a ListenerNotServed Warning Event
// once every dataplane runs its generation, and none while one still runs an older version.
TEST_F(StatusWriterTest, AServiceListenerNotOpenedIsAWarningEvent) {
  StatusInputs in = ServiceIn();
  in.statuses[0].listeners = {{"tcp-80", 1, "tcp-80"}};
  in.dataplanes = {{"n1", "192.0.2.1", 5, {"tcp-80"}}, {"n2", "192.0.2.2", 4, {}}};
  served_.Record(5, status::ServedBy(in.statuses));
  in.served = &served_;
  auto events = [this] {
    std::vector<json> out;
    for (const auto& c : http_.calls) {
      if (c.path.find("/events") != std::string::npos && c.method == "POST") out.push_back(json::parse(c.body));
    }
    return out;
  };
  ASSERT_TRUE(writer_.Sync(in));
  EXPECT_TRUE(events().empty());  // n2 still runs version 4
  in.dataplanes[1].acked_version = 5;
  ASSERT_TRUE(writer_.Sync(in));
  ASSERT_EQ(events().size(), 1u);
  EXPECT_EQ(events()[0]["reason"], "ListenerNotServed");
  EXPECT_NE(events()[0]["message"].get<std::string>().find("listener \"tcp-80\" (tcp-80) could not be opened on n1"),
            std::string::npos)
      << events()[0]["message"];
  EXPECT_EQ(events()[0]["involvedObject"]["kind"], "Service");
  // The Service is edited and its new generation rolls out (n2 first, n1 still on 5), then both
  // run it and the port is still held: the same report, no second Event (it once counted again
  // after every rollout of the object).
  ++in.statuses[0].generation;
  served_.Record(6, status::ServedBy(in.statuses));
  in.dataplanes[1].acked_version = 6;
  ASSERT_TRUE(writer_.Sync(in));
  in.dataplanes[0].acked_version = 6;
  ASSERT_TRUE(writer_.Sync(in));
  EXPECT_EQ(events().size(), 1u);
  std::size_t event_calls = 0;
  for (const auto& c : http_.calls) event_calls += c.path.find("/events") != std::string::npos;
  EXPECT_EQ(event_calls, 1u);  // the first POST, no count bump
  // Opened on retry: no further Event.
  in.dataplanes[0].unserved_listeners.clear();
  ASSERT_TRUE(writer_.Sync(in));
  EXPECT_EQ(events().size(), 1u);
}

// Warnings of an accepted object (declared but without effect) are a Warning Event too, once;
// the object stays Accepted.
TEST_F(StatusWriterTest, WarningsOfAnAcceptedObjectAreAnEventOnce) {
  StatusInputs in = In(true);
  in.statuses[0].warnings = {
      {"HealthCheckNotRun", "spec.healthCheck", "backend set default/shop/r/0: this health check is not run"},
      {"BackendNotFound", "spec.routes[0].backends[1].service", "Service default/api not found"}};
  ASSERT_TRUE(writer_.Sync(in));
  ASSERT_EQ(http_.calls.size(), 2u);
  EXPECT_EQ(http_.calls[0].method, "POST");
  EXPECT_EQ(http_.calls[0].path, "/api/v1/namespaces/default/events");
  const json ev = json::parse(http_.calls[0].body);
  EXPECT_EQ(ev["type"], "Warning");
  EXPECT_EQ(ev["reason"], "HealthCheckNotRun");
  const std::string msg = ev["message"];
  EXPECT_NE(msg.find("spec.healthCheck: backend set default/shop/r/0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Service default/api not found (BackendNotFound)"), std::string::npos) << msg;
  const json status = json::parse(http_.calls[1].body)["status"];
  EXPECT_EQ(status["conditions"][0]["type"], "Accepted");
  EXPECT_EQ(status["conditions"][0]["status"], "True");
  cached_ = Object("11", status);
  ASSERT_TRUE(writer_.Sync(in));
  EXPECT_EQ(http_.calls.size(), 2u);  // the same warnings: no second Event
  // Without warnings nothing more is written.
  ASSERT_TRUE(writer_.Sync(In(true)));
  EXPECT_EQ(http_.calls.size(), 2u);
}

TEST_F(StatusWriterTest, LostLeadershipStopsAPassBeforeTheNextWrite) {
  StatusInputs in = In(false);  // an Event and a status write would follow
  in.may_write = [] { return false; };
  EXPECT_FALSE(writer_.Sync(in));
  EXPECT_TRUE(http_.calls.empty());
  int asked = 0;
  in.may_write = [&asked] { return ++asked == 1; };  // leader for the first object only
  in.statuses.push_back(Lb(true));
  in.statuses.back().key.name = "other";
  EXPECT_FALSE(writer_.Sync(in));
  EXPECT_EQ(asked, 2);
  for (const auto& c : http_.calls) EXPECT_EQ(c.path.find("/other"), std::string::npos) << c.path;
}

// A 409's re-read (or an existing Event's read) can take long: a replica that lost the Lease
// meanwhile stops there, and does not write its stale view over the new leader's (helper-123).
TEST_F(StatusWriterTest, LeadershipIsAskedAgainAfterARead) {
  StatusInputs in = In(true);
  bool leader = true;
  in.may_write = [&leader] { return leader; };
  http_.script = {{409, R"({"code":409})", std::nullopt, ""}, {200, Object("12").dump(), std::nullopt, ""}};
  // The Lease is lost while the re-read is in flight.
  struct LosesOnRead : KubeHttp {
    FakeHttp* inner;
    bool* leader;
    HttpResponse Request(const std::string& m, const std::string& p, const std::string& b, const std::string& ct) override {
      if (m == "GET") *leader = false;
      return inner->Request(m, p, b, ct);
    }
    HttpResponse Stream(const std::string&, const std::function<bool(std::string_view)>&, bool*) override { return {}; }
    void Cancel() override {}
  } http;
  http.inner = &http_;
  http.leader = &leader;
  StatusWriter writer{&http, [this](const ObjectKey&) -> std::optional<json> { return cached_; }, "ctl-b"};
  EXPECT_FALSE(writer.Sync(in));
  ASSERT_EQ(http_.calls.size(), 2u);
  EXPECT_EQ(http_.calls[0].method, "PATCH");
  EXPECT_EQ(http_.calls[1].method, "GET");  // and no second PATCH

  // An Event that exists (POST 409): its read is followed by no count bump once the Lease is gone.
  leader = true;
  http_.calls.clear();
  http_.script = {{409, R"({"code":409,"reason":"AlreadyExists"})", std::nullopt, ""},
                  {200, R"({"count": 3})", std::nullopt, ""}};
  StatusWriter again{&http, [this](const ObjectKey&) -> std::optional<json> { return cached_; }, "ctl-b"};
  StatusInputs ev_in = In(false);
  ev_in.may_write = [&leader] { return leader; };
  EXPECT_FALSE(again.Sync(ev_in));
  ASSERT_EQ(http_.calls.size(), 2u);
  EXPECT_EQ(http_.calls[0].method, "POST");
  EXPECT_EQ(http_.calls[1].method, "GET");
}

TEST_F(StatusWriterTest, TooManyRequestsPausesWriting) {
  http_.script = {{429, R"({"code":429})", std::chrono::seconds(30), ""}};
  EXPECT_FALSE(writer_.Sync(In(true)));
  EXPECT_GT(writer_.retry_until(), std::chrono::steady_clock::now() + std::chrono::seconds(25));
  EXPECT_FALSE(writer_.Sync(In(true)));  // still paused: no request
  EXPECT_EQ(http_.calls.size(), 1u);
}

// A fake whose answers depend on the path: PATCHes of one object's /status are refused.
class PathFakeHttp : public KubeHttp {
 public:
  HttpResponse Request(const std::string& method, const std::string& path, const std::string& body,
                       const std::string& content_type) override {
    calls.push_back({method, path, body, content_type});
    if (path.find(failing) != std::string::npos) return {code, R"({"kind":"Status","message":"forbidden: )" + reason + "\"}", std::nullopt, ""};
    return {200, "{}", std::nullopt, ""};
  }
  HttpResponse Stream(const std::string&, const std::function<bool(std::string_view)>&, bool*) override { return {}; }
  void Cancel() override {}
  size_t Count(const std::string& needle) const {
    size_t n = 0;
    for (const auto& c : calls) n += c.path.find(needle) != std::string::npos;
    return n;
  }

  std::vector<Call> calls;
  std::string failing = "/loadbalancers/bad/status";
  int code = 403;
  std::string reason = "rbac";
};

class StatusWriterBackoffTest : public ::testing::Test {
 protected:
  PathFakeHttp http_;
  std::chrono::steady_clock::time_point now_{};
  std::map<std::string, json> cache_ = {{"bad", Object("10")}, {"good", Object("10")}};
  StatusWriter writer_{&http_,
                       [this](const ObjectKey& k) -> std::optional<json> { return cache_.at(k.name); },
                       "ctl-a",
                       StatusWriterOptions{WriteBackoffOptions{std::chrono::milliseconds(500), std::chrono::minutes(5)},
                                           [this] { return now_; }, [] { return 1.0; }}};
  status::ServedGenerations served_;
  StatusInputs In() {
    StatusInputs in;
    in.statuses = {Lb(true), Lb(true)};
    in.statuses[0].key.name = "bad";
    in.statuses[1].key.name = "good";
    in.dataplanes = {{"n1", "192.0.2.1", 5}};
    served_.Record(5, status::ServedBy(in.statuses));
    in.served = &served_;
    return in;
  }
};

TEST_F(StatusWriterBackoffTest, OneFailingObjectIsBackedOffWhileOthersAreWritten) {
  // 10 minutes of passes every 500 ms, like the status loop: without backoff that is 1200 writes.
  for (int i = 0; i < 1200; ++i) {
    ASSERT_TRUE(writer_.Sync(In()));
    if (i == 0) {
      // The healthy object is written in the very first pass...
      EXPECT_EQ(http_.Count("/loadbalancers/good/status"), 1u);
      // ...and the informer then shows what was written.
      ASSERT_NE(http_.calls.back().path.find("/good/"), std::string::npos);
      cache_["good"] = Object("11", json::parse(http_.calls.back().body)["status"]);
    }
    now_ += std::chrono::milliseconds(500);
  }
  // 0.5 + 1 + 2 + ... + 256 s ≈ 511 s, then 300 s steps: about 11 attempts in 600 s.
  const size_t bad = http_.Count("/loadbalancers/bad/status");
  EXPECT_GE(bad, 9u);
  EXPECT_LE(bad, 12u);
  EXPECT_EQ(http_.Count("/loadbalancers/good/status"), 1u);
  EXPECT_EQ(writer_.stats().failures, bad);
  EXPECT_GT(writer_.stats().deferred, 1000u);
}

TEST_F(StatusWriterBackoffTest, FailingObjectGoesLastAndRecoveryResets) {
  ASSERT_TRUE(writer_.Sync(In()));
  // First pass: in the given order (bad, then good).
  ASSERT_EQ(http_.calls.size(), 2u);
  EXPECT_NE(http_.calls[0].path.find("/bad/"), std::string::npos);
  // "good" gets a new desired status (generation 2): now it is written before the failing one.
  http_.calls.clear();
  now_ += std::chrono::seconds(1);
  StatusInputs in = In();
  in.statuses[1].generation = 2;
  in.statuses[1].serving_generation = 2;
  served_.Record(6, status::ServedBy(in.statuses));
  in.dataplanes = {{"n1", "192.0.2.1", 6}};
  ASSERT_TRUE(writer_.Sync(in));
  ASSERT_EQ(http_.calls.size(), 2u);
  EXPECT_NE(http_.calls[0].path.find("/good/"), std::string::npos);
  EXPECT_NE(http_.calls[1].path.find("/bad/"), std::string::npos);

  // Several failures later the API accepts the write: the next failure starts from 0.5 s again.
  for (int i = 0; i < 6; ++i) {
    now_ += std::chrono::minutes(10);
    ASSERT_TRUE(writer_.Sync(In()));
  }
  http_.failing = "/nothing";
  now_ += std::chrono::minutes(10);
  http_.calls.clear();
  ASSERT_TRUE(writer_.Sync(In()));
  EXPECT_EQ(http_.Count("/bad/status"), 1u);
  http_.failing = "/loadbalancers/bad/status";
  cache_["bad"] = Object("20");  // the informer saw something else: write again, and fail
  http_.calls.clear();
  ASSERT_TRUE(writer_.Sync(In()));
  EXPECT_EQ(http_.Count("/bad/status"), 1u);
  now_ += std::chrono::milliseconds(499);
  ASSERT_TRUE(writer_.Sync(In()));
  EXPECT_EQ(http_.Count("/bad/status"), 1u);
  now_ += std::chrono::milliseconds(1);
  ASSERT_TRUE(writer_.Sync(In()));
  EXPECT_EQ(http_.Count("/bad/status"), 2u) << "backoff restarted at 0.5 s after the success";
}

TEST_F(StatusWriterBackoffTest, ChangedDesiredStatusIsTriedAtOnce) {
  for (int i = 0; i < 8; ++i) {
    now_ += std::chrono::minutes(10);
    ASSERT_TRUE(writer_.Sync(In()));
  }
  http_.calls.clear();
  now_ += std::chrono::seconds(1);
  ASSERT_TRUE(writer_.Sync(In()));  // backoff now 64 s+: nothing
  EXPECT_EQ(http_.Count("/bad/status"), 0u);
  StatusInputs in = In();
  in.statuses[0].generation = 2;
  in.statuses[0].serving_generation = 2;
  served_.Record(6, status::ServedBy(in.statuses));
  in.dataplanes = {{"n1", "192.0.2.1", 6}};
  ASSERT_TRUE(writer_.Sync(in));
  EXPECT_EQ(http_.Count("/bad/status"), 1u);
}

TEST_F(StatusWriterBackoffTest, FailingEventsAreBackedOffToo) {
  http_.failing = "/events";
  http_.code = 422;
  StatusInputs in = In();
  in.statuses = {Lb(false)};
  in.statuses[0].key.name = "bad";
  for (int i = 0; i < 120; ++i) {  // 60 s
    ASSERT_TRUE(writer_.Sync(in));
    now_ += std::chrono::milliseconds(500);
  }
  const size_t posts = http_.Count("/events");
  EXPECT_GE(posts, 5u);
  EXPECT_LE(posts, 8u);
}

// Event writes whose answer was lost are idempotent: the retry reads the Event first.
class EventIdempotencyTest : public ::testing::Test {
 protected:
  FakeHttp http_;
  std::chrono::steady_clock::time_point now_{};
  StatusWriter writer_{&http_, [](const ObjectKey&) -> std::optional<json> { return Object("10"); }, "ctl-a",
                       StatusWriterOptions{WriteBackoffOptions{}, [this] { return now_; }, [] { return 1.0; }}};
  status::ServedGenerations served_;
  StatusInputs In() {
    StatusInputs in;
    in.statuses = {Lb(false)};
    in.dataplanes = {{"n1", "192.0.2.1", 5}};
    served_.Record(5, status::ServedBy(in.statuses));
    in.served = &served_;
    return in;
  }
  std::vector<Call> EventCalls() const {
    std::vector<Call> out;
    for (const auto& c : http_.calls) {
      if (c.path.find("/events") != std::string::npos) out.push_back(c);
    }
    return out;
  }
  static HttpResponse Lost() { return {0, "", std::nullopt, "request timed out"}; }
  static HttpResponse Ok(const std::string& body) { return {200, body, std::nullopt, ""}; }
};

TEST_F(EventIdempotencyTest, CreateAppliedDespiteTimeoutIsNotCountedTwice) {
  http_.script = {Lost()};  // the POST reaches the server, its answer does not come back
  ASSERT_TRUE(writer_.Sync(In()));
  ASSERT_EQ(EventCalls().size(), 1u);
  const json posted = json::parse(EventCalls()[0].body);
  now_ += std::chrono::seconds(1);
  http_.calls.clear();
  http_.script = {Ok(posted.dump())};  // GET: the Event exists, exactly as sent
  ASSERT_TRUE(writer_.Sync(In()));
  auto calls = EventCalls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].method, "GET");
  EXPECT_EQ(writer_.stats().event_writes, 1u);
  // Done: no further Event writes.
  http_.calls.clear();
  now_ += std::chrono::seconds(10);
  ASSERT_TRUE(writer_.Sync(In()));
  EXPECT_TRUE(EventCalls().empty());
}

TEST_F(EventIdempotencyTest, CreateNotAppliedIsCreatedAgain) {
  http_.script = {Lost()};
  ASSERT_TRUE(writer_.Sync(In()));
  now_ += std::chrono::seconds(1);
  http_.calls.clear();
  http_.script = {{404, R"({"code":404})", std::nullopt, ""}, Ok("{}")};
  ASSERT_TRUE(writer_.Sync(In()));
  auto calls = EventCalls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].method, "GET");
  EXPECT_EQ(calls[1].method, "POST");
  EXPECT_EQ(json::parse(calls[1].body)["count"], 1);
}

TEST_F(EventIdempotencyTest, CountBumpAppliedDespiteTimeoutIsNotRepeated) {
  // The Event exists (a previous leader): POST → 409, GET count 3, PATCH count 4 → lost.
  http_.script = {{409, R"({"code":409,"reason":"AlreadyExists"})", std::nullopt, ""}, Ok(R"({"count": 3})"), Lost()};
  ASSERT_TRUE(writer_.Sync(In()));
  auto calls = EventCalls();
  ASSERT_EQ(calls.size(), 3u);
  const json patch = json::parse(calls[2].body);
  EXPECT_EQ(patch["count"], 4);
  now_ += std::chrono::seconds(1);
  http_.calls.clear();
  http_.script = {Ok(json({{"count", 4}, {"lastTimestamp", patch["lastTimestamp"]}}).dump())};
  ASSERT_TRUE(writer_.Sync(In()));
  calls = EventCalls();
  ASSERT_EQ(calls.size(), 1u) << "read, and found the bump applied";
  EXPECT_EQ(calls[0].method, "GET");
}

TEST_F(EventIdempotencyTest, CountBumpNotAppliedIsSentOnce) {
  http_.script = {{409, R"({"code":409})", std::nullopt, ""}, Ok(R"({"count": 3})"), Lost()};
  ASSERT_TRUE(writer_.Sync(In()));
  now_ += std::chrono::seconds(1);
  http_.calls.clear();
  // Still count 3: the bump was lost before it was applied; a failed read changes nothing.
  http_.script = {Lost()};
  ASSERT_TRUE(writer_.Sync(In()));
  now_ += std::chrono::seconds(2);
  http_.script = {Ok(R"({"count": 3, "lastTimestamp": "2020-01-01T00:00:00Z"})"), Ok("{}")};
  http_.calls.clear();
  ASSERT_TRUE(writer_.Sync(In()));
  auto calls = EventCalls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].method, "GET");
  EXPECT_EQ(calls[1].method, "PATCH");
  EXPECT_EQ(json::parse(calls[1].body)["count"], 4);
}

}  // namespace
}  // namespace doorman::controller::kube
