// The reflector state machine: list → watch → relist on 410 with deletes, bookmarks, backoff with
// jitter, Retry-After. Injected clock and randomness, no sockets.
#include <gtest/gtest.h>

#include "controller/kube/reflector.h"

namespace doorman::controller::kube {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Kind = ReflectorAction::Kind;

json Obj(const std::string& name, const std::string& rv, json spec = json::object()) {
  return {{"metadata", {{"name", name}, {"namespace", "default"}, {"resourceVersion", rv}}}, {"spec", spec}};
}

json List(std::vector<json> items, const std::string& rv, const std::string& cont = "") {
  json meta = {{"resourceVersion", rv}};
  if (!cont.empty()) meta["continue"] = cont;
  return {{"kind", "List"}, {"metadata", meta}, {"items", items}};
}

json Event(const std::string& type, json obj) { return {{"type", type}, {"object", obj}}; }

std::vector<std::string> Summary(const std::vector<ObjectEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.type + " " + e.key);
  return out;
}

class ReflectorTest : public ::testing::Test {
 protected:
  ReflectorOptions Options() {
    ReflectorOptions o;
    o.backoff_initial = milliseconds(100);
    o.backoff_max = milliseconds(1000);
    o.watch_timeout_min_s = 240;
    o.watch_timeout_max_s = 360;
    o.page_limit = 2;
    return o;
  }
  double rand_ = 0.0;
  TimePoint now_ = TimePoint() + seconds(1000);
  Reflector r_{"loadbalancers", Options(), [this] { return rand_; }};

  // List everything (one page) and start the watch.
  void Sync(std::vector<json> items, const std::string& rv) {
    ASSERT_EQ(r_.Next(now_).kind, Kind::kList);
    r_.OnListPage(List(std::move(items), rv), now_);
    ASSERT_EQ(r_.Next(now_).kind, Kind::kWatch);
    r_.OnWatchStarted(now_);
  }
  std::vector<ObjectEvent> Watch(const json& ev) {
    bool stop = false;
    return r_.OnWatchEvent(ev, now_, &stop);
  }
};

TEST_F(ReflectorTest, PaginatedListThenWatchFromTheListsResourceVersion) {
  auto a = r_.Next(now_);
  ASSERT_EQ(a.kind, Kind::kList);
  EXPECT_EQ(a.limit, 2);
  EXPECT_EQ(a.continue_token, "");
  EXPECT_TRUE(r_.OnListPage(List({Obj("a", "5"), Obj("b", "6")}, "10", "tok1"), now_).empty());
  EXPECT_FALSE(r_.synced());
  a = r_.Next(now_);
  ASSERT_EQ(a.kind, Kind::kList);
  EXPECT_EQ(a.continue_token, "tok1");
  auto events = r_.OnListPage(List({Obj("c", "7")}, "10"), now_);
  EXPECT_EQ(Summary(events), (std::vector<std::string>{"ADDED default/a", "ADDED default/b", "ADDED default/c"}));
  EXPECT_TRUE(r_.synced());
  a = r_.Next(now_);
  ASSERT_EQ(a.kind, Kind::kWatch);
  EXPECT_EQ(a.resource_version, "10");
  EXPECT_EQ(a.timeout_seconds, 240);  // rand 0 → the minimum
  rand_ = 0.999;
  r_.OnWatchEnded(true, now_ + seconds(240));
  EXPECT_EQ(r_.Next(now_).timeout_seconds, 360);  // jittered up to the maximum
}

TEST_F(ReflectorTest, WatchEventsUpdateCacheAndResourceVersion) {
  Sync({Obj("a", "5")}, "10");
  EXPECT_EQ(Summary(Watch(Event("ADDED", Obj("b", "11")))), (std::vector<std::string>{"ADDED default/b"}));
  EXPECT_EQ(Summary(Watch(Event("MODIFIED", Obj("a", "12", {{"x", 1}})))), (std::vector<std::string>{"MODIFIED default/a"}));
  // A duplicate (same object) is no change.
  EXPECT_TRUE(Watch(Event("MODIFIED", Obj("a", "12", {{"x", 1}}))).empty());
  EXPECT_EQ(Summary(Watch(Event("DELETED", Obj("b", "13")))), (std::vector<std::string>{"DELETED default/b"}));
  EXPECT_TRUE(Watch(Event("DELETED", Obj("zzz", "14"))).empty());  // never seen: nothing to delete
  EXPECT_EQ(r_.resource_version(), "14");
  EXPECT_EQ(r_.items().size(), 1u);
  EXPECT_EQ(r_.items().at("default/a")["spec"]["x"], 1);
}

TEST_F(ReflectorTest, BookmarkOnlyAdvancesTheResourceVersion) {
  Sync({Obj("a", "5")}, "10");
  EXPECT_TRUE(Watch({{"type", "BOOKMARK"}, {"object", {{"kind", "LoadBalancer"}, {"metadata", {{"resourceVersion", "42"}}}}}}).empty());
  EXPECT_EQ(r_.resource_version(), "42");
  r_.OnWatchEnded(true, now_ + seconds(300));
  auto a = r_.Next(now_ + seconds(300));
  ASSERT_EQ(a.kind, Kind::kWatch);  // resumes at once, from the bookmark
  EXPECT_EQ(a.resource_version, "42");
}

TEST_F(ReflectorTest, ExpiredWatchRelistsAndDeletesWhatIsGone) {
  Sync({Obj("a", "5"), Obj("b", "6"), Obj("c", "7")}, "10");
  bool stop = false;
  auto events = r_.OnWatchEvent(
      {{"type", "ERROR"}, {"object", {{"kind", "Status"}, {"code", 410}, {"reason", "Expired"}, {"message", "too old"}}}},
      now_, &stop);
  EXPECT_TRUE(stop);
  EXPECT_TRUE(events.empty());
  r_.OnWatchEnded(true, now_);  // the stream then ends: already decided, no backoff
  auto a = r_.Next(now_);
  ASSERT_EQ(a.kind, Kind::kList);  // immediately
  EXPECT_EQ(a.continue_token, "");
  // While we were away: b deleted, c modified, d created; a unchanged.
  events = r_.OnListPage(List({Obj("a", "5"), Obj("c", "20", {{"v", 2}}), Obj("d", "21")}, "30"), now_);
  EXPECT_EQ(Summary(events),
            (std::vector<std::string>{"MODIFIED default/c", "ADDED default/d", "DELETED default/b"}));
  EXPECT_EQ(events.back().object["metadata"]["resourceVersion"], "6");  // last known state
  EXPECT_EQ(r_.Next(now_).resource_version, "30");
}

TEST_F(ReflectorTest, HttpGoneOnWatchAndExpiredContinueTokenRelist) {
  Sync({Obj("a", "5")}, "10");
  r_.OnWatchFailed({410, std::nullopt, "gone"}, now_);
  EXPECT_EQ(r_.Next(now_).kind, Kind::kList);
  EXPECT_TRUE(r_.OnListPage(List({Obj("a", "5")}, "11", "tok"), now_).empty());
  EXPECT_EQ(r_.Next(now_).continue_token, "tok");
  r_.OnListFailed({410, std::nullopt, "continue expired"}, now_);
  auto a = r_.Next(now_);
  ASSERT_EQ(a.kind, Kind::kList);
  EXPECT_EQ(a.continue_token, "");  // starts over, at once
}

TEST_F(ReflectorTest, FailuresBackOffExponentiallyWithJitterAndReset) {
  rand_ = 0.0;  // jitter factor 0.5
  std::vector<int64_t> waits;
  for (int i = 0; i < 6; ++i) {
    auto a = r_.Next(now_);
    ASSERT_EQ(a.kind, Kind::kList);
    r_.OnListFailed({500, std::nullopt, "boom"}, now_);
    auto w = r_.Next(now_);
    ASSERT_EQ(w.kind, Kind::kWait);
    waits.push_back(std::chrono::duration_cast<milliseconds>(w.until - now_).count());
    now_ = w.until;
  }
  EXPECT_EQ(waits, (std::vector<int64_t>{50, 100, 200, 400, 500, 500}));  // base 100·2ⁿ capped at 1000, ×0.5
  rand_ = 0.5;  // ×0.75
  r_.OnListFailed({0, std::nullopt, "connection refused"}, now_);
  EXPECT_EQ(std::chrono::duration_cast<milliseconds>(r_.Next(now_).until - now_).count(), 750);
  // Success resets the failure count.
  now_ += seconds(10);
  r_.OnListPage(List({}, "5"), now_);
  EXPECT_EQ(r_.consecutive_failures(), 0);
  r_.Next(now_);
  r_.OnWatchStarted(now_);
  r_.OnWatchFailed({500, std::nullopt, "x"}, now_);
  EXPECT_EQ(std::chrono::duration_cast<milliseconds>(r_.Next(now_).until - now_).count(), 75);
}

TEST_F(ReflectorTest, RetryAfterIsHonoured) {
  rand_ = 0.0;
  r_.Next(now_);
  r_.OnListFailed({429, seconds(3), "slow down"}, now_);
  auto w = r_.Next(now_ + seconds(2));
  ASSERT_EQ(w.kind, Kind::kWait);
  EXPECT_EQ(w.until, now_ + seconds(3));
  EXPECT_EQ(r_.Next(now_ + seconds(3)).kind, Kind::kList);
  // Up to +10% jitter so that many clients do not return in lockstep.
  rand_ = 0.5;
  r_.OnListFailed({503, seconds(2), "unavailable"}, now_);
  EXPECT_EQ(r_.Next(now_).until, now_ + milliseconds(2100));
}

TEST_F(ReflectorTest, DroppedWatchResumesFromLastRvHealthyAtOnceBrokenAfterBackoff) {
  Sync({Obj("a", "5")}, "10");
  Watch(Event("MODIFIED", Obj("a", "15")));
  r_.OnWatchEnded(true, now_ + milliseconds(10));  // clean end after events: healthy
  auto a = r_.Next(now_ + milliseconds(10));
  ASSERT_EQ(a.kind, Kind::kWatch);
  EXPECT_EQ(a.resource_version, "15");
  r_.OnWatchStarted(now_);
  r_.OnWatchEnded(false, now_ + seconds(5));  // connection reset: back off, then resume (no relist)
  EXPECT_EQ(r_.Next(now_ + seconds(5)).kind, Kind::kWait);
  a = r_.Next(now_ + seconds(10));
  ASSERT_EQ(a.kind, Kind::kWatch);
  EXPECT_EQ(a.resource_version, "15");
  r_.OnWatchStarted(now_ + seconds(10));
  r_.OnWatchEnded(true, now_ + seconds(10) + milliseconds(5));  // closed at once, nothing delivered
  EXPECT_EQ(r_.Next(now_ + seconds(10) + milliseconds(5)).kind, Kind::kWait);
}

TEST_F(ReflectorTest, NotFoundListIsAnEmptySyncedListRetriedLater) {
  ReflectorOptions o = Options();
  o.may_be_deleted = true;  // a CRD's resource
  Reflector r("loadbalancers", o, [] { return 0.0; });
  r.Next(now_);
  auto events = r.OnListFailed({404, std::nullopt, "the server could not find the requested resource"}, now_);
  EXPECT_TRUE(events.empty());
  EXPECT_TRUE(r.synced());
  EXPECT_EQ(r.Next(now_).kind, Kind::kWait);
  auto logs = r.TakeDiagnostics();
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].message.find("CRD not installed"), std::string::npos);
}

// A built-in resource (EndpointSlices) answered 404 on its first list is not synced: nothing is
// published until its list is in (helper-123: an empty state went to serving dataplanes).
TEST_F(ReflectorTest, ABuiltInResourceNotFoundOnItsFirstListIsNotSynced) {
  Reflector r("endpointslices", Options(), [] { return 0.0; });
  ASSERT_EQ(r.Next(now_).kind, Kind::kList);
  EXPECT_TRUE(r.OnListFailed({404, std::nullopt, "not found", "NotFound"}, now_).empty());
  EXPECT_FALSE(r.synced());
  EXPECT_EQ(r.Next(now_).kind, Kind::kWait);  // backed off, then listed again
  ASSERT_EQ(r.Next(now_ + seconds(60)).kind, Kind::kList);
  r.OnListPage(List({Obj("a", "5")}, "10"), now_ + seconds(60));
  EXPECT_TRUE(r.synced());
}

TEST_F(ReflectorTest, NotFoundAfterASuccessfulListIsAFailureThatKeepsTheCache) {
  Sync({Obj("a", "5"), Obj("b", "6")}, "10");
  bool stop = false;
  r_.OnWatchEvent({{"type", "ERROR"}, {"object", {{"kind", "Status"}, {"code", 410}}}}, now_, &stop);
  r_.OnWatchEnded(true, now_);
  ASSERT_EQ(r_.Next(now_).kind, Kind::kList);
  // An API server restarting before its CRD handlers are up answers the relist with 404: that
  // must not delete every cached object.
  auto events = r_.OnListFailed({404, std::nullopt, "the server could not find the requested resource"}, now_);
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(r_.Next(now_).kind, Kind::kWait);
  // The next list that succeeds reconciles as usual.
  ASSERT_EQ(r_.Next(now_ + seconds(60)).kind, Kind::kList);
  events = r_.OnListPage(List({Obj("a", "5"), Obj("b", "6")}, "40"), now_ + seconds(60));
  EXPECT_TRUE(events.empty());
}

// The CRD deleted while the watch was down: no DELETED events ever come, every watch resume
// and every relist is the API server's NotFound. After the grace period (and at least 4 lists)
// of unbroken NotFound the objects are removed (a controller started now would list nothing);
// before it, the cache is kept.
TEST_F(ReflectorTest, ACrdResourceNotFoundForTheGracePeriodIsGone) {
  ReflectorOptions o = Options();
  o.may_be_deleted = true;
  Reflector r("loadbalancers", o, [] { return 0.5; });
  ASSERT_EQ(ReflectorOptions{}.not_served_grace, seconds(60));
  const ApiError not_found{404, std::nullopt, "the server could not find the requested resource", "NotFound"};
  auto t = now_;
  ASSERT_EQ(r.Next(t).kind, Kind::kList);
  r.OnListPage(List({Obj("a", "5"), Obj("b", "6")}, "10"), t);
  ASSERT_EQ(r.Next(t).kind, Kind::kWatch);
  r.OnWatchStarted(t);
  // The watch resume is answered 404 (HTTP): relist after a backoff, not another watch.
  r.OnWatchFailed(not_found, t);
  EXPECT_EQ(r.Next(t).kind, Kind::kWait);
  auto list_at = [&](seconds dt, const ApiError& e) {
    t += dt;
    EXPECT_EQ(r.Next(t).kind, Kind::kList);
    return r.OnListFailed(e, t);
  };
  EXPECT_TRUE(list_at(seconds(2), not_found).empty());  // the first NotFound: kept
  // A 500 in between restarts the run; so does a 404 that is not the API server's NotFound
  // Status (a proxy's 404 page).
  EXPECT_TRUE(list_at(seconds(40), {500, std::nullopt, "internal", ""}).empty());
  EXPECT_TRUE(list_at(seconds(5), not_found).empty());
  EXPECT_TRUE(list_at(seconds(30), {404, std::nullopt, "HTTP 404", ""}).empty());
  EXPECT_TRUE(list_at(seconds(5), not_found).empty());
  // 65 s of NotFound but only two lists: not yet (a stalled process is not a minute of 404s).
  EXPECT_TRUE(list_at(seconds(65), not_found).empty());
  EXPECT_TRUE(list_at(seconds(5), not_found).empty());
  EXPECT_EQ(r.items().size(), 2u);
  auto events = list_at(seconds(5), not_found);  // the fourth
  EXPECT_EQ(Summary(events), (std::vector<std::string>{"DELETED default/a", "DELETED default/b"}));
  EXPECT_TRUE(r.items().empty());
  EXPECT_TRUE(r.synced());
  bool warned = false;
  for (const auto& d : r.TakeDiagnostics()) warned |= d.message.find("CRD deleted?") != std::string::npos;
  EXPECT_TRUE(warned);
  // It keeps listing (with backoff); when the CRD is back, objects come back with the list.
  EXPECT_EQ(r.Next(t).kind, Kind::kWait);
  t += seconds(30);
  ASSERT_EQ(r.Next(t).kind, Kind::kList);
  events = r.OnListPage(List({Obj("c", "50")}, "50"), t);
  EXPECT_EQ(Summary(events), (std::vector<std::string>{"ADDED default/c"}));
  EXPECT_EQ(r.Next(t).kind, Kind::kWatch);
}

// A built-in resource (Services, Secrets...) cannot be deleted like a CRD: however long its
// NotFound lasts (a broken proxy in front), the cache stays.
TEST_F(ReflectorTest, ABuiltInResourceIsNeverGone) {
  Sync({Obj("a", "5")}, "10");
  const ApiError not_found{404, std::nullopt, "not found", "NotFound"};
  r_.OnWatchFailed(not_found, now_);
  auto t = now_;
  for (int i = 0; i < 20; ++i) {
    t += seconds(30);
    ASSERT_EQ(r_.Next(t).kind, Kind::kList);
    EXPECT_TRUE(r_.OnListFailed(not_found, t).empty());
  }
  EXPECT_EQ(r_.items().size(), 1u);
}

// Watches answered 404 while lists work: each relist succeeds (and resets the list backoff),
// but the waits before the relists keep growing, so the server is not listed in a tight loop.
TEST_F(ReflectorTest, WatchesAnswered404BackOffEvenThoughListsWork) {
  Sync({Obj("a", "5")}, "10");
  const ApiError not_found{404, std::nullopt, "not found", "NotFound"};
  auto t = now_;
  std::vector<milliseconds> waits;
  for (int i = 0; i < 6; ++i) {
    r_.OnWatchFailed(not_found, t);
    const auto w = r_.Next(t);
    ASSERT_EQ(w.kind, Kind::kWait);
    waits.push_back(std::chrono::duration_cast<milliseconds>(w.until - t));
    t = w.until;
    ASSERT_EQ(r_.Next(t).kind, Kind::kList);
    r_.OnListPage(List({Obj("a", "5")}, "10"), t);
    ASSERT_EQ(r_.Next(t).kind, Kind::kWatch);
    r_.OnWatchStarted(t);
  }
  for (std::size_t i = 1; i < waits.size(); ++i) EXPECT_GE(waits[i], waits[i - 1]) << i;
  EXPECT_EQ(waits.back(), Options().backoff_max / 2);  // capped (rand 0: half of it)
  // A watch that delivers again resets it.
  bool stop = false;
  r_.OnWatchEvent(Event("MODIFIED", Obj("a", "11")), t, &stop);
  r_.OnWatchEnded(true, t + seconds(2));
  r_.OnWatchFailed(not_found, t + seconds(2));
  const auto w = r_.Next(t + seconds(2));
  ASSERT_EQ(w.kind, Kind::kWait);
  EXPECT_LT(w.until - (t + seconds(2)), waits.back());
}

// A 404 as an ERROR event on an open watch: relist too.
TEST_F(ReflectorTest, WatchErrorEventNotFoundRelists) {
  Sync({Obj("a", "5")}, "10");
  bool stop = false;
  r_.OnWatchEvent({{"type", "ERROR"}, {"object", {{"kind", "Status"}, {"code", 404}, {"message", "gone"}}}}, now_, &stop);
  EXPECT_TRUE(stop);
  r_.OnWatchEnded(true, now_);
  EXPECT_EQ(r_.Next(now_).kind, Kind::kWait);
  EXPECT_EQ(r_.Next(now_ + seconds(5)).kind, Kind::kList);
}

TEST_F(ReflectorTest, RetryAfterZeroStillWaitsTheInitialBackoff) {
  r_.Next(now_);
  r_.OnListFailed({429, seconds(0), "slow down"}, now_);
  auto w = r_.Next(now_);
  ASSERT_EQ(w.kind, Kind::kWait);
  EXPECT_GE(w.until, now_ + milliseconds(100));
}

TEST_F(ReflectorTest, WatchErrorOtherThanGoneBacksOffAndResumes) {
  Sync({Obj("a", "5")}, "10");
  bool stop = false;
  r_.OnWatchEvent({{"type", "ERROR"}, {"object", {{"code", 500}, {"message", "internal"}}}}, now_, &stop);
  EXPECT_TRUE(stop);
  EXPECT_EQ(r_.Next(now_).kind, Kind::kWait);
  auto a = r_.Next(now_ + seconds(5));
  ASSERT_EQ(a.kind, Kind::kWatch);
  EXPECT_EQ(a.resource_version, "10");
}

}  // namespace
}  // namespace doorman::controller::kube
