// L4 TCP forwarding: one session per accepted client connection, pinned for its whole life to
// the backend endpoint chosen at accept time from the then-current RuntimeConfig (a config
// update never moves or closes it). Bytes flow both ways with correct half-close: a FIN from one
// side becomes shutdown(SHUT_WR) towards the other while the opposite direction keeps flowing;
// a reset or error on either side closes both. Idle timeout: Route.policy.timeouts.idle_ms, else
// Listener.idle_timeout_ms (default 350 s), measured as time without bytes in either direction.
#pragma once

#include <string>

#include "dataplane/server/asio_types.h"

namespace doorman::dataplane {

class Worker;

// At most this many distinct endpoints are tried when connects fail (each bounded by the
// route's connect timeout, default 5 s).
inline constexpr std::size_t kMaxConnectAttempts = 3;

void StartTcpSession(Worker& worker, Socket client, const std::string& listener_name);

}  // namespace doorman::dataplane
