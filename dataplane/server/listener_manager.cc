#include "dataplane/server/listener_manager.h"
#include "dataplane/server/essential.h"

#include <prometheus/counter.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "common/log.h"
#include "dataplane/l4/source_ranges.h"
#include "dataplane/l4/tcp_proxy.h"
#include "dataplane/l7/http_proxy.h"
#include "dataplane/server/socket_state.h"
#include "dataplane/server/worker.h"

namespace doorman::dataplane {
namespace {

using boost::system::error_code;
using ReusePort = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

constexpr std::chrono::milliseconds kAcceptErrorPause{50};
constexpr std::chrono::seconds kCloseWait{2};

// A descriptor this process owns until it is adopted into a Socket: closed otherwise (a refused
// client, a hand-off whose worker stopped before running it).
struct OwnedFd {
  explicit OwnedFd(int f = -1) : fd(f) {}
  OwnedFd(OwnedFd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  OwnedFd& operator=(OwnedFd&&) = delete;
  ~OwnedFd() {
    if (fd >= 0) ::close(fd);
  }
  int fd;
};

// Listener.allowed_source_ranges, checked on the newest config at accept. A refused client gets
// a RST (SO_LINGER 0, then ~OwnedFd closes it) and is counted in
// doorman_l4_drops_total{reason="source_range"}. `peer` is the address accept() returned.
bool SourceAllowed(Worker& w, const RuntimeConfig* config, const std::string& listener, const OwnedFd& fd,
                   const tcp::endpoint& peer) {
  const Listener* l = config ? config->FindListener(listener) : nullptr;
  if (l == nullptr || l->allowed_source_ranges.empty()) return true;
  if (l4::SourceAllowed(l->allowed_source_ranges, peer.address())) return true;
  w.metrics().L4Drops(listener, "source_range").Increment();
  const linger reset{1, 0};
  ::setsockopt(fd.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  return false;
}

// Connection balancing (--connection-balance exact; off by default): SO_REUSEPORT spreads
// connections over the workers' listening sockets by a hash of the 4-tuple, which leaves
// long-lived connections unevenly spread (measured with 50 redis-benchmark connections on two
// workers: anywhere from 45/55 to 60/40 of the CPU per worker), and one busy worker can become
// the bottleneck. So the accepting worker keeps a connection unless another worker serves strictly
// fewer connections right now, and then hands it to the least busy one (Envoy's exact_balance,
// HAProxy's least-loaded thread). The choice reads one relaxed atomic per worker (no lock);
// a hand-off costs a post that wakes the other worker: ~5 % more CPU per connection when
// connections are short-lived (about every other one moves), which is why it is off by default
// (as Envoy's exact_balance) — docs/dataplane.md.
Worker& PickWorker(Worker& self, const std::vector<std::unique_ptr<Worker>>& workers) {
  Worker* best = &self;
  int64_t least = self.connections().load(std::memory_order_relaxed);
  for (const auto& w : workers) {
    const int64_t n = w->connections().load(std::memory_order_relaxed);
    if (n < least) {
      least = n;
      best = w.get();
    }
  }
  return *best;
}

// Adopts an accepted descriptor into a socket of worker `w` — on `w`'s thread, where every
// operation of that socket starts — and starts its session.
void StartSession(Worker& w, OwnedFd fd, const std::string& listener, const tcp::endpoint& peer, bool l7,
                  std::shared_ptr<const RuntimeConfig> config, ConnectionSlot slot) {
  Socket s(w.executor());
  error_code ec;
  Adopt(s, peer.protocol(), fd.fd, false, ec);  // non-blocking and not dup'ed since accept4
  if (ec) return;                               // ~OwnedFd closes it
  fd.fd = -1;                                   // `s` owns it now
  if (l7) {
    StartHttpSession(w, std::move(s), listener, std::move(slot));
  } else {
    StartTcpSession(w, std::move(s), listener, peer, std::move(config), std::move(slot));
  }
}

// The next connection from the (non-blocking) listening socket: accept4 in place, already
// non-blocking, not yet in any worker's epoll set (the worker that serves it adopts it:
// socket_state.h); waits for readiness only when the accept queue is empty.
Task<OwnedFd> Accept(Acceptor& acceptor, tcp::endpoint& peer, error_code& ec) {
  for (;;) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    const int fd = ::accept4(acceptor.native_handle(), reinterpret_cast<sockaddr*>(&addr), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      if (len > peer.capacity()) len = static_cast<socklen_t>(peer.capacity());
      std::memcpy(peer.data(), &addr, len);
      peer.resize(len);
      co_return OwnedFd(fd);
    }
    // A client that gave up while queued, or a network error pending on the new connection
    // (accept(2): to be treated like EAGAIN, by retrying).
    if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == ENETDOWN || errno == ENOPROTOOPT ||
        errno == EHOSTDOWN || errno == ENONET || errno == EHOSTUNREACH || errno == EOPNOTSUPP || errno == ENETUNREACH) {
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ec = error_code(errno, boost::system::system_category());
      co_return OwnedFd();
    }
    co_await acceptor.async_wait(Acceptor::wait_read, Redirect(ec));
    if (ec) co_return OwnedFd();
  }
}

Task<> AcceptLoop(std::shared_ptr<Acceptor> acceptor, Worker& w, std::string listener, bool l7,
                  const std::vector<std::unique_ptr<Worker>>* balance_over) {
  Timer pause(w.executor());
  for (;;) {
    error_code ec;
    tcp::endpoint peer;
    OwnedFd fd = co_await Accept(*acceptor, peer, ec);
    if (ec == net::error::operation_aborted || !acceptor->is_open()) co_return;
    if (ec) {
      // EMFILE/ENFILE/ENOBUFS: back off briefly instead of spinning; logged at most once per
      // 10 s per worker (it repeats every pause while the shortage lasts).
      if (auto repeated = w.LogRepeats("accept " + listener + " " + ec.message())) {
        log::Warn("listener", "accept failed", {{"listener", listener}, {"error", ec.message()}, {"repeated", *repeated}});
      }
      pause.expires_after(kAcceptErrorPause);
      co_await pause.async_wait(Redirect(ec));
      continue;
    }
    // One config load per connection: the L4 session routes on this one too.
    auto config = w.shared().config.Load();
    if (SourceAllowed(w, config.get(), listener, fd, peer)) {
      Worker& to = balance_over ? PickWorker(w, *balance_over) : w;
      ConnectionSlot slot(to.connections());  // taken now, so the next accepts see it
      if (&to == &w) {
        StartSession(w, std::move(fd), listener, peer, l7, std::move(config), std::move(slot));
      } else {
        net::post(to.executor(), [&to, fd = std::move(fd), listener, peer, l7, config = std::move(config),
                                  slot = std::move(slot)]() mutable {
          StartSession(to, std::move(fd), listener, peer, l7, std::move(config), std::move(slot));
        });
      }
    }
    // Yield to the worker's other handlers (the session just started among them) before the
    // next accept, as Asio's async_accept did by posting its completion: accept4 succeeds in
    // place while the queue holds connections, and a burst (refused ones too: a flood from
    // outside allowedSourceRanges) must not starve the rest, nor keep a closed connection's
    // session from noticing its close (it holds an --l7-max-connections slot).
    co_await net::post(w.executor(), kUseTask);
  }
}

}  // namespace

ListenerManager::ListenerManager(std::vector<std::unique_ptr<Worker>>& workers, net::ip::address bind_address,
                                 bool balance)
    : workers_(workers), bind_address_(std::move(bind_address)), balance_(balance && workers.size() > 1) {}

ListenerManager::~ListenerManager() { CloseAll(); }

bool ListenerManager::BindUdp(const Listener& l, Bound* out, std::string* error) {
  const udp::endpoint ep(bind_address_, l.port);
  out->port = l.port;
  out->protocol = l.protocol;
  for (auto& w : workers_) {
    auto sock = std::make_shared<UdpSocket>(w->executor());
    error_code ec;
    sock->open(ep.protocol(), ec);
    if (!ec) sock->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) sock->set_option(ReusePort(true), ec);
    if (!ec) {
      // The local address of every datagram, from the first one on (udp_proxy.cc answers from
      // it; IP_PKTINFO also on an IPv6 socket, for IPv4-mapped clients of a dual-stack one); set
      // before bind, so none queued meanwhile arrives without it.
      const int one = 1;
      if (ep.address().is_v6()) ::setsockopt(sock->native_handle(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
      ::setsockopt(sock->native_handle(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    }
    if (!ec) sock->bind(ep, ec);
    if (ec) {
      *error = "cannot listen on udp " + ep.address().to_string() + ":" + std::to_string(l.port) + ": " + ec.message();
      // Closed on their workers' threads, like every other close (their io_contexts run without
      // per-descriptor locks: docs/dataplane.md).
      out->udp_sockets.push_back(std::move(sock));
      Close(*out);
      return false;
    }
    out->udp_sockets.push_back(std::move(sock));
  }
  return true;
}

bool ListenerManager::Bind(const Listener& l, Bound* out, std::string* error) {
  if (l.protocol == Protocol::kUdp) return BindUdp(l, out, error);
  const tcp::endpoint ep(bind_address_, l.port);
  out->port = l.port;
  out->protocol = l.protocol;
  for (auto& w : workers_) {
    auto acc = std::make_shared<Acceptor>(w->executor());
    error_code ec;
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acc->set_option(ReusePort(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec && (l.protocol == Protocol::kTcp || l.protocol == Protocol::kTls)) PrepareTcpListener(acc->native_handle());
    if (!ec) acc->listen(net::socket_base::max_listen_connections, ec);
    if (!ec) acc->non_blocking(true, ec);  // Accept() calls accept4 in place
    if (ec) {
      *error = "cannot listen on " + ep.address().to_string() + ":" + std::to_string(l.port) + ": " + ec.message();
      out->acceptors.push_back(std::move(acc));
      Close(*out);  // on the workers' threads, as above
      return false;
    }
    out->acceptors.push_back(std::move(acc));
  }
  return true;
}

void ListenerManager::Close(Bound& b) {
  // Each acceptor is closed on its own worker thread (Asio objects are not thread-safe), which
  // also completes its pending accept with operation_aborted.
  std::vector<std::future<void>> done;
  for (std::size_t i = 0; i < b.acceptors.size() && i < workers_.size(); ++i) {
    auto promise = std::make_shared<std::promise<void>>();
    done.push_back(promise->get_future());
    net::post(workers_[i]->executor(), [acc = b.acceptors[i], promise] {
      error_code ignored;
      acc->close(ignored);
      promise->set_value();
    });
  }
  for (std::size_t i = 0; i < b.udp_sockets.size() && i < workers_.size(); ++i) {
    auto promise = std::make_shared<std::promise<void>>();
    done.push_back(promise->get_future());
    net::post(workers_[i]->executor(), [sock = b.udp_sockets[i], promise] {
      error_code ignored;
      sock->close(ignored);
      promise->set_value();
    });
  }
  for (auto& f : done) {
    if (f.wait_for(kCloseWait) != std::future_status::ready) {
      log::Warn("listener", "a worker did not close its acceptor in time");
    }
  }
  b.acceptors.clear();
  b.udp_sockets.clear();
  b.accepting = false;
}

std::vector<std::string> ListenerManager::Prepare(const RuntimeConfig& next, bool quiet) {
  std::vector<std::string> warnings;
  std::lock_guard lock(mu_);
  // 1. Gone (or changed port/protocol, or no longer served): close first, so the port is free.
  for (auto it = bound_.begin(); it != bound_.end();) {
    const Listener* l = next.FindListener(it->first);
    if (l == nullptr || !l->served || l->port != it->second.port || l->protocol != it->second.protocol) {
      log::Info("listener", "closing listener", {{"listener", it->first}, {"port", std::to_string(it->second.port)}});
      Close(it->second);
      it = bound_.erase(it);
    } else {
      ++it;
    }
  }
  // 2. New (or previously failed): bind now, accept after Commit().
  for (const auto& l : next.listeners) {
    if (!l->served || bound_.count(l->name)) continue;
    Bound b;
    std::string error;
    if (!Bind(*l, &b, &error)) {
      if (!quiet) log::Error("listener", "cannot open listener; serving the rest", {{"listener", l->name}, {"error", error}});
      warnings.push_back("listener \"" + l->name + "\": " + error + std::string(kNotServedRetried));
      continue;
    }
    log::Info("listener", "listening", {{"listener", l->name},
                                        {"address", (bind_address_.is_v6() ? "[" + bind_address_.to_string() + "]"
                                                                           : bind_address_.to_string()) +
                                                        ":" + std::to_string(l->port)},
                                        {"protocol", std::string(ProtocolName(l->protocol))}});
    bound_.emplace(l->name, std::move(b));
  }
  return warnings;
}

void ListenerManager::Commit() {
  std::lock_guard lock(mu_);
  for (auto& [name, b] : bound_) {
    if (b.accepting) continue;
    b.accepting = true;
    const bool l7 = b.protocol == Protocol::kHttp || b.protocol == Protocol::kHttps;
    for (std::size_t i = 0; i < b.udp_sockets.size(); ++i) {
      auto sock = b.udp_sockets[i];
      Worker& w = *workers_[i];
      net::post(w.executor(), [&w, sock, name = name] { StartUdpListener(w, sock, name); });
    }
    for (std::size_t i = 0; i < b.acceptors.size(); ++i) {
      net::co_spawn(workers_[i]->executor(),
                    AcceptLoop(b.acceptors[i], *workers_[i], name, l7, balance_ ? &workers_ : nullptr),
                    EssentialLoop("accept loop"));
    }
  }
}

void ListenerManager::CloseAll() {
  std::lock_guard lock(mu_);
  for (auto& [name, b] : bound_) Close(b);
  bound_.clear();
}

std::vector<std::string> ListenerManager::Unbound(const RuntimeConfig& config) const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& l : config.listeners) {
    if (l->served && !bound_.count(l->name)) out.push_back(l->name);
  }
  return out;
}

std::vector<ListenerStatus> ListenerManager::Status() const {
  std::lock_guard lock(mu_);
  std::vector<ListenerStatus> out;
  for (const auto& [name, b] : bound_) out.push_back({name, b.port, b.accepting});
  return out;
}

}  // namespace doorman::dataplane
