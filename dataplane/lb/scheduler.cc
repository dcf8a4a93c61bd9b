#include "dataplane/lb/scheduler.h"

#include "dataplane/lb/least_connections.h"
#include "dataplane/lb/maglev.h"
#include "dataplane/lb/p2c.h"
#include "dataplane/lb/round_robin.h"
#include "dataplane/lb/source_hash.h"

namespace doorman::lb {

std::optional<SchedulerKind> ParseSchedulerName(std::string_view name) {
  if (name.empty() || name == "round-robin") return SchedulerKind::kRoundRobin;
  if (name == "weighted-round-robin") return SchedulerKind::kWeightedRoundRobin;
  if (name == "least-connections") return SchedulerKind::kLeastConnections;
  if (name == "source-hash") return SchedulerKind::kSourceHash;
  if (name == "maglev") return SchedulerKind::kMaglev;
  if (name == "p2c") return SchedulerKind::kP2c;
  return std::nullopt;
}

std::string_view SchedulerName(SchedulerKind kind) {
  switch (kind) {
    case SchedulerKind::kRoundRobin:
      return "round-robin";
    case SchedulerKind::kWeightedRoundRobin:
      return "weighted-round-robin";
    case SchedulerKind::kLeastConnections:
      return "least-connections";
    case SchedulerKind::kSourceHash:
      return "source-hash";
    case SchedulerKind::kMaglev:
      return "maglev";
    case SchedulerKind::kP2c:
      return "p2c";
  }
  return "?";
}

SchedulerPtr MakeScheduler(SchedulerKind kind, std::vector<Candidate> candidates) {
  switch (kind) {
    case SchedulerKind::kRoundRobin: {
      // Plain round-robin ignores weights apart from 0 (= no traffic).
      for (auto& c : candidates) c.weight = c.weight > 0 ? 1 : 0;
      return std::make_unique<RoundRobin>(std::move(candidates));
    }
    case SchedulerKind::kWeightedRoundRobin:
      return std::make_unique<RoundRobin>(std::move(candidates));
    case SchedulerKind::kLeastConnections:
      return std::make_unique<LeastConnections>(std::move(candidates));
    case SchedulerKind::kSourceHash:
      return std::make_unique<SourceHash>(std::move(candidates));
    case SchedulerKind::kMaglev:
      return std::make_unique<Maglev>(std::move(candidates));
    case SchedulerKind::kP2c:
      return std::make_unique<P2c>(std::move(candidates));
  }
  return nullptr;
}

uint64_t HashKey(std::string_view bytes, uint64_t seed) {
  // FNV-1a then a murmur3 finaliser: FNV alone mixes the last bytes poorly (clients differing in
  // the last octet would land on neighbouring table slots).
  uint64_t h = 0xcbf29ce484222325ULL ^ (seed * 0x9e3779b97f4a7c15ULL);
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

CandidateScheduler::CandidateScheduler(std::vector<Candidate> candidates) : c_(std::move(candidates)) {
  for (auto& c : c_) {
    if (!c.state) c.state = std::make_shared<EndpointState>();
    if (c.weight > 0) ++eligible_;
  }
}

void CandidateScheduler::OnConnect(std::size_t i) {
  if (i < c_.size()) c_[i].state->active.fetch_add(1, std::memory_order_relaxed);
}

void CandidateScheduler::OnDisconnect(std::size_t i) {
  if (i < c_.size()) c_[i].state->active.fetch_sub(1, std::memory_order_relaxed);
}

bool CandidateScheduler::AnyHealthy() const {
  for (std::size_t i = 0; i < c_.size(); ++i) {
    if (Usable(i)) return true;
  }
  return false;
}

std::optional<std::size_t> CandidateScheduler::PickFromTable(const std::vector<uint32_t>& table, uint64_t hash,
                                                             int rehashes) const {
  if (table.empty()) return std::nullopt;
  const std::size_t first = table[hash % table.size()];
  if (Usable(first)) return first;
  uint64_t h = hash;
  for (int k = 1; k <= rehashes; ++k) {
    h = Rehash(h, static_cast<uint64_t>(k));
    const std::size_t i = table[h % table.size()];
    if (Usable(i)) return i;
  }
  for (std::size_t k = 1; k < c_.size(); ++k) {
    const std::size_t i = (first + k) % c_.size();
    if (Usable(i)) return i;
  }
  return first;  // panic mode
}

}  // namespace doorman::lb
