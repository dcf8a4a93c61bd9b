#include "dataplane/lb/sticky_table.h"

namespace doorman::lb {

std::optional<std::string> StickyTable::Lookup(uint64_t client, int64_t now_ms) {
  auto& s = ShardOf(client);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(client);
  if (it == s.map.end()) return std::nullopt;
  if (it->second.expires_ms <= now_ms) {
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
      e = e->second.expires_ms <= now_ms ? s.map.erase(e) : std::next(e);
    }
    if (s.map.size() >= max_per_shard_) return;  // full of live clients: do not remember
  }
  s.map[client] = Entry{endpoint_key, now_ms + ttl_ms_};
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

}  // namespace doorman::lb
