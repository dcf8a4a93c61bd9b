#include "controller/kube/leader_runner.h"

#include "common/log.h"
#include "controller/kube/resources.h"

namespace doorman::controller::kube {
namespace {

std::string NowMicro() { return FormatTime(std::chrono::system_clock::now(), true); }

}  // namespace

LeaderRunner::LeaderRunner(KubeHttp* http, LeaderOptions options, std::function<void(bool)> on_change)
    : http_(http),
      options_(options),
      on_change_(std::move(on_change)),
      rng_(std::random_device{}()),
      election_(std::move(options), [this] { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }) {}

LeaderRunner::~LeaderRunner() { Stop(); }

void LeaderRunner::Start() { thread_ = std::thread([this] { Run(); }); }

bool LeaderRunner::IsLeader() {
  std::lock_guard<std::mutex> lock(mu_);
  return election_.IsLeader(std::chrono::steady_clock::now());
}

void LeaderRunner::Attempt() {
  const auto& res = LeaseResource();
  const std::string path = res.object_path(options_.ns, options_.name);
  HttpResponse r = http_->Request("GET", path);
  std::optional<LeaderElection::Write> write;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (r.status == 200) {
      auto lease = nlohmann::json::parse(r.body, nullptr, false);
      if (lease.is_object()) {
        write = election_.OnRead(lease, now, NowMicro());
      } else {
        election_.OnReadFailed(r.status, now);
      }
    } else if (r.status == 404) {
      write = election_.OnRead(std::nullopt, now, NowMicro());
    } else {
      election_.OnReadFailed(r.status, now);
    }
  }
  if (write) {
    // The renewal counts from when it was sent, not from when the answer came back: a slow
    // response must not stretch our leadership past what followers compute from renewTime.
    const auto sent = std::chrono::steady_clock::now();
    HttpResponse w = write->create
                         ? http_->Request("POST", res.namespaced_collection_path(options_.ns), write->lease.dump())
                         : http_->Request("PUT", path, write->lease.dump());
    auto stored = nlohmann::json::parse(w.body, nullptr, false);
    // 409 on POST (AlreadyExists) = someone else created it first: same as losing a PUT race.
    std::lock_guard<std::mutex> lock(mu_);
    election_.OnWriteResult(w.status, stored, sent);
  }
}

void LeaderRunner::Run() {
  log::Info("leader", "leader election started",
            {{"identity", options_.identity}, {"lease", options_.ns + "/" + options_.name}});
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    Attempt();
    std::vector<Diagnostic> logs;
    bool leader = false;
    bool changed = false;
    std::chrono::steady_clock::time_point next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      leader = election_.IsLeader(std::chrono::steady_clock::now());
      logs = election_.TakeDiagnostics();
      changed = leader != was_leader_;
      was_leader_ = leader;
      next = election_.NextAttempt();
    }
    EmitAll(logs);
    if (changed && on_change_) on_change_(leader);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, next, [this] { return stop_; });
    if (stop_) return;
  }
}

void LeaderRunner::RequestStop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
}

void LeaderRunner::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::optional<LeaderElection::Write> release;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (election_.IsLeader(std::chrono::steady_clock::now())) release = election_.Release(NowMicro());
  }
  if (!release) return;
  const std::string path = LeaseResource().object_path(options_.ns, options_.name);
  HttpResponse r = http_->Request("PUT", path, release->lease.dump());
  if (r.status == 409) {
    // Our last renewal may have been applied by the API server but its answer lost (shutdown
    // cancels in-flight requests): the resourceVersion we hold is stale. Read the Lease and, if
    // it is still ours, release it at its current version; otherwise followers would wait for
    // the whole lease duration.
    HttpResponse g = http_->Request("GET", path);
    auto lease = nlohmann::json::parse(g.body, nullptr, false);
    if (g.status == 200 && lease.is_object() && lease.contains("spec") && lease["spec"].is_object() &&
        lease["spec"].value("holderIdentity", "") == options_.identity && lease.contains("metadata") &&
        lease["metadata"].is_object()) {
      release->lease["metadata"]["resourceVersion"] = lease["metadata"].value("resourceVersion", "");
      r = http_->Request("PUT", path, release->lease.dump());
    }
  }
  if (r.ok()) {
    log::Info("leader", "released the lease", {{"identity", options_.identity}});
  } else {
    log::Warn("leader", "releasing the lease failed", {{"code", std::to_string(r.status)}, {"error", r.ToApiError().message}});
  }
  if (on_change_) on_change_(false);
}

namespace {
// Stores `lease` (the Lease `name` in `ns`) at the resourceVersion last stored, *rv: POST when it
// is unknown (409: the Lease exists, e.g. from a previous run: read its version, then PUT), else
// PUT. True on success, with *rv the stored version; otherwise *rv is cleared (the next try
// starts over) and *code is the failed answer's status.
bool StoreLease(KubeHttp* http, const std::string& ns, const std::string& name, nlohmann::json lease, std::string* rv,
                int* code) {
  const auto& res = LeaseResource();
  const std::string path = res.object_path(ns, name);
  HttpResponse r;
  if (rv->empty()) {
    r = http->Request("POST", res.namespaced_collection_path(ns), lease.dump());
    if (r.status == 409) {
      r = http->Request("GET", path);
      auto cur = nlohmann::json::parse(r.body, nullptr, false);
      if (r.status == 200 && cur.is_object() && cur.contains("metadata") && cur["metadata"].is_object()) {
        *rv = cur["metadata"].value("resourceVersion", "");
      }
    }
  }
  if (!rv->empty()) {
    lease["metadata"]["resourceVersion"] = *rv;
    r = http->Request("PUT", path, lease.dump());
  }
  auto stored = nlohmann::json::parse(r.body, nullptr, false);
  if (r.ok() && stored.is_object() && stored.contains("metadata") && stored["metadata"].is_object()) {
    *rv = stored["metadata"].value("resourceVersion", "");
    return true;
  }
  rv->clear();
  *code = r.status;
  return false;
}
}  // namespace

ViewPublisher::ViewPublisher(KubeHttp* http, const LeaderOptions& options)
    : http_(http), options_(options), name_(status::ViewLeaseName(options.name, options.identity)) {}

void ViewPublisher::Publish(const std::vector<status::DataplaneView>& own) {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_try_) return;  // a failed write waits a retry period (not every 500 ms pass)
  const std::string content = status::DataplaneViewJson(own).dump();
  const bool changed = !written_ || content != last_content_;
  if (written_ && !(changed && now - last_write_ >= options_.retry_period) &&
      now - last_write_ < options_.lease_duration / 2) {
    return;
  }
  const auto& res = LeaseResource();
  const int64_t secs = std::max<int64_t>(1, (options_.lease_duration.count() + 999) / 1000);
  nlohmann::json lease = {
      {"apiVersion", res.api_version()},
      {"kind", "Lease"},
      {"metadata",
       {{"name", name_},
        {"namespace", options_.ns},
        {"labels", {{status::kViewLabel, "true"}}},
        {"annotations", {{status::kViewAnnotation, content}}}}},
      {"spec", {{"holderIdentity", options_.identity}, {"leaseDurationSeconds", secs}, {"renewTime", NowMicro()}}}};
  int code = 0;
  if (StoreLease(http_, options_.ns, name_, std::move(lease), &rv_, &code)) {
    written_ = true;
    last_content_ = content;
    last_write_ = now;
    if (publish_failure_) log::Info("leader", "publishing the dataplane view works again", {{"lease", options_.ns + "/" + name_}});
    publish_failure_.reset();
  } else {
    next_try_ = now + options_.retry_period;
    if (publish_failure_ != code) {
      log::Info("leader", "publishing the dataplane view failed (retried every retry period, logged again if the code changes)",
                {{"lease", options_.ns + "/" + name_}, {"code", std::to_string(code)}});
    }
    publish_failure_ = code;
  }
}

std::optional<std::vector<status::PeerView>> ViewPublisher::ListPeers() {
  // At most one LIST per retry period (the status loop asks every 500 ms).
  const auto now = std::chrono::steady_clock::now();
  if (peers_cache_ && now - peers_listed_ < options_.retry_period) return peers_cache_;
  if (list_failure_ && now - list_failed_at_ < options_.retry_period) return std::nullopt;
  const auto& res = LeaseResource();
  HttpResponse r = http_->Request(
      "GET", res.namespaced_collection_path(options_.ns) + "?labelSelector=" + QueryEscape(std::string(status::kViewLabel) + "=true"));
  auto list = nlohmann::json::parse(r.body, nullptr, false);
  if (r.status != 200 || !list.is_object() || !list.contains("items") || !list["items"].is_array()) {
    if (list_failure_ != r.status) {
      log::Info("leader", "listing dataplane views failed (retried every retry period, logged again if the code changes)",
                {{"code", std::to_string(r.status)}});
    }
    list_failure_ = r.status;
    list_failed_at_ = now;
    return std::nullopt;
  }
  if (list_failure_) log::Info("leader", "listing dataplane views works again");
  list_failure_.reset();
  std::vector<status::PeerView> out;
  const auto wall = std::chrono::system_clock::now();
  for (const auto& item : list["items"]) {
    if (!item.contains("metadata") || !item["metadata"].is_object()) continue;
    const std::string name = item["metadata"].value("name", "");
    if (name == name_) continue;
    auto v = status::ParsePeerView(item);
    if (!v) continue;
    // Another install's replica (another --leader-elect-id in this namespace) carries the same
    // label: its dataplanes are not ours to count, nor its view ours to delete.
    if (status::ViewLeaseName(options_.name, v->identity) != name) continue;
    // A replica that died without SIGTERM leaves its view behind: the leader deletes one
    // expired for five lease durations (a live replica renews every half duration, and
    // recreates its view if it was wrong to).
    const bool stale = v->renew_time + v->duration + 5 * std::max(v->duration, std::chrono::seconds(1)) < wall;
    if (stale) {
      HttpResponse d = http_->Request("DELETE", res.object_path(options_.ns, name));
      log::Info("leader", "deleted the dataplane view of a replica that is gone",
                {{"lease", options_.ns + "/" + name}, {"code", std::to_string(d.status)}});
      continue;
    }
    out.push_back(std::move(*v));
  }
  peers_cache_ = out;
  peers_listed_ = now;
  return out;
}

void ViewPublisher::Stop() {
  if (!written_) return;
  HttpResponse r = http_->Request("DELETE", LeaseResource().object_path(options_.ns, name_));
  if (!r.ok() && r.status != 404) {
    log::Warn("leader", "deleting the dataplane view failed", {{"code", std::to_string(r.status)}});
  }
  written_ = false;
}

LastGoodLease::LastGoodLease(KubeHttp* http, const LeaderOptions& options)
    : http_(http), options_(options), name_(options.name + "-last-good") {}

std::optional<std::map<ObjectKey, nlohmann::json>> LastGoodLease::Read() {
  HttpResponse r = http_->Request("GET", LeaseResource().object_path(options_.ns, name_));
  if (r.status == 404) {
    read_ok_ = true;
    return std::map<ObjectKey, nlohmann::json>{};
  }
  auto lease = nlohmann::json::parse(r.body, nullptr, false);
  if (r.status != 200 || !lease.is_object()) {
    log::Warn("leader", "reading the last good versions failed (retried every 5 s): objects that are invalid now are "
              "not routed by this replica meanwhile",
              {{"lease", options_.ns + "/" + name_}, {"code", std::to_string(r.status)}});
    return std::nullopt;
  }
  read_ok_ = true;
  return status::ParseLastGood(lease);
}

void LastGoodLease::Reset() {
  written_ = false;
  rv_.clear();
  next_try_ = {};
}

void LastGoodLease::Write(const std::map<ObjectKey, nlohmann::json>& objects) {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_try_ || !read_ok_) return;
  std::vector<ObjectKey> left_out;
  const std::string content = status::LastGoodAnnotation(objects, status::kLastGoodBudgetBytes, &left_out);
  if (written_ && content == last_content_) return;
  std::string left;
  for (const auto& k : left_out) left += (left.empty() ? "" : ",") + k.ToString();
  if (!left.empty() && left != last_left_out_) {
    log::Warn("leader", "last good versions left out of the Lease (too large): another replica starting now would not route them",
              {{"objects", left}});
  }
  last_left_out_ = left;
  const auto& res = LeaseResource();
  nlohmann::json lease = {{"apiVersion", res.api_version()},
                          {"kind", "Lease"},
                          {"metadata",
                           {{"name", name_},
                            {"namespace", options_.ns},
                            {"annotations", {{status::kLastGoodAnnotation, content}}}}},
                          {"spec", {{"holderIdentity", options_.identity}}}};
  int code = 0;
  if (StoreLease(http_, options_.ns, name_, std::move(lease), &rv_, &code)) {
    written_ = true;
    last_content_ = content;
    log::Info("leader", "last good versions stored", {{"lease", options_.ns + "/" + name_}, {"objects", std::to_string(objects.size() - left_out.size())}});
  } else {
    next_try_ = now + options_.retry_period;
    log::Info("leader", "storing the last good versions failed",
              {{"lease", options_.ns + "/" + name_}, {"code", std::to_string(code)}});
  }
}

}  // namespace doorman::controller::kube
