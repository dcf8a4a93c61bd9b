// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it, as a
// pure state machine on an injected clock (leader_runner.cc performs the GET / POST / PUT):
//
// * Every retry_period (jittered ×[1, 1.2) while a candidate) the Lease is read. Absent → create
//   it holding it. Held by someone else and that holder's record has changed within its
//   leaseDurationSeconds *as observed on our own clock* (no trust in other machines' clocks) →
//   stay a follower. Otherwise (expired, released, or ours) → PUT it with our identity and the
//   resourceVersion we read: optimistic concurrency, a 409 means someone else won the race.
// * A leader stays leader while its last successful renewal is younger than renew_deadline
//   (< lease_duration, so it stops acting before anyone else may take over); then it steps down.
// * Release (SIGTERM): the leader writes holderIdentity "" and leaseDurationSeconds 1, so a
//   follower takes over at its next try instead of waiting out the lease.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/model/diagnostic.h"

namespace doorman::controller::kube {

struct LeaderOptions {
  std::string identity;  // hostname_pid or --pod-name
  std::string ns = "doorman-system";
  std::string name = "doorman-controller";
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
};

class LeaderElection {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // A write to perform: create (POST to the collection) or update (PUT to the object).
  struct Write {
    bool create = false;
    nlohmann::json lease;
  };

  // `rand01` returns uniform values in [0, 1).
  LeaderElection(LeaderOptions options, std::function<double()> rand01);

  // The Lease as just read (nullopt: it does not exist). `now_micro` is the wall-clock time in
  // Kubernetes MicroTime format, written into acquireTime/renewTime. Returns the write to do, if
  // any; call OnWriteResult with its outcome.
  std::optional<Write> OnRead(const std::optional<nlohmann::json>& lease, TimePoint now, const std::string& now_micro);
  void OnReadFailed(int code, TimePoint now);
  // `code` 200/201 with the stored Lease, 409 = someone else won, other = failure.
  void OnWriteResult(int code, const nlohmann::json& stored, TimePoint now);

  // Whether this replica may act as leader at `now` (renewed within renew_deadline).
  bool IsLeader(TimePoint now);
  // When to read the Lease again.
  TimePoint NextAttempt() const { return next_attempt_; }
  // The write that releases a held Lease (nullopt when not leader).
  std::optional<Write> Release(const std::string& now_micro) const;
  // Current holder as last observed ("" = none or unknown).
  const std::string& observed_holder() const { return observed_holder_; }
  std::vector<Diagnostic> TakeDiagnostics() { return std::move(diagnostics_); }

 private:
  nlohmann::json LeaseBody(const nlohmann::json* old, const std::string& now_micro) const;
  void Schedule(TimePoint now);
  void StepDown(TimePoint now, const std::string& why);
  // A failed read or write of the Lease: a warning when the failure is new (with what a 403 or
  // 404 usually means), a debug line when it repeats; Recovered() logs the end of a failure run.
  void LeaseAccessFailed(const char* what, int code);
  void LeaseAccessRecovered();

  LeaderOptions options_;
  std::function<double()> rand01_;
  bool leader_ = false;
  std::optional<int> failing_code_;  // HTTP status (0: no answer) of the current run of failures
  uint64_t failing_repeats_ = 0;  // failures of that run not logged as warnings
  TimePoint last_renew_{};
  TimePoint next_attempt_{};
  // The last observed record (spec without renewTime changes counting) and when it changed.
  nlohmann::json observed_spec_;
  std::string observed_rv_;
  std::string observed_holder_;
  TimePoint observed_time_{};
  std::vector<Diagnostic> diagnostics_;
};

}  // namespace doorman::controller::kube
