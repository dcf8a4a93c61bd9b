// Outbound connections to backend endpoints, shared by the L4 and L7 proxies.
#pragma once

#include <chrono>

#include "dataplane/config/runtime_config.h"
#include "dataplane/server/asio_types.h"

namespace doorman::dataplane {

// Connects a new socket (on `ex`) to `endpoint` within `timeout`; sets TCP_NODELAY. On failure
// `ec` is set (boost::beast::error::timeout when the deadline passed) and the socket is closed.
// `connecting`, when given, points at the socket while the connect is in progress (else null), so
// the caller can cancel it (ec: operation_aborted).
Task<Socket> ConnectTo(Executor ex, const Endpoint& endpoint, std::chrono::milliseconds timeout,
                       boost::system::error_code& ec, Socket** connecting = nullptr);

bool IsTimeout(const boost::system::error_code& ec);

// A connect that failed on this side, not the backend's: out of descriptors (EMFILE, ENFILE),
// memory or buffers (ENOMEM, ENOBUFS), which socket(2) reports. Such a failure must not count
// against the backend (outlier ejection, health checks): every backend would fail alike.
// EADDRNOTAVAIL is not one: connect(2) reports it for one endpoint (an IPv6 address on a node
// without IPv6, the local ports towards one backend used up), and other endpoints may work.
bool IsLocalResourceError(const boost::system::error_code& ec);

}  // namespace doorman::dataplane
