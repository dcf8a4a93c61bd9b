#include "dataplane/l7/upstream_pool.h"

#include <sys/socket.h>

#include <cerrno>

namespace doorman::dataplane {

bool IdleSocketAlive(Socket& s) {
  if (!s.is_open()) return false;
  char c;
  const ssize_t n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

bool IdleConnectionAlive(PooledConnection& c) { return !c.HasBufferedInput() && IdleSocketAlive(c.socket()); }

std::unique_ptr<PooledConnection> UpstreamPool::Take(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  auto& v = it->second;
  const auto now = std::chrono::steady_clock::now();
  std::unique_ptr<PooledConnection> out;
  while (!v.empty() && !out) {
    Idle idle = std::move(v.back());
    v.pop_back();
    --total_;
    if (now - idle.since >= kMaxPooledIdle || !IdleConnectionAlive(*idle.connection)) continue;  // closes
    out = std::move(idle.connection);
  }
  if (v.empty()) idle_.erase(it);
  return out;
}

void UpstreamPool::Put(const std::string& key, std::unique_ptr<PooledConnection> connection) {
  if (closed_ || !connection->socket().is_open()) return;  // destroying it closes it
  auto& v = idle_[key];
  if (v.size() >= kMaxIdlePerEndpoint) {
    v.erase(v.begin());  // drop the oldest: keep the hot end
    --total_;
  }
  if (total_ >= kMaxIdlePerWorker) {
    if (v.empty()) idle_.erase(key);
    return;  // the worker's pool is full: this connection closes
  }
  v.push_back(Idle{std::move(connection), std::chrono::steady_clock::now()});
  ++total_;
}

void UpstreamPool::Sweep() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& v = it->second;
    std::vector<Idle> keep;
    keep.reserve(v.size());
    for (auto& idle : v) {
      if (now - idle.since < kMaxPooledIdle && IdleConnectionAlive(*idle.connection)) keep.push_back(std::move(idle));
    }
    total_ -= v.size() - keep.size();
    v = std::move(keep);
    it = v.empty() ? idle_.erase(it) : std::next(it);
  }
}

void UpstreamPool::Close() {
  closed_ = true;
  idle_.clear();
  total_ = 0;
}

}  // namespace doorman::dataplane
