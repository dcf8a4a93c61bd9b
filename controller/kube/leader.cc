#include "controller/kube/leader.h"

#include <algorithm>

#include "controller/kube/resources.h"

namespace doorman::controller::kube {
namespace {

using nlohmann::json;

int64_t Seconds(std::chrono::milliseconds d) { return std::max<int64_t>(1, (d.count() + 999) / 1000); }

}  // namespace

LeaderElection::LeaderElection(LeaderOptions options, std::function<double()> rand01)
    : options_(std::move(options)), rand01_(std::move(rand01)) {}

void LeaderElection::Schedule(TimePoint now) {
  auto period = options_.retry_period;
  if (!leader_) {  // candidates spread out (client-go's JitterFactor 1.2)
    period += std::chrono::milliseconds(static_cast<int64_t>(static_cast<double>(period.count()) * 0.2 * rand01_()));
  }
  next_attempt_ = now + period;
}

void LeaderElection::StepDown(TimePoint now, const std::string& why) {
  if (!leader_) return;
  leader_ = false;
  diagnostics_.push_back({log::Level::kWarn, "leader", "lost leadership", {{"identity", options_.identity}, {"reason", why}}});
  (void)now;
}

bool LeaderElection::IsLeader(TimePoint now) {
  if (leader_ && now - last_renew_ >= options_.renew_deadline) StepDown(now, "not renewed within the renew deadline");
  return leader_;
}

json LeaderElection::LeaseBody(const json* old, const std::string& now_micro) const {
  json spec = {{"holderIdentity", options_.identity},
               {"leaseDurationSeconds", Seconds(options_.lease_duration)},
               {"renewTime", now_micro}};
  const json old_spec = old && old->contains("spec") && (*old)["spec"].is_object() ? (*old)["spec"] : json::object();
  const int64_t transitions = old_spec.value("leaseTransitions", int64_t{0});
  if (old && old_spec.value("holderIdentity", "") == options_.identity && old_spec.contains("acquireTime")) {
    spec["acquireTime"] = old_spec["acquireTime"];
    spec["leaseTransitions"] = transitions;
  } else {
    spec["acquireTime"] = now_micro;
    spec["leaseTransitions"] = old ? transitions + 1 : 0;
  }
  json lease = {{"apiVersion", LeaseResource().api_version()},
                {"kind", "Lease"},
                {"metadata", {{"name", options_.name}, {"namespace", options_.ns}}},
                {"spec", spec}};
  if (old) lease["metadata"]["resourceVersion"] = observed_rv_;
  return lease;
}

std::optional<LeaderElection::Write> LeaderElection::OnRead(const std::optional<json>& lease, TimePoint now,
                                                            const std::string& now_micro) {
  Schedule(now);
  IsLeader(now);
  if (!lease) {
    observed_spec_ = json();
    observed_rv_.clear();
    observed_holder_.clear();
    return Write{true, LeaseBody(nullptr, now_micro)};
  }
  const json spec = lease->contains("spec") && (*lease)["spec"].is_object() ? (*lease)["spec"] : json::object();
  observed_rv_ = lease->contains("metadata") ? (*lease)["metadata"].value("resourceVersion", "") : "";
  if (spec != observed_spec_) {  // the holder renewed (or changed): restart its lease on our clock
    observed_spec_ = spec;
    observed_time_ = now;
  }
  observed_holder_ = spec.value("holderIdentity", "");
  const auto duration = std::chrono::seconds(spec.value("leaseDurationSeconds", int64_t{0}));
  const bool held_by_other = !observed_holder_.empty() && observed_holder_ != options_.identity;
  if (held_by_other && now < observed_time_ + duration) {
    LeaseAccessRecovered();  // read fine; another replica leads
    StepDown(now, "the lease is held by " + observed_holder_);
    return std::nullopt;
  }
  return Write{false, LeaseBody(&*lease, now_micro)};
}

void LeaderElection::OnReadFailed(int code, TimePoint now) {
  Schedule(now);
  IsLeader(now);
  LeaseAccessFailed("reading", code);
}

void LeaderElection::LeaseAccessFailed(const char* what, int code) {
  if (failing_code_ == code) {
    ++failing_repeats_;
    diagnostics_.push_back({log::Level::kDebug, "leader", std::string(what) + " the lease failed again",
                            {{"code", std::to_string(code)}}});
    return;
  }
  std::string hint;
  if (code == 404) hint = "does namespace " + options_.ns + " exist? The Lease is created there";
  if (code == 403) hint = "RBAC: the controller may not get, create or update leases in namespace " + options_.ns;
  if (code == 0) hint = "the API server did not answer";
  std::vector<std::pair<std::string, std::string>> fields = {
      {"code", std::to_string(code)}, {"lease", options_.ns + "/" + options_.name}};
  if (!hint.empty()) fields.push_back({"hint", hint});
  if (failing_repeats_ > 0) fields.push_back({"previous_repeats", std::to_string(failing_repeats_)});
  diagnostics_.push_back({log::Level::kWarn, "leader", std::string(what) + " the lease failed; not leading until it succeeds",
                          std::move(fields)});
  failing_code_ = code;
  failing_repeats_ = 0;
}

void LeaderElection::LeaseAccessRecovered() {
  if (!failing_code_) return;
  diagnostics_.push_back({log::Level::kInfo, "leader", "the lease is reachable again",
                          {{"after_code", std::to_string(*failing_code_)}, {"repeats", std::to_string(failing_repeats_)}}});
  failing_code_.reset();
  failing_repeats_ = 0;
}

void LeaderElection::OnWriteResult(int code, const json& stored, TimePoint now) {
  if (code == 200 || code == 201) {
    LeaseAccessRecovered();
    if (!leader_) {
      diagnostics_.push_back({log::Level::kInfo, "leader", "became leader",
                              {{"identity", options_.identity}, {"lease", options_.ns + "/" + options_.name}}});
    }
    leader_ = true;
    last_renew_ = now;
    if (stored.is_object()) {
      observed_spec_ = stored.value("spec", json::object());
      observed_rv_ = stored.contains("metadata") ? stored["metadata"].value("resourceVersion", "") : "";
      observed_holder_ = options_.identity;
      observed_time_ = now;
    }
    Schedule(now);
    return;
  }
  if (code == 409) {
    // Someone else wrote the Lease between our read and our write: they won this round. A
    // leader keeps its role until renew_deadline unless a read shows another holder.
    diagnostics_.push_back({log::Level::kDebug, "leader", "lease write conflict", {{"identity", options_.identity}}});
  } else {
    LeaseAccessFailed("writing", code);
  }
  IsLeader(now);
}

std::optional<LeaderElection::Write> LeaderElection::Release(const std::string& now_micro) const {
  if (!leader_) return std::nullopt;
  json spec = observed_spec_.is_object() ? observed_spec_ : json::object();
  spec["holderIdentity"] = "";
  spec["leaseDurationSeconds"] = 1;
  spec["renewTime"] = now_micro;
  spec["acquireTime"] = now_micro;
  json lease = {{"apiVersion", LeaseResource().api_version()},
                {"kind", "Lease"},
                {"metadata", {{"name", options_.name}, {"namespace", options_.ns}, {"resourceVersion", observed_rv_}}},
                {"spec", spec}};
  return Write{false, lease};
}

}  // namespace doorman::controller::kube
