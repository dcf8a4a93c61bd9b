// Runs LeaderElection against the API: a thread that reads and writes the Lease when the state
// machine says so. Stop() releases a held Lease.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <random>
#include <thread>

#include "controller/kube/http.h"
#include "controller/kube/leader.h"
#include "controller/status/status.h"

namespace doorman::controller::kube {

class LeaderRunner {
 public:
  // `on_change(true|false)` is called from the runner's thread when leadership changes.
  LeaderRunner(KubeHttp* http, LeaderOptions options, std::function<void(bool)> on_change);
  ~LeaderRunner();
  LeaderRunner(const LeaderRunner&) = delete;
  LeaderRunner& operator=(const LeaderRunner&) = delete;

  void Start();
  // Stops trying (no new attempt starts; one in flight finishes or is cancelled by the client).
  // Returns at once: the first step of shutdown, before KubeHttp::BeginShutdown.
  void RequestStop();
  // Stops trying, joins the thread; when leader, releases the Lease (holderIdentity "",
  // leaseDurationSeconds 1).
  void Stop();
  bool IsLeader();

 private:
  void Run();
  void Attempt();

  KubeHttp* http_;
  LeaderOptions options_;
  std::function<void(bool)> on_change_;
  std::mutex mu_;  // guards election_, rng_
  std::mt19937_64 rng_;
  LeaderElection election_;
  bool was_leader_ = false;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

// Publishes this replica's connected dataplanes in its own view Lease (status.h: kViewLabel) and,
// for the leader, reads the other replicas' views. Called from the status loop's thread only.
// Writes only when the content changed (at most once per retry period) or half the lease
// duration passed since the last write. Stop() deletes the Lease (SIGTERM).
class ViewPublisher {
 public:
  ViewPublisher(KubeHttp* http, const LeaderOptions& options);
  void Publish(const std::vector<status::DataplaneView>& own);
  // The live views of the other replicas (own view Lease excluded); nullopt when listing failed.
  std::optional<std::vector<status::PeerView>> ListPeers();
  void Stop();

 private:
  KubeHttp* http_;
  LeaderOptions options_;
  std::string name_;
  std::string rv_;  // resourceVersion of our Lease as last stored ("" = unknown / absent)
  std::string last_content_;
  bool written_ = false;
  std::chrono::steady_clock::time_point last_write_{};
  std::chrono::steady_clock::time_point next_try_{};
  std::optional<std::vector<status::PeerView>> peers_cache_;  // the last successful list
  std::chrono::steady_clock::time_point peers_listed_{};
  // Failures are logged once per HTTP status (again when it changes, and on recovery), and a
  // failed LIST waits a retry period too.
  std::optional<int> publish_failure_, list_failure_;
  std::chrono::steady_clock::time_point list_failed_at_{};
};

// The Lease that keeps, across replicas and restarts, the last accepted versions the leader
// serves in place of invalid objects (status.h: kLastGoodAnnotation). Read once at start-up by
// every replica (before its first snapshot), written by the leader when the set changes.
class LastGoodLease {
 public:
  LastGoodLease(KubeHttp* http, const LeaderOptions& options);
  // The saved versions (empty when the Lease does not exist); nullopt when it could not be read.
  std::optional<std::map<ObjectKey, nlohmann::json>> Read();
  // Stores `objects` when they differ from what this replica stored last. After a failure, the
  // next try waits a retry period. Nothing is written before a Read() succeeded: a leader that
  // could not read the Lease must not replace entries it never adopted.
  void Write(const std::map<ObjectKey, nlohmann::json>& objects);
  // Leadership changed: the next Write stores again whatever was stored last (another leader
  // may have written since).
  void Reset();

 private:
  KubeHttp* http_;
  LeaderOptions options_;
  std::string name_;
  std::string rv_;  // resourceVersion of the Lease as last stored ("" = unknown / absent)
  std::string last_content_;
  bool written_ = false;
  std::atomic<bool> read_ok_{false};  // set by Read() (the controller loop's thread)
  std::chrono::steady_clock::time_point next_try_{};
  std::string last_left_out_;  // the objects left out for size, as last warned
};

}  // namespace doorman::controller::kube
