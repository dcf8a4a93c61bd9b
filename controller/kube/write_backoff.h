// Per-object backoff and log dedupe for writes that keep failing (a 403 from RBAC, a 422 from
// validation, a hanging /status): one broken object must neither hammer the API server nor flood
// the log, and must not delay the others. Pure: the caller passes the time and the random source.
//
// Each key (e.g. "status LoadBalancer/default/shop") has a backoff that starts at `initial` and
// doubles to `max`, with "equal jitter" (half fixed, half random) like Reflector::Backoff and
// dataplane/config/backoff.h. It resets when a write succeeds, or when what the key should be
// written with changes (the `desired` fingerprint): a new desired state is tried at once.
// Failures are logged the first time and whenever the error changes; repeats are counted and
// reported with the next line (error changed, or recovered).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

namespace doorman::controller::kube {

struct WriteBackoffOptions {
  std::chrono::milliseconds initial{500};
  std::chrono::milliseconds max{std::chrono::minutes(5)};
};

class WriteBackoff {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // What to log for a failure or a recovery; nullopt = nothing (a repeat of the logged error).
  struct LogLine {
    bool recovered = false;     // the write succeeded after failures
    std::string error;          // the error now (empty when recovered)
    std::string previous;       // the error logged before ("" on the first failure)
    uint64_t repeats = 0;       // failures of `previous` not logged since it was
    uint64_t failures = 0;      // consecutive failures, this one included
    std::chrono::milliseconds retry_in{0};
  };

  WriteBackoff(WriteBackoffOptions options, std::function<double()> rand01);

  // Whether a write of `desired` for `key` may be attempted at `now`. A different `desired` than
  // the one that failed resets the backoff (and is allowed at once).
  bool Ready(const std::string& key, const std::string& desired, TimePoint now);
  // The attempt failed with `error`: schedules the next one.
  std::optional<LogLine> Failed(const std::string& key, const std::string& desired, const std::string& error,
                                TimePoint now);
  // The attempt succeeded (or is moot: object deleted). Logs a recovery after failures.
  std::optional<LogLine> Succeeded(const std::string& key);
  // Whether `key` is failing now (its writes are deferred to the end of a pass).
  bool Failing(const std::string& key) const { return entries_.count(key) != 0; }
  std::optional<TimePoint> NextAttempt(const std::string& key) const;
  // Drops keys not in `keep` (objects gone); Clear() drops all (leadership changed).
  void Retain(const std::set<std::string>& keep);
  void Clear() { entries_.clear(); }
  size_t size() const { return entries_.size(); }

  // The delay after `failures` consecutive failures (>= 1): initial·2^(failures-1), capped, in
  // [0.5, 1) of that.
  std::chrono::milliseconds Delay(uint64_t failures, double unit_random) const;

 private:
  struct Entry {
    std::string desired;
    std::string error;  // last logged error
    uint64_t failures = 0;
    uint64_t repeats = 0;
    TimePoint next{};
  };
  WriteBackoffOptions options_;
  std::function<double()> rand01_;
  std::map<std::string, Entry> entries_;
};

}  // namespace doorman::controller::kube
