#include "dataplane/l4/tcp_proxy.h"
#include "dataplane/server/essential.h"
// GCC 12 + -fsanitize: false -Wmismatched-new-delete on Asio's coroutine frame allocator
// (awaitable_frame_base's operator new/delete pair); the pairing is correct.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <sys/socket.h>

#include <array>
#include <memory>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <utility>
#include <vector>

#include "common/log.h"
#include "dataplane/l4/l4_options.h"
#include "dataplane/l4/proxy_protocol.h"
#include "dataplane/l7/policy.h"
#include "dataplane/server/connect.h"
#include "dataplane/server/worker.h"

namespace doorman::dataplane {
namespace {

using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr std::size_t kPumpBuffer = 16 * 1024;       // per direction, in the pump's frame
constexpr std::size_t kPumpBufferBulk = 64 * 1024;  // after a read filled kPumpBuffer
constexpr unsigned kSyncReads = 16;                  // in-place reads in a row, then yield
constexpr uint64_t kBytesFlushThreshold = 1 << 20;  // add to the shared counter every MiB (and every sweep)
constexpr int64_t kProxyHeaderTimeoutMs = 5'000;     // PROXY header must arrive within this

l4::ProxyAddress ToProxyAddress(const tcp::endpoint& ep) {
  l4::ProxyAddress a;
  a.port = ep.port();
  const auto addr = ep.address();
  if (addr.is_v4()) {
    const auto b = addr.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), a.ip.begin());
  } else {
    a.v6 = true;
    const auto b = addr.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), a.ip.begin());
  }
  return a;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

class TcpSession;

// The sessions of one worker (intrusive list, touched only on that worker's thread) and the
// once-a-second sweep that enforces idle and drain timeouts for all of them.
struct SessionList {
  TcpSession* head = nullptr;
  bool sweeping = false;
};

class TcpSession : public std::enable_shared_from_this<TcpSession> {
 public:
  TcpSession(Worker& w, Socket client, std::string listener, const tcp::endpoint& peer,
             std::shared_ptr<const RuntimeConfig> config, std::shared_ptr<SessionList> list, ConnectionSlot slot)
      : w_(w), slot_(std::move(slot)), client_(std::move(client)), upstream_(w.executor()), listener_(std::move(listener)),
        list_(std::move(list)), active_(w.metrics().L4Active(listener_)),
        rx_(w.metrics().L4Bytes(listener_, true)), tx_(w.metrics().L4Bytes(listener_, false)),
        client_addr_(ToProxyAddress(peer)), config_(std::move(config)) {
    active_.Increment();
    w_.shared().l4_active.fetch_add(1, std::memory_order_relaxed);
    next_ = list_->head;
    if (next_) next_->prev_ = this;
    list_->head = this;
  }

  ~TcpSession() {
    CloseBoth(reset_pending_);  // a reset cut short by shutdown is still a reset
    if (prev_) prev_->next_ = next_;
    else list_->head = next_;
    if (next_) next_->prev_ = prev_;
    FlushBytes();
    if (endpoint_state_) endpoint_state_->active.fetch_sub(1, std::memory_order_relaxed);
    active_.Decrement();
    w_.shared().l4_active.fetch_sub(1, std::memory_order_relaxed);
  }

  // `self` keeps the session alive while the coroutine runs (it starts after the spawner returns).
  static Task<> Run(std::shared_ptr<TcpSession> self) {
    if (!co_await self->ReadProxyHeader()) co_return;
    if (!co_await self->ChooseRoute()) co_return;
    if (!co_await self->ConnectUpstream()) co_return;
    if (!co_await self->SendPreamble()) co_return;
    self->last_activity_ms_ = NowMs();
    const auto ex = self->w_.executor();
    self->pumps_ = 2;
    if (GetL4Options().splice == L4Options::Splice::kAlways) {
      error_code ec;
      self->client_.native_non_blocking(true, ec);
      if (!ec) self->upstream_.native_non_blocking(true, ec);
      if (!ec) {
        net::co_spawn(ex, SpliceOrCopy(self, self->client_, self->upstream_, true), net::detached);
        net::co_spawn(ex, SpliceOrCopy(self, self->upstream_, self->client_, false), net::detached);
        co_return;
      }
    }
    // The backend → client pump gets its own coroutine; the client → backend one continues in
    // this one (one co_spawn, i.e. one frame and one scheduler round trip, less per connection).
    net::co_spawn(ex, Pump(self, self->upstream_, self->client_, false), net::detached);
    co_await Pump(self, self->client_, self->upstream_, true);
  }

  // Called by the worker's sweep: adds the bytes counted since the last sweep to
  // doorman_l4_bytes_total (so a long-lived, low-volume connection shows within a second, at one
  // add per connection per second at most); closes the session when idle or drained too long, or
  // when a PROXY header is overdue.
  void Sweep(int64_t now_ms) {
    FlushBytes();
    if (header_deadline_ms_ != 0 && now_ms >= header_deadline_ms_) {
      header_deadline_ms_ = 0;
      // A PROXY header or ClientHello that did not arrive in time: reset (as any refusal of a
      // malformed preamble), not a FIN the client could take for an orderly close. The reading
      // coroutine sees the error and counts the drop.
      CloseBoth(true);
      return;
    }
    if (!connected_) return;
    if (!backend_keepalive_) {
      // Keepalive on the backend leg is set by the first sweep after connecting (within
      // kL4SweepInterval), not per connection: a probe is only due after kTcpKeepaliveIdleS of
      // silence, so this is the same behaviour, and short connections (most of a busy
      // listener's) save four setsockopt calls.
      backend_keepalive_ = true;
      if (upstream_.is_open()) SetTcpKeepalive(upstream_.native_handle());
    }
    if (now_ms - last_activity_ms_ >= idle_timeout_.count()) {
      log::Debug("l4", "idle timeout", {{"listener", listener_}, {"backend", backend_}});
      CloseBoth(reset_pending_);  // a reset waiting for its data to be read is still a reset
      return;
    }
    // Drain when the endpoint left this listener's routes.
    const int64_t removed = drain_flag_ ? drain_flag_->load(std::memory_order_relaxed) : 0;
    if (removed != 0 && now_ms - removed >= idle_timeout_.count()) {
      log::Debug("l4", "drain timeout: backend removed", {{"listener", listener_}, {"backend", backend_}});
      w_.metrics().L4Drops(listener_, "drain_timeout").Increment();
      CloseBoth(reset_pending_);
    }
  }

  TcpSession* next() const { return next_; }

 private:
  // Listener.proxy_protocol.accept: reads and strictly parses the downstream PROXY v1/v2 header
  // (bounded in size and time); the addresses it carries replace the TCP peer's for hashing and
  // for the header sent on. Bytes after the header are kept and forwarded first.
  // The client's address came with accept() and the config was loaded at accept (no syscall,
  // no second atomic load); the local address is asked for only when a PROXY header is sent.
  Task<bool> ReadProxyHeader() {
    error_code ec;
    const Listener* listener = config_ ? config_->FindListener(listener_) : nullptr;
    if (listener == nullptr) co_return true;  // ChooseRoute counts it
    send_version_ = listener->proxy_protocol_send;
    if (send_version_ != 0) {
      const auto local = client_.local_endpoint(ec);
      if (!ec) local_addr_ = ToProxyAddress(local);
    }
    if (!listener->proxy_protocol_accept) co_return true;
    config_.reset();  // waiting for the header: route on the config current when it arrived
    header_deadline_ms_ = NowMs() + kProxyHeaderTimeoutMs;
    std::array<char, 512> buf;
    for (;;) {
      const std::size_t n = co_await client_.async_read_some(net::buffer(buf), Redirect(ec));
      if (ec) break;
      Count(true, n);  // received from the client: the header and any payload behind it
      pending_.append(buf.data(), n);
      const auto r = l4::ParseProxyHeader(pending_);
      if (r.status == l4::ProxyParseResult::kNeedMore) continue;
      if (r.status == l4::ProxyParseResult::kInvalid) {
        log::Debug("l4", "invalid PROXY header; closing", {{"listener", listener_}, {"error", r.error}});
        break;
      }
      header_deadline_ms_ = 0;
      if (l4::UsesAddresses(r.header, false)) {
        client_addr_ = r.header.source;
        local_addr_ = r.header.destination;
      }
      pending_.erase(0, r.consumed);
      co_return true;
    }
    header_deadline_ms_ = 0;
    w_.metrics().L4Drops(listener_, "proxy_protocol").Increment();
    CloseBoth(true);
    co_return false;
  }

  // The route: the listener's only route, or for TLS passthrough the first route whose match.sni
  // matches the ClientHello's server_name, else the first route without sni (the default).
  // The ClientHello is peeked (kept in pending_, forwarded untouched), bounded in size and time.
  Task<bool> ChooseRoute() {
    if (!config_) config_ = w_.shared().config.Load();
    const Listener* listener = config_ ? config_->FindListener(listener_) : nullptr;
    if (listener == nullptr || listener->routes.empty()) {
      w_.metrics().L4Drops(listener_, "no_backend").Increment();
      CloseBoth(true);  // a refusal is a reset, as for every other drop: not an orderly close
      co_return false;
    }
    if (listener->protocol != Protocol::kTls) {
      route_ = listener->routes.front();
      co_return true;
    }
    header_deadline_ms_ = NowMs() + kProxyHeaderTimeoutMs;
    std::array<char, 4096> buf;
    l4::SniResult r = l4::ParseClientHelloSni(pending_);
    while (r.status == l4::SniResult::kNeedMore) {
      error_code ec;
      const std::size_t n = co_await client_.async_read_some(net::buffer(buf), Redirect(ec));
      if (ec) break;
      Count(true, n);  // the ClientHello (and any bytes behind it) is forwarded as received
      pending_.append(buf.data(), n);
      r = l4::ParseClientHelloSni(pending_);
    }
    header_deadline_ms_ = 0;
    if (r.status != l4::SniResult::kDone) {
      if (r.status == l4::SniResult::kInvalid) {
        log::Debug("l4", "invalid ClientHello; closing", {{"listener", listener_}, {"error", r.error}});
      }
      w_.metrics().L4Drops(listener_, "tls_clienthello").Increment();
      CloseBoth(true);
      co_return false;
    }
    // The route whose matching name is the most specific (an exact name before the longest
    // matching wildcard), not the first whose list matches: a route listing a long exact name
    // and a wildcard wins for its exact name only. Ties: the earlier route.
    std::optional<std::pair<int, int64_t>> best;
    if (!r.server_name.empty()) {
      for (const Route* rt : listener->routes) {
        const auto rank = rt->sni.MatchRank(r.server_name);
        if (rank && (!best || *rank < *best)) {
          best = rank;
          route_ = rt;
        }
      }
    }
    if (best) co_return true;
    for (const Route* rt : listener->routes) {
      if (rt->sni.empty()) {
        route_ = rt;
        co_return true;
      }
    }
    log::Debug("l4", "no route for SNI; closing", {{"listener", listener_}, {"sni", r.server_name}});
    w_.metrics().L4Drops(listener_, "no_route").Increment();
    CloseBoth(true);
    co_return false;
  }

  // Listener.proxy_protocol.send, then any bytes read with the downstream header, in one write.
  Task<bool> SendPreamble() {
    std::string out;
    if (send_version_ != 0) out = l4::EncodeProxyHeader(send_version_, client_addr_, local_addr_);
    out += pending_;
    pending_.clear();
    pending_.shrink_to_fit();
    if (out.empty()) co_return true;
    error_code ec;
    co_await net::async_write(upstream_, net::buffer(out), Redirect(ec));
    if (ec) {
      CloseBoth(true);
      co_return false;
    }
    co_return true;
  }

  // Picks endpoints from the newest config and connects to the first that answers.
  Task<bool> ConnectUpstream() {
    const auto config = std::move(config_);  // held only while connecting
    const Listener* listener = config->FindListener(listener_);
    const Route& route = *route_;
    idle_timeout_ = route.idle_timeout.count() > 0 ? route.idle_timeout : listener->idle_timeout;
    const std::size_t attempts = std::min<std::size_t>(route.eligible_endpoints(), route.l4_connect_attempts);
    std::vector<const Endpoint*> tried;
    lb::PickContext pick{ClientHash(), 0};
    // Passive outlier detection (shared with the L7 proxy): consecutive connect failures eject
    // an endpoint for a growing period; schedulers skip ejected endpoints (lb::Available), so a
    // dead backend without an active check stops costing every connection routed to it a failed
    // connect. An ejected endpoint is tried only when no other untried one is left (panic mode).
    const OutlierDetector& outliers = OutlierDetector::Default();
    std::size_t picks = 0;
    auto next = [&]() -> const Endpoint* {
      if (tried.size() >= attempts) return nullptr;
      while (picks < attempts * 2 + 1) {
        const std::size_t i = picks++;
        // First try: source-IP persistence when the route asks for it; retries pick afresh.
        const Endpoint* ep = i == 0 ? route.PickSticky(pick, NowMs(), false) : route.PickEndpoint(pick);
        // Hash schedulers answer the same for the same client: re-hash to reach another endpoint.
        pick.hash = lb::Rehash(pick.hash, i + 1);
        if (ep == nullptr) return nullptr;
        if (std::find(tried.begin(), tried.end(), ep) == tried.end()) return ep;
      }
      return route.FirstUntried(false, tried);
    };
    while (const Endpoint* ep = next()) {
      tried.push_back(ep);
      error_code ec;
      upstream_ = co_await ConnectTo(w_.executor(), *ep, route.connect_timeout, ec);
      if (!ec) {
        outliers.OnSuccess(*ep->state);
        // Source-IP persistence remembers the endpoint that answered, not a refused first pick.
        route.RememberSticky(ClientHash(), *ep, NowMs());
        sticky_hold_ = route.HoldSticky(ClientHash(), *ep);  // released when the session is destroyed
        backend_ = ep->key;
        endpoint_state_ = ep->state;  // least-connections load, released in the destructor
        drain_flag_ = listener->DrainFlagFor(ep->key);
        if (endpoint_state_) endpoint_state_->active.fetch_add(1, std::memory_order_relaxed);
        w_.metrics().L4Connections(listener_, backend_).Increment();
        // The client socket inherited keepalive and TCP_NODELAY from its listening socket; the
        // backend socket gets keepalive from the first sweep (Sweep), not here.
        connected_ = true;
        co_return true;
      }
      log::Debug("l4", "connect to backend failed",
                 {{"listener", listener_}, {"backend", ep->key}, {"error", IsTimeout(ec) ? "timeout" : ec.message()}});
      if (IsLocalResourceError(ec)) {
        // This side is out of descriptors (or ports, memory): not the backend's fault, and
        // every other endpoint would fail alike. Counted, logged (throttled), nobody ejected.
        w_.metrics().L4Drops(listener_, "connect_failed").Increment();
        if (auto repeated = w_.LogRepeats("l4 local " + ec.message())) {
          log::Warn("l4", "cannot open a backend connection: out of local resources; closing client",
                    {{"listener", listener_}, {"error", ec.message()}, {"repeated", *repeated},
                     {"hint", "raise the open-files limit (LimitNOFILE, ulimit -n)"}});
        }
        CloseBoth(true);
        co_return false;
      }
      if (outliers.OnFailure(*ep->state, std::chrono::steady_clock::now())) {
        w_.metrics().L4Ejections(listener_, ep->key).Increment();
        log::Info("l4", "endpoint ejected by outlier detection (consecutive connect failures)",
                  {{"listener", listener_}, {"route", route.name}, {"backend", ep->key}});
      }
    }
    if (tried.empty()) {
      w_.metrics().L4Drops(listener_, "no_backend").Increment();
      log::Debug("l4", "no ready endpoint; closing client", {{"listener", listener_}, {"route", route.name}});
    } else {
      w_.metrics().L4Drops(listener_, "connect_failed").Increment();
      // Once per 10 s per route and worker (a client can repeat this as fast as it connects).
      if (auto repeated = w_.LogRepeats("l4 connect_failed " + listener_ + " " + route.name)) {
        log::Warn("l4", "no backend accepted the connection; closing client",
                  {{"listener", listener_}, {"route", route.name}, {"tried", std::to_string(tried.size())},
                   {"repeated", *repeated}});
      }
    }
    CloseBoth(true);  // a reset, whether or not the client already sent bytes (NLB does the same)
    co_return false;
  }

  // Copies `from` → `to` until EOF (then half-closes `to`) or an error (then resets both).
  //
  // Syscall economy (docs/benchmarks.md, "what bounds it"): every Asio completion is posted
  // through the scheduler, which runs one epoll_wait per handler it dispatches, so a naive
  // read → write → read loop costs two epoll_waits per chunk. Instead:
  // * the write is first tried in place (send with MSG_DONTWAIT); only a short or refused write
  //   goes through async_write (which then waits for EPOLLOUT);
  // * after a read that filled the buffer the socket most likely holds more, so the next read is
  //   also tried in place; after a short read it is drained (HAProxy's heuristic), so the next
  //   read goes straight to async_read_some (so does the first backend read: client-first
  //   protocols leave it empty). At most kSyncReads in-place reads in a row, then
  //   one async read, which yields the worker to its other connections;
  // * the buffer starts at kPumpBuffer (request/response traffic, many idle connections) and
  //   grows once to kPumpBufferBulk after a read that filled it (bulk transfers: 4x fewer
  //   syscalls per byte).
  static Task<> Pump(std::shared_ptr<TcpSession> self, Socket& from, Socket& to, bool rx) {
    std::array<char, kPumpBuffer> small;
    std::unique_ptr<char[]> bulk;
    char* buf = small.data();
    std::size_t cap = small.size();
    // The last read filled the buffer. Initially true for the client → backend direction: the
    // client usually spoke while the backend connection was being set up.
    bool more = rx;
    bool may_splice = GetL4Options().splice == L4Options::Splice::kBulk;
    unsigned sync_reads = 0;
    for (;;) {
      error_code ec;
      std::size_t n = 0;
      if (more && sync_reads < kSyncReads && from.is_open()) {
        ++sync_reads;
        n = RecvNow(from, buf, cap, ec);
      }
      if (n == 0 && !ec) {
        sync_reads = 0;
        n = co_await from.async_read_some(net::buffer(buf, cap), Redirect(ec));
      }
      if (ec == net::error::eof) {
        // The last direction to finish skips the shutdown: the session closes both sockets
        // right after (the close sends the FIN), one syscall less per connection. While a
        // reset is being delivered (its send consumed the socket's error, so this read sees
        // end of stream), no FIN: the reset follows.
        if (self->pumps_ > 1 && !self->reset_pending_) {
          error_code ignored;
          to.shutdown(tcp::socket::shutdown_send, ignored);  // forward the FIN
        }
        break;
      }
      if (ec) {
        // connection_reset (or any error): propagate as a reset, not as a clean FIN, once what
        // was already accepted from this side has reached the other.
        if (ec != net::error::operation_aborted && !self->reset_pending_) {
          co_await ResetAfterDrain(self, from, to);
        } else {
          self->Fail(ec != net::error::operation_aborted);
        }
        break;
      }
      self->last_activity_ms_ = NowMs();
      std::size_t sent = to.is_open() ? SendNow(to, buf, n, ec) : 0;
      if (!ec && sent < n) co_await net::async_write(to, net::buffer(buf + sent, n - sent), Redirect(ec));
      if (ec) {
        // `to`'s peer reset (a write sees it first when the reactor runs the write before the
        // read, and takes the socket's error): deliver what `from`'s peer has been sent, then
        // reset it too.
        if (ec != net::error::operation_aborted && !self->reset_pending_) {
          co_await ResetAfterDrain(self, to, from, /*read_to_end=*/true);
        } else {
          self->Fail(ec != net::error::operation_aborted);
        }
        break;
      }
      self->Count(rx, n);
      more = n == cap;
      if (more && may_splice) {
        // A bulk transfer: the rest of this direction goes through splice(2) (--l4-splice bulk).
        // Everything read so far has been written, so the byte order is kept. Without a pipe
        // (out of fds) it keeps copying.
        may_splice = false;
        error_code nb;
        from.native_non_blocking(true, nb);
        if (!nb) to.native_non_blocking(true, nb);
        if (!nb) {
          const bool spliced = co_await SplicePump(self, from, to, rx);
          if (spliced) co_return;  // it counted pumps_
        }
      }
      if (more && !bulk) {
        bulk.reset(new char[kPumpBufferBulk]);
        buf = bulk.get();
        cap = kPumpBufferBulk;
      }
    }
    --self->pumps_;
  }

  // Non-blocking recv in place. Returns the bytes read (> 0), or 0 with ec clear when nothing
  // is available (EAGAIN/EINTR: wait for readiness), ec = eof at end of stream, else ec = errno.
  static std::size_t RecvNow(Socket& s, char* buf, std::size_t cap, error_code& ec) {
    const ssize_t r = ::recv(s.native_handle(), buf, cap, MSG_DONTWAIT);
    if (r > 0) return static_cast<std::size_t>(r);
    if (r == 0) {
      ec = net::error::eof;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      ec = error_code(errno, boost::system::system_category());
    }
    return 0;
  }

  // Non-blocking send in place: the bytes accepted (maybe 0 when the socket buffer is full),
  // ec = errno on a real error.
  static std::size_t SendNow(Socket& s, const char* buf, std::size_t n, error_code& ec) {
    const ssize_t r = ::send(s.native_handle(), buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r >= 0) return static_cast<std::size_t>(r);
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ec = error_code(errno, boost::system::system_category());
    return 0;
  }

  // --l4-splice always: splice, or copy when no pipe can be had.
  static Task<> SpliceOrCopy(std::shared_ptr<TcpSession> self, Socket& from, Socket& to, bool rx) {
    const bool spliced = co_await SplicePump(self, from, to, rx);
    if (!spliced) co_await Pump(std::move(self), from, to, rx);
  }

  // Zero-copy variant of Pump: splice(2) socket → pipe → socket, driven by readiness waits
  // (async_wait), so bytes never enter user space. Same half-close/reset/idle semantics.
  // False (nothing done) when no pipe could be created; true when the direction is finished.
  static Task<bool> SplicePump(std::shared_ptr<TcpSession> self, Socket& from, Socket& to, bool rx) {
    struct Pipe {
      int fd[2] = {-1, -1};
      ~Pipe() {
        if (fd[0] >= 0) ::close(fd[0]);
        if (fd[1] >= 0) ::close(fd[1]);
      }
    } pipe;
    if (::pipe2(pipe.fd, O_NONBLOCK | O_CLOEXEC) != 0) co_return false;
    constexpr unsigned kFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
    std::size_t chunk = 64 * 1024;  // the kernel's default pipe capacity
    if (const std::size_t want = GetL4Options().splice_pipe_bytes; want != 0) {
      const int got = ::fcntl(pipe.fd[1], F_SETPIPE_SZ, static_cast<int>(want));
      if (got > 0) chunk = static_cast<std::size_t>(got);  // else keep the default (ulimit, pipe-user-pages-soft)
    }
    std::size_t in_pipe = 0;
    error_code ec;
    for (;;) {
      if (!from.is_open() || !to.is_open()) break;
      const ssize_t n = ::splice(from.native_handle(), nullptr, pipe.fd[1], nullptr, chunk, kFlags);
      if (n == 0) {
        if (self->pumps_ > 1 && !self->reset_pending_) {
          error_code ignored;
          to.shutdown(tcp::socket::shutdown_send, ignored);  // forward the FIN
        }
        break;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          co_await from.async_wait(tcp::socket::wait_read, Redirect(ec));
          if (ec) {
            self->Fail(ec != net::error::operation_aborted);
            break;
          }
          continue;
        }
        // ECONNRESET and friends: propagate as a reset, after what was spliced (the pipe is
        // empty here: each chunk is written out before the next read) reached the other side.
        if (!self->reset_pending_) {
          co_await ResetAfterDrain(self, from, to);
        } else {
          self->Fail(true);
        }
        break;
      }
      in_pipe = static_cast<std::size_t>(n);
      self->last_activity_ms_ = NowMs();
      while (in_pipe > 0) {
        const ssize_t m = ::splice(pipe.fd[0], nullptr, to.native_handle(), nullptr, in_pipe, kFlags);
        if (m < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          co_await to.async_wait(tcp::socket::wait_write, Redirect(ec));
          if (ec) break;
          continue;
        }
        if (m <= 0) {
          ec = net::error::connection_reset;
          break;
        }
        in_pipe -= static_cast<std::size_t>(m);
        self->Count(rx, static_cast<std::size_t>(m));
      }
      if (in_pipe > 0) {
        // As in Pump: `to`'s peer reset; what `from`'s peer was sent still reaches it first.
        if (ec != net::error::operation_aborted && !self->reset_pending_) {
          co_await ResetAfterDrain(self, to, from, /*read_to_end=*/true);
        } else {
          self->Fail(ec != net::error::operation_aborted);
        }
        break;
      }
      self->last_activity_ms_ = NowMs();
    }
    --self->pumps_;
    co_return true;
  }


  // Hash of the client's IP address (not its port): source-hash/maglev pin a client, not a flow.
  // With PROXY accept, the address from the header (the real client behind the other balancer).
  uint64_t ClientHash() const {
    return lb::HashKey(std::string_view(reinterpret_cast<const char*>(client_addr_.ip.data()), client_addr_.v6 ? 16 : 4));
  }

  void Count(bool rx, std::size_t n) {
    uint64_t& pending = rx ? rx_pending_ : tx_pending_;
    pending += n;
    if (pending >= kBytesFlushThreshold) {
      (rx ? rx_ : tx_).Increment(static_cast<double>(pending));
      pending = 0;
    }
  }
  void FlushBytes() {
    if (rx_pending_) rx_.Increment(static_cast<double>(std::exchange(rx_pending_, 0)));
    if (tx_pending_) tx_.Increment(static_cast<double>(std::exchange(tx_pending_, 0)));
  }

  // The peer of `from` reset its connection (or it failed). What this side already accepted from
  // it and wrote to `to` still reaches `to`'s peer, then the reset does: `from` is closed now,
  // `to` once its send queue is empty (its peer ACKed every byte; SIOCOUTQ), once `to` is closed
  // too (its peer reset or went away: the queue then stays as it was), or when its peer takes
  // nothing for the idle timeout (Sweep). Closing `to` with SO_LINGER 0 at once threw away what
  // its send buffer held (up to megabytes: helper-114). HAProxy and nginx deliver it and send a
  // FIN; a FIN would make a response cut short look complete, so the RST stays. Meanwhile the
  // other direction's pump stops on its first error without closing anything (Fail) and
  // forwards no FIN. The queue is looked at every 2 ms at first, then at most every 50 ms.
  // `read_to_end`: a write to `from` met the reset (and took the socket's error), so what `from`'s
  // peer sent before it may still wait unread in `from`'s receive queue: the other direction's
  // pump reads it to its end and forwards it first; `from` is closed when that pump is done.
  static Task<> ResetAfterDrain(std::shared_ptr<TcpSession> self, Socket& from, Socket& to, bool read_to_end = false) {
    self->reset_pending_ = true;
    error_code ignored;
    net::steady_timer timer(self->w_.executor());
    std::chrono::milliseconds wait{2};
    while (read_to_end && self->pumps_ > 1 && to.is_open()) {  // this pump still counts itself
      timer.expires_after(wait);
      co_await timer.async_wait(Redirect(ignored));
      wait = std::min(wait * 2, std::chrono::milliseconds(50));
    }
    if (from.is_open()) {
      from.set_option(net::socket_base::linger(true, 0), ignored);
      from.close(ignored);
    }
    wait = std::chrono::milliseconds(2);
    int last = -1;
    while (to.is_open()) {
      const int queued = UnsentBytes(to.native_handle());
      if (queued == 0) break;
      if (queued != last) {  // progress: the peer is reading
        last = queued;
        self->last_activity_ms_ = NowMs();
      }
      timer.expires_after(wait);
      co_await timer.async_wait(Redirect(ignored));
      wait = std::min(wait * 2, std::chrono::milliseconds(50));
    }
    self->CloseBoth(true);
  }

  // A pump's error: the abortive close of both sides, unless a reset is being delivered after
  // its data (ResetAfterDrain closes both when that is done).
  void Fail(bool reset) {
    if (!reset_pending_) CloseBoth(reset);
  }

  // `reset`: abortive close (RST) so each peer learns the other side failed.
  void CloseBoth(bool reset) {
    error_code ignored;
    for (Socket* s : {&client_, &upstream_}) {
      if (!s->is_open()) continue;
      if (reset) s->set_option(net::socket_base::linger(true, 0), ignored);
      s->close(ignored);
    }
    connected_ = false;
  }

  Worker& w_;
  ConnectionSlot slot_;
  Socket client_;
  Socket upstream_;
  std::string listener_;
  std::string backend_;
  std::shared_ptr<SessionList> list_;
  TcpSession* prev_ = nullptr;
  TcpSession* next_ = nullptr;
  lb::EndpointStatePtr endpoint_state_;
  DrainFlag drain_flag_;  // Listener::drain_flags of the chosen endpoint
  lb::StickyHold sticky_hold_;  // source-IP persistence kept while the connection lives
  prometheus::Gauge& active_;
  prometheus::Counter& rx_;
  prometheus::Counter& tx_;
  uint64_t rx_pending_ = 0;
  uint64_t tx_pending_ = 0;
  Millis idle_timeout_ = kDefaultL4IdleTimeout;
  int64_t last_activity_ms_ = NowMs();
  bool connected_ = false;
  bool backend_keepalive_ = false;  // SetTcpKeepalive done on upstream_ (by Sweep)
  int pumps_ = 0;  // copy pumps still running
  bool reset_pending_ = false;  // ResetAfterDrain is delivering a peer's last bytes before its reset
  int64_t header_deadline_ms_ = 0;  // PROXY header phase, 0 = not waiting
  int send_version_ = 0;
  l4::ProxyAddress client_addr_;
  l4::ProxyAddress local_addr_;
  std::string pending_;  // client bytes read before the upstream connection existed
  std::shared_ptr<const RuntimeConfig> config_;  // during route choice and connect only
  const Route* route_ = nullptr;                  // valid while config_ is held
};

Task<> SweepSessions(Worker& w, std::shared_ptr<SessionList> list) {
  Timer timer(w.executor());
  for (;;) {
    timer.expires_after(kL4SweepInterval);
    error_code ec;
    co_await timer.async_wait(Redirect(ec));
    if (ec) co_return;
    const int64_t now = NowMs();
    // Sweep() may close sockets but never destroys a session synchronously (the pumps hold it),
    // so walking the list while sweeping is safe.
    for (TcpSession* s = list->head; s != nullptr; s = s->next()) s->Sweep(now);
  }
}

// One list per worker thread (each worker is one thread running one io_context).
std::shared_ptr<SessionList> WorkerSessions(Worker& w) {
  thread_local std::shared_ptr<SessionList> list;
  if (!list) list = std::make_shared<SessionList>();
  if (!list->sweeping) {
    list->sweeping = true;
    net::co_spawn(w.executor(), SweepSessions(w, list), EssentialLoop("L4 session sweep"));
  }
  return list;
}

}  // namespace

void SetTcpKeepalive(int fd) {
  int v = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v);
  v = kTcpKeepaliveIdleS;
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof v);
  v = kTcpKeepaliveIntervalS;
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, sizeof v);
  v = kTcpKeepaliveCount;
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, sizeof v);
}

int UnsentBytes(int fd) {
  int queued = 0;
  if (::ioctl(fd, SIOCOUTQ, &queued) != 0 || queued <= 0) return 0;
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || info.tcpi_state == TCP_CLOSE) return 0;
  return queued;
}

void PrepareTcpListener(int fd) {
  SetTcpKeepalive(fd);
  int v = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v);
}

void StartTcpSession(Worker& worker, Socket client, const std::string& listener_name, const tcp::endpoint& peer,
                     std::shared_ptr<const RuntimeConfig> config, ConnectionSlot slot) {
  auto session = std::make_shared<TcpSession>(worker, std::move(client), listener_name, peer, std::move(config),
                                              WorkerSessions(worker), std::move(slot));
  net::co_spawn(worker.executor(), TcpSession::Run(std::move(session)), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      log::Error("l4", "session failed", {{"error", ex.what()}});
    }
  });
}

}  // namespace doorman::dataplane
