// L4 TCP forwarding: one session per accepted client connection, pinned for its whole life to
// the backend endpoint chosen at accept time from the then-current RuntimeConfig (a config
// update never moves or closes it).
//
// TCP hygiene:
// * Half-close: a FIN from one side becomes shutdown(SHUT_WR) towards the other while the
//   opposite direction keeps flowing.
// * Reset: a RST (or error) on one side resets the other (SO_LINGER 0 + close), so the peer
//   sees ECONNRESET rather than a clean EOF it could mistake for a complete response.
// * Keepalive on both legs (kTcpKeepalive* in runtime_config.h): the client leg inherits it from
//   the listening socket, the backend leg gets it at the first sweep after connecting (< 1 s,
//   far below the 60 s idle before the first probe).
// * Idle timeout: Route.policy.timeouts.idle_ms, else Listener.idle_timeout_ms (default 350 s),
//   measured as time without bytes in either direction; closed by a per-worker sweep once a
//   second (not a timer per connection), so it fires within [timeout, timeout + 1 s].
// * Drain: when the pinned endpoint leaves the routing state, the connection keeps flowing
//   until it closes or the drain timeout passes (= the listener's idle timeout, default 350 s);
//   unhealthy or terminating endpoints get no new connections but keep their existing ones.
#pragma once

#include <memory>
#include <string>

#include "dataplane/config/runtime_config.h"

#include "dataplane/server/asio_types.h"

namespace doorman::dataplane {

class Worker;
class ConnectionSlot;

// L7: at most this many distinct endpoints are tried when connects fail (each bounded by the
// route's connect timeout, default 5 s).
inline constexpr std::size_t kMaxConnectAttempts = 3;
inline constexpr std::chrono::milliseconds kL4SweepInterval{1000};

// `peer` is the client's address as accept() returned it; `config` the RuntimeConfig loaded at
// accept (used for the route unless the listener waits for a PROXY header first); `slot` counts
// the connection on `worker` for as long as the session lives.
void StartTcpSession(Worker& worker, Socket client, const std::string& listener_name, const tcp::endpoint& peer,
                     std::shared_ptr<const RuntimeConfig> config, ConnectionSlot slot);

// Sets keepalive (kTcpKeepalive*) on a socket.
void SetTcpKeepalive(int fd);

// The bytes a connected TCP socket has sent that its peer has not acknowledged yet (SIOCOUTQ):
// what a close with SO_LINGER 0 would throw away. 0 when the queue is empty, and when the
// connection is closed or its peer reset it (its queue then stays as it was, never emptying).
int UnsentBytes(int fd);

// For an L4 listening socket, before listen(): keepalive (kTcpKeepalive*) and TCP_NODELAY, which
// Linux copies to every accepted socket (five setsockopt calls less per connection).
void PrepareTcpListener(int fd);

}  // namespace doorman::dataplane
