// Source-IP persistence (RoutePolicy.stickiness SOURCE_IP, Service sessionAffinity: ClientIP):
// client key hash → endpoint key, valid for `ttl` after the client's last new connection, and
// while a connection to it lives (Hold/Release) plus `ttl` after the last one ends (IPVS
// "persistence timeout" semantics: a template does not expire while it controls connections,
// and its timer restarts when one ends). Pure apart from a mutex: the clock is a parameter.
// Shared by every worker (a client's connections land on different workers), so it takes a
// lock — only on routes that ask for stickiness, once per new connection, sharded 16 ways.
// Bounded: at most `max_entries` (expired entries are purged first, by one scan of the shard
// at most once a second — not on every new client of a full table, under a lock every worker
// takes; when still full, a new client is simply not remembered — it is balanced normally).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace doorman::lb {

inline constexpr int64_t kDefaultStickyTtlMs = 3 * 3600 * 1000;  // 3 h, as kube-proxy ClientIP
inline constexpr std::size_t kDefaultStickyMaxEntries = 1 << 16;

class StickyTable {
 public:
  explicit StickyTable(int64_t ttl_ms = kDefaultStickyTtlMs, std::size_t max_entries = kDefaultStickyMaxEntries)
      : ttl_ms_(ttl_ms), max_per_shard_(max_entries / kShards + 1) {}

  // The endpoint key remembered for `client`, if still valid at `now_ms`.
  std::optional<std::string> Lookup(uint64_t client, int64_t now_ms);
  // Remembers (or refreshes) client → endpoint until now_ms + ttl.
  void Remember(uint64_t client, const std::string& endpoint_key, int64_t now_ms);
  // A connection to `endpoint_key` opened for `client`: its entry does not expire until the
  // matching Release. Returns the token for Release; 0 (nothing held) when the client is not
  // remembered with that endpoint.
  uint64_t Hold(uint64_t client, const std::string& endpoint_key);
  // That connection ended at `now_ms`: the entry lives at least until now_ms + ttl. A token of
  // an entry since forgotten or re-pinned to another endpoint does nothing.
  void Release(uint64_t client, uint64_t token, int64_t now_ms);
  void Forget(uint64_t client);
  std::size_t size();
  int64_t ttl_ms() const { return ttl_ms_; }

 private:
  static constexpr std::size_t kShards = 16;
  struct Entry {
    std::string endpoint;
    int64_t expires_ms;
    uint64_t token = 0;  // this pinning's, for Hold/Release (a new one when the endpoint changes)
    uint32_t held = 0;   // connections open under it: not expired while > 0
    bool Expired(int64_t now_ms) const { return held == 0 && expires_ms <= now_ms; }
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<uint64_t, Entry> map;
    int64_t next_purge_ms = 0;  // a full shard is scanned for expired entries at most once a second
    uint64_t next_token = 1;
  };
  Shard& ShardOf(uint64_t client) { return shards_[client % kShards]; }

  int64_t ttl_ms_;
  std::size_t max_per_shard_;
  std::array<Shard, kShards> shards_;
};

// One connection's Hold on a StickyTable entry: released once, by Release or else by the
// destructor (at std::chrono::steady_clock's now, the clock the proxies pass the table), so a
// connection that ends on any path never leaves its client pinned for ever. Move-only: a copy
// released twice would drop another connection's hold.
class StickyHold {
 public:
  StickyHold() = default;
  StickyHold(std::shared_ptr<StickyTable> table, uint64_t client, uint64_t token)
      : table_(token != 0 ? std::move(table) : nullptr), client_(client), token_(token) {}
  StickyHold(StickyHold&& o) noexcept : table_(std::move(o.table_)), client_(o.client_), token_(o.token_) {}
  StickyHold& operator=(StickyHold&& o) noexcept;
  StickyHold(const StickyHold&) = delete;
  StickyHold& operator=(const StickyHold&) = delete;
  ~StickyHold();

  void Release(int64_t now_ms);
  bool held() const { return table_ != nullptr; }

 private:
  std::shared_ptr<StickyTable> table_;
  uint64_t client_ = 0;
  uint64_t token_ = 0;
};

}  // namespace doorman::lb
