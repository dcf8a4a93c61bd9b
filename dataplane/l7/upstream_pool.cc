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

std::optional<Socket> UpstreamPool::Take(const std::string& key, bool verify) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return std::nullopt;
  auto& v = it->second;
  const auto now = std::chrono::steady_clock::now();
  while (!v.empty()) {
    Idle idle = std::move(v.back());
    v.pop_back();
    const auto idle_for = now - idle.since;
    if (idle_for < kMaxPooledIdle && ((!verify && idle_for < kPeekAfterIdle) || IdleSocketAlive(idle.socket))) {
      return std::move(idle.socket);
    }
    boost::system::error_code ignored;
    idle.socket.close(ignored);
  }
  return std::nullopt;
}

void UpstreamPool::Put(const std::string& key, Socket socket) {
  boost::system::error_code ignored;
  if (closed_ || !socket.is_open()) {
    socket.close(ignored);
    return;
  }
  auto& v = idle_[key];
  if (v.size() >= kMaxIdlePerEndpoint) {
    // Drop the oldest: keep the hot end of the LIFO.
    v.front().socket.close(ignored);
    v.erase(v.begin());
  }
  v.push_back(Idle{std::move(socket), std::chrono::steady_clock::now()});
}

void UpstreamPool::Sweep() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& v = it->second;
    std::vector<Idle> keep;
    keep.reserve(v.size());
    for (auto& idle : v) {
      if (now - idle.since < kMaxPooledIdle && IdleSocketAlive(idle.socket)) {
        keep.push_back(std::move(idle));
      } else {
        boost::system::error_code ignored;
        idle.socket.close(ignored);
      }
    }
    v = std::move(keep);
    it = v.empty() ? idle_.erase(it) : std::next(it);
  }
}

void UpstreamPool::Close() {
  closed_ = true;
  for (auto& [key, v] : idle_) {
    for (auto& idle : v) {
      boost::system::error_code ignored;
      idle.socket.close(ignored);
    }
  }
  idle_.clear();
}

std::size_t UpstreamPool::idle_count() const {
  std::size_t n = 0;
  for (const auto& [key, v] : idle_) n += v.size();
  return n;
}

}  // namespace doorman::dataplane
