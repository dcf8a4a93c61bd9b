// ViewPublisher against a scripted fake KubeHttp: POST then PUT with the stored resourceVersion,
// no write while nothing changed, 409 on create → GET + PUT, LIST by label excluding its own view,
// DELETE on Stop. LeaderRunner::Stop's release after a 409 (stale resourceVersion).
#include <ctime>
#include <thread>

#include <gtest/gtest.h>

#include <deque>

#include "controller/kube/leader_runner.h"

namespace doorman::controller::kube {
namespace {

using nlohmann::json;

struct Call {
  std::string method, path, body;
};

class FakeHttp : public KubeHttp {
 public:
  HttpResponse Request(const std::string& method, const std::string& path, const std::string& body,
                       const std::string&) override {
    calls.push_back({method, path, body});
    if (script.empty()) return {200, R"({"metadata":{"resourceVersion":"1"}})", std::nullopt, ""};
    HttpResponse r = script.front();
    script.pop_front();
    return r;
  }
  HttpResponse Stream(const std::string&, const std::function<bool(std::string_view)>&, bool*) override { return {}; }
  void Cancel() override {}

  std::vector<Call> calls;
  std::deque<HttpResponse> script;
};

LeaderOptions Options() {
  LeaderOptions o;
  o.identity = "ctl-a";
  o.ns = "doorman-system";
  o.lease_duration = std::chrono::seconds(15);
  o.retry_period = std::chrono::milliseconds(0);  // no rate limit in the test: only content counts
  return o;
}

TEST(ViewPublisherTest, CreatesThenUpdatesOnlyOnChangeAndDeletesOnStop) {
  FakeHttp http;
  ViewPublisher views(&http, Options());
  http.script.push_back({201, R"({"metadata":{"resourceVersion":"5"}})", std::nullopt, ""});
  views.Publish({{"n1", "192.0.2.1", 7}});
  ASSERT_EQ(http.calls.size(), 1u);
  EXPECT_EQ(http.calls[0].method, "POST");
  EXPECT_EQ(http.calls[0].path, "/apis/coordination.k8s.io/v1/namespaces/doorman-system/leases");
  const json body = json::parse(http.calls[0].body);
  EXPECT_EQ(body["metadata"]["name"], "doorman-controller-view-ctl-a");
  EXPECT_EQ(body["metadata"]["labels"]["doorman.dev/dataplane-view"], "true");
  EXPECT_EQ(body["metadata"]["annotations"]["doorman.dev/dataplanes"],
            R"([{"ackedVersion":7,"address":"192.0.2.1","node":"n1"}])");
  EXPECT_EQ(body["spec"]["holderIdentity"], "ctl-a");
  EXPECT_EQ(body["spec"]["leaseDurationSeconds"], 15);
  EXPECT_TRUE(body["spec"]["renewTime"].get<std::string>().ends_with("Z"));

  views.Publish({{"n1", "192.0.2.1", 7}});  // unchanged, renewed recently: no write
  EXPECT_EQ(http.calls.size(), 1u);

  views.Publish({{"n1", "192.0.2.1", 8}});
  ASSERT_EQ(http.calls.size(), 2u);
  EXPECT_EQ(http.calls[1].method, "PUT");
  EXPECT_EQ(http.calls[1].path, "/apis/coordination.k8s.io/v1/namespaces/doorman-system/leases/doorman-controller-view-ctl-a");
  EXPECT_EQ(json::parse(http.calls[1].body)["metadata"]["resourceVersion"], "5");

  views.Stop();
  ASSERT_EQ(http.calls.size(), 3u);
  EXPECT_EQ(http.calls[2].method, "DELETE");
  EXPECT_EQ(http.calls[2].path, http.calls[1].path);
}

TEST(ViewPublisherTest, ExistingLeaseIsReadThenUpdated) {
  FakeHttp http;
  ViewPublisher views(&http, Options());
  http.script.push_back({409, "{}", std::nullopt, ""});
  http.script.push_back({200, R"({"metadata":{"resourceVersion":"9"}})", std::nullopt, ""});
  views.Publish({});
  ASSERT_EQ(http.calls.size(), 3u);
  EXPECT_EQ(http.calls[0].method, "POST");
  EXPECT_EQ(http.calls[1].method, "GET");
  EXPECT_EQ(http.calls[2].method, "PUT");
  EXPECT_EQ(json::parse(http.calls[2].body)["metadata"]["resourceVersion"], "9");
}

// Kubernetes MicroTime of `t` (UTC, microseconds).
std::string MicroTime(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  return std::string(buf) + ".000000Z";
}

TEST(ViewPublisherTest, ListsOtherReplicasViewsByLabel) {
  FakeHttp http;
  ViewPublisher views(&http, Options());
  json list = {{"items", json::array()}};
  const auto now = std::chrono::system_clock::now();
  // ctl-c died without SIGTERM long ago (expired for more than five lease durations): deleted.
  auto view = [&](const std::string& lease, const std::string& id, std::chrono::system_clock::time_point renewed) {
    list["items"].push_back(
        {{"metadata",
          {{"name", lease + "-view-" + id},
           {"annotations", {{"doorman.dev/dataplanes", R"([{"node":"n-)" + id + R"(","address":"","ackedVersion":1}])"}}}}},
         {"spec", {{"holderIdentity", id}, {"leaseDurationSeconds", 15}, {"renewTime", MicroTime(renewed)}}}});
  };
  const auto expired = now - std::chrono::seconds(15 * 7);
  view("doorman-controller", "ctl-a", now);
  view("doorman-controller", "ctl-b", now);
  view("doorman-controller", "ctl-c", expired);
  // Another install in the namespace (--leader-elect-id internal-controller): same label, not a
  // peer, live or stale (its own leader deletes its stale views).
  view("internal-controller", "int-a", now);
  view("internal-controller", "int-b", expired);
  http.script.push_back({200, list.dump(), std::nullopt, ""});
  auto peers = views.ListPeers();
  ASSERT_TRUE(peers);
  EXPECT_EQ(http.calls[0].path,
            "/apis/coordination.k8s.io/v1/namespaces/doorman-system/leases?labelSelector=doorman.dev%2Fdataplane-view%3Dtrue");
  ASSERT_EQ(peers->size(), 1u);  // its own view is not a peer, and ctl-c's is gone
  EXPECT_EQ((*peers)[0].identity, "ctl-b");
  EXPECT_EQ((*peers)[0].dataplanes[0].node_name, "n-ctl-b");
  ASSERT_EQ(http.calls.size(), 2u);
  EXPECT_EQ(http.calls[1].method, "DELETE");
  EXPECT_EQ(http.calls[1].path, "/apis/coordination.k8s.io/v1/namespaces/doorman-system/leases/doorman-controller-view-ctl-c");
  http.script.push_back({403, "{}", std::nullopt, ""});
  EXPECT_FALSE(views.ListPeers());
  views.Stop();  // never written: nothing to delete
  EXPECT_EQ(http.calls.size(), 3u);
}

// With a retry period, the leader lists the views at most once per period (not every 500 ms
// status pass).
TEST(ViewPublisherTest, ListsAtMostOncePerRetryPeriod) {
  FakeHttp http;
  LeaderOptions o = Options();
  o.retry_period = std::chrono::seconds(60);
  ViewPublisher views(&http, o);
  http.script.push_back({200, R"({"items": []})", std::nullopt, ""});
  ASSERT_TRUE(views.ListPeers());
  ASSERT_TRUE(views.ListPeers());
  EXPECT_EQ(http.calls.size(), 1u);
}

// A view Lease that cannot be written (its namespace does not exist: 404) or listed is logged
// once per HTTP status, not every retry period; a failed LIST waits a retry period too.
TEST(ViewPublisherTest, FailuresAreLoggedOncePerStatusAndListsAreThrottled) {
  FakeHttp http;
  LeaderOptions o = Options();
  o.retry_period = std::chrono::milliseconds(1);
  ViewPublisher views(&http, o);
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 3; ++i) {
    http.script.push_back({404, "{}", std::nullopt, ""});  // POST: namespace not found
    views.Publish({{"n1", "192.0.2.1", static_cast<uint64_t>(7 + i)}});
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // past the 1 ms retry period
  }
  http.script.push_back({201, R"({"metadata":{"resourceVersion":"5"}})", std::nullopt, ""});
  views.Publish({{"n1", "192.0.2.1", 10}});
  const std::string publish_log = ::testing::internal::GetCapturedStderr();
  size_t failed = 0;
  for (size_t at = publish_log.find("publishing the dataplane view failed"); at != std::string::npos;
       at = publish_log.find("publishing the dataplane view failed", at + 1)) {
    ++failed;
  }
  EXPECT_EQ(failed, 1u) << publish_log;
  EXPECT_NE(publish_log.find("publishing the dataplane view works again"), std::string::npos) << publish_log;

  LeaderOptions slow = Options();
  slow.retry_period = std::chrono::seconds(60);
  FakeHttp list_http;
  ViewPublisher lister(&list_http, slow);
  list_http.script.push_back({403, "{}", std::nullopt, ""});
  EXPECT_FALSE(lister.ListPeers());
  EXPECT_FALSE(lister.ListPeers());  // within the retry period: not asked again
  EXPECT_EQ(list_http.calls.size(), 1u);
}

// A renewal applied by the API server whose answer was lost (shutdown cancels in-flight
// requests) leaves a stale resourceVersion: the release must still happen (re-read, re-PUT),
// or followers wait for the whole lease duration.
TEST(LeaderRunnerTest, ReleaseAfterAConflictRereadsTheLease) {
  FakeHttp http;
  LeaderOptions o = Options();
  o.name = "doorman-controller";
  o.retry_period = std::chrono::seconds(10);  // no renewal while the test runs
  http.script.push_back({404, "{}", std::nullopt, ""});                                    // GET: none yet
  http.script.push_back({201, R"({"metadata":{"resourceVersion":"3"},"spec":{}})", std::nullopt, ""});  // POST
  LeaderRunner runner(&http, o, nullptr);
  runner.Start();
  for (int i = 0; i < 2000 && !runner.IsLeader(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(runner.IsLeader());
  const std::size_t before = http.calls.size();
  http.script.push_back({409, "{}", std::nullopt, ""});  // PUT with rv 3: stale
  http.script.push_back({200, R"({"metadata":{"resourceVersion":"9"},"spec":{"holderIdentity":"ctl-a"}})", std::nullopt, ""});
  http.script.push_back({200, R"({"metadata":{"resourceVersion":"10"}})", std::nullopt, ""});
  runner.Stop();
  ASSERT_EQ(http.calls.size(), before + 3);
  EXPECT_EQ(http.calls[before].method, "PUT");
  EXPECT_EQ(json::parse(http.calls[before].body)["metadata"]["resourceVersion"], "3");
  EXPECT_EQ(http.calls[before + 1].method, "GET");
  EXPECT_EQ(http.calls[before + 2].method, "PUT");
  const json released = json::parse(http.calls[before + 2].body);
  EXPECT_EQ(released["metadata"]["resourceVersion"], "9");
  EXPECT_EQ(released["spec"]["holderIdentity"], "");
}

TEST(LeaderRunnerTest, NoSecondReleaseWhenSomeoneElseHoldsTheLease) {
  FakeHttp http;
  LeaderOptions o = Options();
  o.name = "doorman-controller";
  o.retry_period = std::chrono::seconds(10);
  http.script.push_back({404, "{}", std::nullopt, ""});
  http.script.push_back({201, R"({"metadata":{"resourceVersion":"3"},"spec":{}})", std::nullopt, ""});
  LeaderRunner runner(&http, o, nullptr);
  runner.Start();
  for (int i = 0; i < 2000 && !runner.IsLeader(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(runner.IsLeader());
  const std::size_t before = http.calls.size();
  http.script.push_back({409, "{}", std::nullopt, ""});
  http.script.push_back({200, R"({"metadata":{"resourceVersion":"9"},"spec":{"holderIdentity":"ctl-b"}})", std::nullopt, ""});
  runner.Stop();
  EXPECT_EQ(http.calls.size(), before + 2);  // PUT (409), GET: not ours any more, nothing to release
}

}  // namespace
}  // namespace doorman::controller::kube
