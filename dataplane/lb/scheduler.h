// The seam between a route and its balancing algorithm (HAProxy-style: one small ops table, one
// file per algorithm). A Scheduler is built once per compiled route from its candidates (the
// route's eligible endpoints, each with a weight and a shared EndpointState) and is then shared,
// immutable apart from lock-free cursors, by every worker thread. Shared by L4 and L7.
//
//   auto s = MakeScheduler(SchedulerKind::kMaglev, candidates);
//   auto i = s->Pick(PickContext{.hash = HashClient(ip)});   // index into candidates
//   s->OnConnect(*i); ... s->OnDisconnect(*i);              // least-connections / p2c load
//
// Health: a candidate that is not Available() (unhealthy, or ejected by outlier detection) is
// skipped. When no candidate is healthy the
// scheduler picks among all of them (Envoy's "panic mode": fail open — a wrong health check
// must not black-hole a service; documented in docs/l4.md).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace doorman::lb {

// Per-endpoint state that outlives one compiled config: the dataplane carries it over to the
// next snapshot for an unchanged endpoint key, so neither health nor load counts reset on update.
struct EndpointState {
  std::atomic<int64_t> active{0};     // open connections / in-flight requests to this endpoint
  // Steady-clock milliseconds when the endpoint left the routing state (0 = still in it): its
  // pinned connections drain until they close or the drain timeout passes.
  std::atomic<int64_t> removed_at_ms{0};
  // Passive outlier detection (L7, OutlierDetector), shared by every worker so an endpoint is
  // ejected after N failures in a row seen by the dataplane, not by each worker.
  std::atomic<uint32_t> consecutive_failures{0};
  std::atomic<uint32_t> ejections{0};           // ejections in a row (the period doubles each)
  std::atomic<int64_t> ejected_until_ms{0};     // steady-clock ms; 0 = never ejected
};
using EndpointStatePtr = std::shared_ptr<EndpointState>;

// The verdict of one active health check of one endpoint. Per (endpoint, check), not per
// endpoint: a backend set's check decides for the sets that declare the same check only (an
// Envoy cluster's / an ALB target group's health), so one object's check never takes an
// endpoint out of another object's routes; a set without a check has none (always healthy).
// Written by the health checker, read by Pick(); carried over to the next snapshot for the same
// endpoint and check.
struct HealthSlot {
  std::atomic<bool> healthy{true};
};
using HealthSlotPtr = std::shared_ptr<HealthSlot>;

inline bool Healthy(const HealthSlot* h) { return h == nullptr || h->healthy.load(std::memory_order_relaxed); }

// Steady-clock milliseconds (the clock of EndpointState::ejected_until_ms).
inline int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Whether passive outlier detection has the endpoint out now. The clock is read only for an
// endpoint that was ever ejected.
inline bool Ejected(const EndpointState& s) {
  const int64_t until = s.ejected_until_ms.load(std::memory_order_relaxed);
  return until != 0 && until > SteadyNowMs();
}

// Whether an endpoint may take new traffic: healthy by its set's active check (`health`, null =
// unchecked) and not ejected by passive outlier detection.
inline bool Available(const EndpointState& s, const HealthSlot* health) { return Healthy(health) && !Ejected(s); }

struct Candidate {
  std::string key;          // stable identity ("10.0.0.1:8080"): Maglev permutations derive from it
  uint32_t weight = 1;      // relative, > 0
  EndpointStatePtr state;   // never null once built by MakeScheduler (one is created if missing)
  HealthSlotPtr health;     // its set's active check; null = not checked (healthy)
};

inline bool Available(const Candidate& c) { return Available(*c.state, c.health.get()); }

struct PickContext {
  uint64_t hash = 0;        // client key hash (source IP) for source-hash and maglev
  uint64_t random = 0;      // entropy for p2c; 0 = use the scheduler's own generator
};

enum class SchedulerKind { kRoundRobin, kWeightedRoundRobin, kLeastConnections, kSourceHash, kMaglev, kP2c };

// API.md names ("round-robin", ..., "p2c"; "" = round-robin). nullopt for an unknown name.
std::optional<SchedulerKind> ParseSchedulerName(std::string_view name);
std::string_view SchedulerName(SchedulerKind kind);

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // Index of the chosen candidate, or nullopt when there is none (empty set, or all weights 0).
  // Thread-safe; never blocks.
  virtual std::optional<std::size_t> Pick(const PickContext& ctx) = 0;
  std::optional<std::size_t> Pick() { return Pick(PickContext{}); }

  // Number of candidates Pick() can return (weight > 0).
  virtual std::size_t eligible() const = 0;

  // Load accounting for least-connections and p2c (no-ops for the others are harmless: the
  // counters live in EndpointState and are shared by all schedulers of that endpoint).
  virtual void OnConnect(std::size_t index) = 0;
  virtual void OnDisconnect(std::size_t index) = 0;
};

using SchedulerPtr = std::unique_ptr<Scheduler>;

// Builds the scheduler of `kind` over `candidates` (weights 0 are excluded from picks).
SchedulerPtr MakeScheduler(SchedulerKind kind, std::vector<Candidate> candidates);

// 64-bit mixing hash of a client key (e.g. the 4 or 16 address bytes). Stable across processes.
uint64_t HashKey(std::string_view bytes, uint64_t seed = 0);

// The next hash in a client's stable fallback sequence (attempt `k` = 1, 2, ...): used to move a
// hashed pick past an unusable or already-tried endpoint without losing determinism.
inline uint64_t Rehash(uint64_t h, uint64_t k) {
  return HashKey(std::string_view(reinterpret_cast<const char*>(&h), sizeof h), k);
}

// Shared base: owns the candidates; implements load hooks and the panic rule.
class CandidateScheduler : public Scheduler {
 public:
  explicit CandidateScheduler(std::vector<Candidate> candidates);
  std::size_t eligible() const override { return eligible_; }
  void OnConnect(std::size_t i) override;
  void OnDisconnect(std::size_t i) override;
  const std::vector<Candidate>& candidates() const { return c_; }

 protected:
  bool Usable(std::size_t i) const { return c_[i].weight > 0 && Available(c_[i]); }
  bool AnyHealthy() const;
  // Hash-table schedulers (source-hash, maglev): `table[hash % size]`; an unusable target is
  // replaced by re-hashing up to `rehashes` times (a stable fallback per client), then by the next
  // usable candidate; if none is usable, the first pick (panic mode).
  std::optional<std::size_t> PickFromTable(const std::vector<uint32_t>& table, uint64_t hash, int rehashes) const;
  std::vector<Candidate> c_;
  std::size_t eligible_ = 0;
};

}  // namespace doorman::lb
