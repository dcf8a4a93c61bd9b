#include "dataplane/l4/udp_proxy.h"
#include "dataplane/server/essential.h"
// GCC 12 + -fsanitize: false -Wmismatched-new-delete on Asio's coroutine frame allocator
// (awaitable_frame_base's operator new/delete pair); the pairing is correct.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "common/log.h"
#include "dataplane/l4/source_ranges.h"
#include "dataplane/l4/proxy_protocol.h"
#include "dataplane/l7/policy.h"
#include "dataplane/lb/scheduler.h"
#include "dataplane/server/worker.h"

namespace doorman::dataplane {
namespace {

using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr int kReadBatch = 64;  // datagrams read per readiness wakeup

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

struct EndpointHash {
  std::size_t operator()(const udp::endpoint& e) const {
    const auto a = e.address();
    std::string_view bytes;
    std::array<unsigned char, 16> b16{};
    std::array<unsigned char, 4> b4{};
    if (a.is_v4()) {
      b4 = a.to_v4().to_bytes();
      bytes = std::string_view(reinterpret_cast<const char*>(b4.data()), 4);
    } else {
      b16 = a.to_v6().to_bytes();
      bytes = std::string_view(reinterpret_cast<const char*>(b16.data()), 16);
    }
    return static_cast<std::size_t>(lb::HashKey(bytes, e.port()));
  }
};

uint64_t AddressHash(const udp::endpoint& e) {
  const auto a = e.address();
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    return lb::HashKey(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  }
  const auto b = a.to_v6().to_bytes();
  return lb::HashKey(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
}

// The local address a datagram was sent to (IP_PKTINFO / IPV6_PKTINFO). A listener bound to the
// wildcard (--bind-address 0.0.0.0, the DaemonSet's default) would otherwise answer from the
// address the routing table picks, which a client with a connected socket (resolvers, QUIC, NTP)
// or a stateful firewall drops when it sent to another local address (a VIP, a second node IP).
struct LocalAddr {
  bool known = false;
  bool v6 = false;
  std::array<unsigned char, 16> bytes{};  // 4 used for IPv4
  int ifindex = 0;                        // IPv6: needed for a link-local address
  bool operator==(const LocalAddr& o) const { return known == o.known && v6 == o.v6 && bytes == o.bytes; }
};

// A flow: one client address:port talking to one local address.
struct FlowKey {
  udp::endpoint client;
  LocalAddr local;
  bool operator==(const FlowKey& o) const { return client == o.client && local == o.local; }
};

struct FlowKeyHash {
  std::size_t operator()(const FlowKey& k) const {
    const std::size_t h = EndpointHash{}(k.client);
    if (!k.local.known) return h;
    const std::string_view b(reinterpret_cast<const char*>(k.local.bytes.data()), k.local.v6 ? 16 : 4);
    return h ^ (static_cast<std::size_t>(lb::HashKey(b)) * 0x9e3779b97f4a7c15ULL);
  }
};

// One datagram, its sender and the local address it was sent to; -1 with errno as recvmsg(2)
// (EAGAIN: nothing more now).
ssize_t ReceiveWithLocal(int fd, char* buf, std::size_t cap, udp::endpoint* from, LocalAddr* local) {
  sockaddr_storage ss{};
  iovec iov{buf, cap};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo))];
  msghdr msg{};
  msg.msg_name = &ss;
  msg.msg_namelen = sizeof ss;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(fd, &msg, 0);
  if (n < 0) return n;
  *local = LocalAddr{};
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      // ipi_spec_dst: the local address (for a broadcast, the interface's, not the broadcast).
      local->known = true;
      local->v6 = false;
      std::memcpy(local->bytes.data(), &pi.ipi_spec_dst, 4);
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      if (IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr)) continue;  // not a source to answer from
      local->known = true;
      local->v6 = true;
      std::memcpy(local->bytes.data(), &pi.ipi6_addr, 16);
      local->ifindex = static_cast<int>(pi.ipi6_ifindex);
    }
  }
  if (ss.ss_family == AF_INET) {
    sockaddr_in sin;
    std::memcpy(&sin, &ss, sizeof sin);
    *from = udp::endpoint(net::ip::address_v4(ntohl(sin.sin_addr.s_addr)), ntohs(sin.sin_port));
  } else if (ss.ss_family == AF_INET6) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, &ss, sizeof sin6);
    net::ip::address_v6::bytes_type b;
    std::memcpy(b.data(), &sin6.sin6_addr, 16);
    *from = udp::endpoint(net::ip::address_v6(b, sin6.sin6_scope_id), ntohs(sin6.sin6_port));
  } else {
    errno = EAFNOSUPPORT;
    return -1;
  }
  return n;
}

// Sends `data` to `to` from `local` when known. A local address that cannot be a source any more
// (removed from the host meanwhile) falls back to the routing table's choice.
void SendFrom(int fd, const char* data, std::size_t n, const udp::endpoint& to, const LocalAddr& local) {
  iovec iov{const_cast<char*>(data), n};
  msghdr msg{};
  msg.msg_name = const_cast<void*>(static_cast<const void*>(to.data()));
  msg.msg_namelen = static_cast<socklen_t>(to.size());
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
  // One control message, `value` of (level, type).
  auto put = [&](int level, int type, const auto& value) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof value);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(sizeof value);
    std::memcpy(CMSG_DATA(c), &value, sizeof value);
  };
  if (local.known && local.v6) {
    in6_pktinfo pi{};
    std::memcpy(&pi.ipi6_addr, local.bytes.data(), 16);
    pi.ipi6_ifindex = static_cast<unsigned>(local.ifindex);
    put(IPPROTO_IPV6, IPV6_PKTINFO, pi);
  } else if (local.known) {
    in_pktinfo pi{};
    std::memcpy(&pi.ipi_spec_dst, local.bytes.data(), 4);
    put(IPPROTO_IP, IP_PKTINFO, pi);
  }
  ssize_t r;
  while ((r = ::sendmsg(fd, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  if (r < 0 && local.known && (errno == EINVAL || errno == EADDRNOTAVAIL || errno == ENODEV)) {
    msg.msg_control = nullptr;
    msg.msg_controllen = 0;
    while (::sendmsg(fd, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
  }
  // Any other failure (a full buffer: EAGAIN) drops the reply, as UDP may.
}

class UdpListener;

struct Flow {
  udp::endpoint client;
  LocalAddr local;  // the address the client sent to: replies leave from it
  UdpSocket upstream;
  int64_t last_activity_ms = 0;
  lb::EndpointStatePtr endpoint_state;
  std::string endpoint_key;  // "address:port", for the ejection metric
  DrainFlag drain_flag;  // Listener::drain_flags of its endpoint: drains when it leaves the listener
  bool closed = false;
  bool proxy_accept = false;  // datagrams carry a PROXY v2 header (listener config at flow start)
  std::shared_ptr<lb::StickyTable> sticky;  // the route's source-IP persistence, if any
  uint64_t client_hash = 0;                 // the client's key in `sticky`
  lb::StickyHold sticky_hold;               // the client stays pinned while the flow lives
  explicit Flow(Executor ex) : upstream(ex) {}
};

class UdpListener : public std::enable_shared_from_this<UdpListener> {
 public:
  UdpListener(Worker& w, std::shared_ptr<UdpSocket> s, std::string name)
      : w_(w), sock_(std::move(s)), name_(std::move(name)), sweep_(w.executor()),
        active_(w.metrics().L4Active(name_)), rx_(w.metrics().L4Bytes(name_, true)),
        tx_(w.metrics().L4Bytes(name_, false)) {
    // Reads drain the socket until EAGAIN. The local-address ancillary data (IP_PKTINFO, also on
    // an IPv6 socket for IPv4-mapped clients) was turned on before bind (ListenerManager::BindUdp).
    error_code ec;
    sock_->non_blocking(true, ec);
  }

  ~UdpListener() {
    for (auto& [k, f] : flows_) CloseFlow(*f);
    Flush();
  }

  static Task<> Receive(std::shared_ptr<UdpListener> self) {
    std::vector<char> buf(kMaxDatagram);
    for (;;) {
      error_code ec;
      co_await self->sock_->async_wait(net::socket_base::wait_read, Redirect(ec));
      if (ec == net::error::operation_aborted || !self->sock_->is_open()) break;
      // What is queued, up to a batch (then the worker's other handlers get their turn).
      for (int i = 0; i < kReadBatch && self->sock_->is_open(); ++i) {
        udp::endpoint from;
        LocalAddr local;
        const ssize_t n = ReceiveWithLocal(self->sock_->native_handle(), buf.data(), buf.size(), &from, &local);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0) continue;  // e.g. an ICMP error surfaced on the socket: keep serving
        co_await self->OnDatagram(FlowKey{from, local}, buf.data(), static_cast<std::size_t>(n));
      }
    }
    self->sweep_.cancel();
    for (auto& [k, f] : self->flows_) self->CloseFlow(*f);
  }

  static Task<> Sweep(std::shared_ptr<UdpListener> self) {
    for (;;) {
      self->sweep_.expires_after(std::chrono::seconds(1));
      error_code ec;
      co_await self->sweep_.async_wait(Redirect(ec));
      if (ec || !self->sock_->is_open()) co_return;
      const int64_t now = NowMs();
      const int64_t idle = self->IdleMs();
      for (auto it = self->flows_.begin(); it != self->flows_.end();) {
        Flow& f = *it->second;
        // Idle, or its endpoint left the routing state (OnDatagram moves a flow that is still
        // sending; this ends those that went quiet, so their upstream sockets go too).
        if (now - f.last_activity_ms >= idle || Removed(f)) {
          self->CloseFlow(f);
          it = self->flows_.erase(it);
        } else {
          ++it;
        }
      }
      self->Flush();
    }
  }

 private:
  // Whether the flow's endpoint left its listener's routes (Listener::drain_flags).
  static bool Removed(const Flow& f) { return f.drain_flag && f.drain_flag->load(std::memory_order_relaxed) != 0; }

  // The route's policy.timeouts.idle, else the listener's idleTimeout (as TCP: tcp_proxy.cc),
  // read from the current config on every sweep, so an update applies to open flows too.
  int64_t IdleMs() const {
    const auto config = w_.shared().config.Load();
    const Listener* l = config ? config->FindListener(name_) : nullptr;
    if (l == nullptr) return kDefaultUdpIdleTimeout.count();
    const Route* route = l->routes.empty() ? nullptr : l->routes.front();
    return route != nullptr && route->idle_timeout.count() > 0 ? route->idle_timeout.count() : l->idle_timeout.count();
  }

  // Listener.proxy_protocol.accept over UDP: every datagram starts with a PROXY v2 header (the
  // spec's SOCK_DGRAM form; v1 is stream-only). The header is stripped; on a flow's first
  // datagram its source address is the client the scheduler hashes (source-hash, maglev,
  // SourceIP stickiness). Replies go back to the sender (the balancer in front), without a header.
  // A datagram without a valid v2 header is dropped and counted (reason proxy_protocol).
  bool StripProxyHeader(const char*& data, std::size_t& n, uint64_t* client_hash) {
    const auto r = l4::ParseProxyHeader(std::string_view(data, n));
    if (r.status != l4::ProxyParseResult::kDone || r.header.version != 2) {
      w_.metrics().L4Drops(name_, "proxy_protocol").Increment();
      return false;
    }
    if (client_hash != nullptr && l4::UsesAddresses(r.header, true)) {
      const auto& a = r.header.source;
      *client_hash = lb::HashKey(std::string_view(reinterpret_cast<const char*>(a.ip.data()), a.v6 ? 16 : 4));
    }
    data += r.consumed;
    n -= r.consumed;
    return true;
  }

  Task<> OnDatagram(const FlowKey& key, const char* data, std::size_t n) {
    const udp::endpoint& from = key.client;
    auto it = flows_.find(key);
    std::shared_ptr<Flow> flow;
    if (it != flows_.end() && Removed(*it->second)) {
      // Its endpoint left the routing state (the pod is going or gone): the flow ends and this
      // datagram opens a new one to a routed endpoint, as IPVS expires a UDP connection whose
      // real server was removed on its next packet (kube-proxy: expire_nodest_conn, no graceful
      // termination for UDP). Unlike a TCP connection there is nothing to drain: UDP carries no
      // close, and datagrams for a removed address would be lost for a whole idle timeout.
      CloseFlow(*it->second);
      flows_.erase(it);
      it = flows_.end();
    }
    if (it != flows_.end()) {
      flow = it->second;
      if (flow->proxy_accept && !StripProxyHeader(data, n, nullptr)) co_return;
    } else {
      const auto config = w_.shared().config.Load();
      const Listener* l = config ? config->FindListener(name_) : nullptr;
      // allowedSourceRanges / loadBalancerSourceRanges: checked when a flow would open, against
      // the datagram's sender (as TCP checks the peer at accept, before any PROXY header); a
      // flow that is open keeps going, as an established TCP connection does.
      if (l != nullptr && !l->allowed_source_ranges.empty() && !l4::SourceAllowed(l->allowed_source_ranges, from.address())) {
        w_.metrics().L4Drops(name_, "source_range").Increment();
        co_return;
      }
      uint64_t hash = AddressHash(from);
      const bool accept = l != nullptr && l->proxy_protocol_accept;
      if (accept && !StripProxyHeader(data, n, &hash)) co_return;
      flow = NewFlow(key, l, hash);
      if (!flow) co_return;
      flow->proxy_accept = accept;
    }
    flow->last_activity_ms = NowMs();
    rx_pending_ += n;
    error_code ec;
    // Non-blocking send on a connected socket: a full buffer drops the datagram, as UDP may.
    flow->upstream.send(net::buffer(data, n), 0, ec);
  }

  // `l`: the listener in the current config (held by the caller); `client_hash`: the client's key.
  std::shared_ptr<Flow> NewFlow(const FlowKey& key, const Listener* l, uint64_t client_hash) {
    SharedState& shared = w_.shared();
    if (flows_.size() >= shared.udp_max_flows ||
        (shared.udp_flow_descriptors != 0 &&
         shared.udp_flows.load(std::memory_order_relaxed) >= shared.udp_flow_descriptors)) {
      w_.metrics().L4Drops(name_, "udp_table_full").Increment();
      return nullptr;
    }
    const Route* route = (l && !l->routes.empty()) ? l->routes.front() : nullptr;
    const Endpoint* ep = route ? route->PickSticky(lb::PickContext{client_hash, 0}, NowMs()) : nullptr;
    if (ep == nullptr) {
      w_.metrics().L4Drops(name_, "no_backend").Increment();
      return nullptr;
    }
    auto flow = std::make_shared<Flow>(w_.executor());
    error_code ec;
    const auto addr = net::ip::make_address(ep->address, ec);
    if (!ec) flow->upstream.open(addr.is_v4() ? udp::v4() : udp::v6(), ec);
    if (!ec) flow->upstream.connect(udp::endpoint(addr, ep->port), ec);
    if (!ec) flow->upstream.non_blocking(true, ec);
    if (ec) {
      w_.metrics().L4Drops(name_, "connect_failed").Increment();
      return nullptr;
    }
    flow->client = key.client;
    flow->local = key.local;
    flow->sticky = route->sticky;
    flow->sticky_hold = route->HoldSticky(client_hash, *ep);  // released in CloseFlow
    flow->client_hash = client_hash;
    flow->endpoint_state = ep->state;
    flow->endpoint_key = ep->key;
    flow->drain_flag = l->DrainFlagFor(ep->key);
    if (flow->endpoint_state) flow->endpoint_state->active.fetch_add(1, std::memory_order_relaxed);
    shared.udp_flows.fetch_add(1, std::memory_order_relaxed);
    w_.metrics().L4Connections(name_, ep->key).Increment();
    active_.Increment();
    flows_.emplace(key, flow);
    net::co_spawn(w_.executor(), Replies(shared_from_this(), flow), net::detached);
    return flow;
  }

  // Backend → client, from the listener's socket (the address the client talked to).
  static Task<> Replies(std::shared_ptr<UdpListener> self, std::shared_ptr<Flow> flow) {
    for (;;) {
      error_code ec;
      // A readiness wait, then reads into the listener's one buffer: a flow holds no buffer of
      // its own while it waits (64 KiB each would be 1 GiB at the flow cap).
      co_await flow->upstream.async_wait(net::socket_base::wait_read, Redirect(ec));
      if (flow->closed || ec == net::error::operation_aborted) co_return;
      for (int i = 0; i < kReadBatch; ++i) {
        const std::size_t n = flow->upstream.receive(net::buffer(self->reply_buf_), 0, ec);
        if (ec == net::error::would_block || ec == net::error::try_again) break;
        if (ec == net::error::connection_refused) {
          self->OnPortUnreachable(flow);
          co_return;
        }
        if (ec) break;  // another transient error: keep the flow until idle
        if (flow->endpoint_state) OutlierDetector::Default().OnSuccess(*flow->endpoint_state);
        flow->last_activity_ms = NowMs();
        self->tx_pending_ += n;
        if (self->sock_->is_open()) {
          SendFrom(self->sock_->native_handle(), self->reply_buf_.data(), n, flow->client, flow->local);
        }
      }
    }
  }

  // ICMP port unreachable: nothing listens there. Passive outlier detection, as for TCP connect
  // failures (shared detector: 5 in a row eject the endpoint, schedulers skip it), and the flow
  // ends, so the client's next datagram opens a flow to another endpoint.
  void OnPortUnreachable(const std::shared_ptr<Flow>& flow) {
    if (flow->endpoint_state &&
        OutlierDetector::Default().OnFailure(*flow->endpoint_state, std::chrono::steady_clock::now())) {
      w_.metrics().L4Ejections(name_, flow->endpoint_key).Increment();
      log::Info("l4", "endpoint ejected by outlier detection (UDP port unreachable)",
                {{"listener", name_}, {"backend", flow->endpoint_key}});
    }
    w_.metrics().L4Drops(name_, "connect_failed").Increment();
    // A client pinned there (sessionAffinity: ClientIP) is not sent back to it either, as a
    // refused TCP pick is not remembered; unless it was pinned elsewhere meanwhile.
    if (flow->sticky) {
      if (auto pinned = flow->sticky->Lookup(flow->client_hash, NowMs()); pinned && *pinned == flow->endpoint_key) {
        flow->sticky->Forget(flow->client_hash);
      }
    }
    Forget(flow);
  }

  // Ends `flow` now and removes it from the table (if it is still the client's flow).
  void Forget(const std::shared_ptr<Flow>& flow) {
    CloseFlow(*flow);
    if (auto it = flows_.find(FlowKey{flow->client, flow->local}); it != flows_.end() && it->second == flow) flows_.erase(it);
  }

  void CloseFlow(Flow& f) {
    if (f.closed) return;
    f.closed = true;
    error_code ignored;
    f.upstream.close(ignored);
    if (f.endpoint_state) f.endpoint_state->active.fetch_sub(1, std::memory_order_relaxed);
    f.sticky_hold.Release(NowMs());
    w_.shared().udp_flows.fetch_sub(1, std::memory_order_relaxed);
    active_.Decrement();
  }

  void Flush() {
    if (rx_pending_) rx_.Increment(static_cast<double>(rx_pending_));
    if (tx_pending_) tx_.Increment(static_cast<double>(tx_pending_));
    rx_pending_ = tx_pending_ = 0;
  }

  Worker& w_;
  std::shared_ptr<UdpSocket> sock_;
  std::string name_;
  Timer sweep_;
  prometheus::Gauge& active_;
  prometheus::Counter& rx_;
  prometheus::Counter& tx_;
  uint64_t rx_pending_ = 0;
  uint64_t tx_pending_ = 0;
  std::unordered_map<FlowKey, std::shared_ptr<Flow>, FlowKeyHash> flows_;
  std::vector<char> reply_buf_ = std::vector<char>(kMaxDatagram);  // every flow's replies, read one at a time
};

}  // namespace

void StartUdpListener(Worker& worker, std::shared_ptr<UdpSocket> socket, const std::string& listener_name) {
  auto l = std::make_shared<UdpListener>(worker, std::move(socket), listener_name);
  net::co_spawn(worker.executor(), UdpListener::Receive(l), EssentialLoop("UDP listener"));
  net::co_spawn(worker.executor(), UdpListener::Sweep(l), EssentialLoop("UDP flow sweep"));
}

}  // namespace doorman::dataplane
