// Per-worker pool of idle keep-alive connections to backend endpoints, keyed by "address:port".
// LIFO (the most recently used connection is the least likely to have been closed by the
// backend), bounded per endpoint, aged out by a periodic Sweep(). A connection handed out by
// Take(key, verify=true), or one idle for longer than kPeekAfterIdle, has just been checked with a
// non-blocking peek: one the backend closed (FIN/RST) or that carries unexpected bytes is
// discarded. The proxy asks for the peek before requests it could not retry (with a body); a
// body-less request skips it for a connection that was busy a moment ago (a syscall per request
// saved), and the residual race (the backend closes just as we reuse) is handled by retrying that
// request once on a fresh connection.
// Not thread-safe: one per worker, used on that worker's thread only.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "dataplane/server/asio_types.h"

namespace doorman::dataplane {

inline constexpr std::size_t kMaxIdlePerEndpoint = 64;
// Across all keys of a worker: a route whose backends are pooled per client-chosen Host (HTTPS
// backends without a server name) cannot make a worker hoard connections.
inline constexpr std::size_t kMaxIdlePerWorker = 1024;
inline constexpr std::chrono::seconds kMaxPooledIdle{30};
inline constexpr std::chrono::seconds kPeekAfterIdle{1};

// A pooled connection: a plain socket, or a TLS stream over one (the proxy's own type).
class PooledConnection {
 public:
  virtual ~PooledConnection() = default;
  virtual Socket& socket() = 0;  // the TCP socket underneath (peeked, closed)
};

class UpstreamPool {
 public:
  std::unique_ptr<PooledConnection> Take(const std::string& key, bool verify = true);
  void Put(const std::string& key, std::unique_ptr<PooledConnection> connection);
  void Sweep();
  void Close();  // drops every connection and refuses further Put()s (shutdown)
  std::size_t idle_count() const;

 private:
  struct Idle {
    std::unique_ptr<PooledConnection> connection;
    std::chrono::steady_clock::time_point since;
  };
  std::unordered_map<std::string, std::vector<Idle>> idle_;
  bool closed_ = false;
  std::size_t total_ = 0;  // idle connections over all keys
};

// True when a pooled socket still looks usable: no EOF, no error, no unread bytes.
bool IdleSocketAlive(Socket& s);

}  // namespace doorman::dataplane
