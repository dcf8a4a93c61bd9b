#include "dataplane/lb/sticky_table.h"

#include <algorithm>
#include <chrono>

namespace doorman::lb {

std::optional<std::string> StickyTable::Lookup(uint64_t client, int64_t now_ms) {
  auto& s = ShardOf(client);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(client);
  if (it == s.map.end()) return std::nullopt;
  if (it->second.Expired(now_ms)) {
    s.map.erase(it);
    return std::nullopt;
  }
  return it->second.endpoint;
}

void StickyTable::Remember(uint64_t client, const std::string& endpoint_key, int64_t now_ms) {
  auto& s = ShardOf(client);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(client);
  if (it == s.map.end() && s.map.size() >= max_per_shard_) {
    if (now_ms < s.next_purge_ms) return;  // scanned less than a second ago: do not remember
    s.next_purge_ms = now_ms + 1000;
    for (auto e = s.map.begin(); e != s.map.end();) {
      e = e->second.Expired(now_ms) ? s.map.erase(e) : std::next(e);
    }
    if (s.map.size() >= max_per_shard_) return;  // full of live clients: do not remember
  }
  if (it != s.map.end() && it->second.endpoint == endpoint_key) {
    it->second.expires_ms = std::max(it->second.expires_ms, now_ms + ttl_ms_);
    return;
  }
  // New, or re-pinned elsewhere: the connections held under the old pinning no longer keep it.
  s.map[client] = Entry{endpoint_key, now_ms + ttl_ms_, s.next_token++, 0};
}

uint64_t StickyTable::Hold(uint64_t client, const std::string& endpoint_key) {
  auto& s = ShardOf(client);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(client);
  if (it == s.map.end() || it->second.endpoint != endpoint_key) return 0;
  ++it->second.held;
  return it->second.token;
}

void StickyTable::Release(uint64_t client, uint64_t token, int64_t now_ms) {
  if (token == 0) return;
  auto& s = ShardOf(client);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(client);
  if (it == s.map.end() || it->second.token != token || it->second.held == 0) return;
  --it->second.held;
  it->second.expires_ms = std::max(it->second.expires_ms, now_ms + ttl_ms_);
}

void StickyTable::Forget(uint64_t client) {
  auto& s = ShardOf(client);
  std::lock_guard lock(s.mu);
  s.map.erase(client);
}

std::size_t StickyTable::size() {
  std::size_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.map.size();
  }
  return n;
}

namespace {

int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

StickyHold& StickyHold::operator=(StickyHold&& o) noexcept {
  if (this != &o) {
    if (table_) Release(SteadyNowMs());
    table_ = std::move(o.table_);
    client_ = o.client_;
    token_ = o.token_;
  }
  return *this;
}

StickyHold::~StickyHold() {
  if (table_) Release(SteadyNowMs());
}

void StickyHold::Release(int64_t now_ms) {
  if (table_) table_->Release(client_, token_, now_ms);
  table_.reset();
}

}  // namespace doorman::lb
