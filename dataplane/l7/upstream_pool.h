// Per-worker pool of idle keep-alive connections to backend endpoints, keyed by "address:port"
// (plus the TLS identity for HTTPS backends). LIFO (the most recently used connection is the
// least likely to have been closed by the backend), bounded per key and per worker, aged out by
// a periodic Sweep().
//
// Every connection Take() hands out has just been checked with a non-blocking peek
// (recv(MSG_PEEK|MSG_DONTWAIT)): one the backend closed (FIN/RST) or that carries anything
// unsolicited (a late body after HEAD/204/304, an extra byte after a Content-Length body, a 408)
// is discarded — the next client never reads someone else's bytes. One system call per reuse;
// a read left pending on idle connections was measured to cost the same system call with Asio
// 1.74 (its speculative read) plus a cancel, so the peek stays. The residual race (the backend
// closes just as the connection is reused) is handled by the proxy retrying an idempotent
// body-less request once on a fresh connection. The proxy keeps a client connection's last
// upstream connection outside the pool only while that client's next request is already
// buffered (pipelined); a client that waits returns it here (see HttpSession::Hold).
// Not thread-safe: one per worker, used on that worker's thread only.
#pragma once

#include <chrono>
#include <memory>
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

// A pooled connection: a plain socket, or a TLS stream over one (the proxy's own type).
class PooledConnection {
 public:
  virtual ~PooledConnection() = default;
  virtual Socket& socket() = 0;  // the TCP socket underneath (peeked, closed)
  // Bytes already read from the socket but not consumed: a TLS engine reads whole packets and
  // hands out one record at a time, so a stray record can wait there, out of the peek's sight.
  virtual bool HasBufferedInput() { return false; }
};

class UpstreamPool {
 public:
  // A live idle connection for `key`, or null.
  std::unique_ptr<PooledConnection> Take(const std::string& key);
  void Put(const std::string& key, std::unique_ptr<PooledConnection> connection);
  void Sweep();  // drops closed, chatty and aged-out connections
  void Close();  // drops every connection and refuses further Put()s (shutdown)
  std::size_t idle_count() const { return total_; }

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
// The same for a connection: nothing buffered above the socket either (HasBufferedInput).
bool IdleConnectionAlive(PooledConnection& c);

}  // namespace doorman::dataplane
