// L4 UDP forwarding. Each worker has its own SO_REUSEPORT datagram socket per UDP listener (the
// kernel hashes a client's 4-tuple to one socket, so a flow stays on one worker and the flow
// table needs no lock). A flow = one client address:port and the local address it sent to → one
// backend endpoint, chosen by the route's scheduler when the first datagram arrives and pinned
// until the flow expires.
// * Each flow has its own connected socket towards the backend (an ephemeral port), so replies
//   are matched to the flow by the kernel; replies go back to the client from the listener's
//   own socket with the datagram's local address as source (IP_PKTINFO / IPV6_PKTINFO), i.e.
//   from the address and port the client sent to, also on a wildcard-bound listener.
// * Idle expiry: the route's policy.timeouts.idle, else Listener.idle_timeout_ms, default
//   kDefaultUdpIdleTimeout (30 s, like conntrack/IPVS UDP timeouts), checked by a
//   once-a-second sweep.
// * Bounded: at most SharedState::udp_max_flows (--udp-max-flows, default
//   kDefaultUdpMaxFlowsPerWorker) flows per worker and listener; datagrams that would need a new
//   flow beyond it are dropped and counted (doorman_l4_drops_total{reason="udp_table_full"}),
//   while the existing flows keep working; expired flows make room again. All flows together
//   also stay within SharedState::udp_flow_descriptors (half the open-file limit). Datagrams with no
//   eligible backend: reason "no_backend".
#pragma once

#include <memory>
#include <string>

#include "dataplane/server/asio_types.h"

#include <boost/asio/ip/udp.hpp>

namespace doorman::dataplane {

class Worker;

using udp = net::ip::udp;
using UdpSocket = net::basic_datagram_socket<udp, Executor>;

inline constexpr std::size_t kMaxDatagram = 65535;

// Starts serving `socket` (bound, SO_REUSEPORT) on the worker; stops when it is closed.
void StartUdpListener(Worker& worker, std::shared_ptr<UdpSocket> socket, const std::string& listener_name);

}  // namespace doorman::dataplane
