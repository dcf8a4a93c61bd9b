#include "dataplane/l4/tcp_proxy.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/write.hpp>
#include <vector>

#include "common/log.h"
#include "dataplane/server/connect.h"
#include "dataplane/server/worker.h"

namespace doorman::dataplane {
namespace {

using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr std::size_t kPumpBuffer = 16 * 1024;
constexpr uint64_t kBytesFlushThreshold = 1 << 20;  // add to the shared counter every MiB

class TcpSession {
 public:
  TcpSession(Worker& w, Socket client, std::string listener)
      : w_(w), client_(std::move(client)), upstream_(w.executor()), idle_timer_(w.executor()),
        listener_(std::move(listener)), active_(w.metrics().L4Active(listener_)),
        rx_(w.metrics().L4Bytes(listener_, true)), tx_(w.metrics().L4Bytes(listener_, false)) {
    active_.Increment();
    w_.shared().l4_active.fetch_add(1, std::memory_order_relaxed);
  }

  ~TcpSession() {
    CloseBoth();
    if (rx_pending_) rx_.Increment(static_cast<double>(rx_pending_));
    if (tx_pending_) tx_.Increment(static_cast<double>(tx_pending_));
    if (endpoint_state_) endpoint_state_->active.fetch_sub(1, std::memory_order_relaxed);
    active_.Decrement();
    w_.shared().l4_active.fetch_sub(1, std::memory_order_relaxed);
  }

  // `self` keeps the session alive while the coroutine runs (it starts after the spawner returns).
  static Task<> Run(std::shared_ptr<TcpSession> self) {
    if (!co_await self->ConnectUpstream()) co_return;
    self->last_activity_ = Clock::now();
    self->open_directions_ = 2;
    const auto ex = self->w_.executor();
    net::co_spawn(ex, Pump(self, self->client_, self->upstream_, true), net::detached);
    net::co_spawn(ex, Pump(self, self->upstream_, self->client_, false), net::detached);
    net::co_spawn(ex, IdleWatch(self), net::detached);
  }

 private:
  // Picks endpoints from the newest config and connects to the first that answers.
  Task<bool> ConnectUpstream() {
    const auto config = w_.shared().config.Load();
    const Listener* listener = config ? config->FindListener(listener_) : nullptr;
    if (listener == nullptr || listener->routes.empty()) co_return false;  // closes the client
    const Route& route = *listener->routes.front();
    idle_timeout_ = route.idle_timeout.count() > 0 ? route.idle_timeout : listener->idle_timeout;
    const std::size_t attempts = std::min(route.eligible_endpoints(), kMaxConnectAttempts);
    std::vector<const Endpoint*> tried;
    lb::PickContext pick{ClientHash(), 0};
    for (std::size_t i = 0; i < attempts * 2 && tried.size() < attempts; ++i) {
      const Endpoint* ep = route.PickEndpoint(pick);
      // Hash schedulers answer the same for the same client: re-hash to reach another endpoint.
      pick.hash = lb::HashKey(std::string_view(reinterpret_cast<const char*>(&pick.hash), sizeof pick.hash), i + 1);
      if (ep == nullptr) break;
      if (std::find(tried.begin(), tried.end(), ep) != tried.end()) continue;
      tried.push_back(ep);
      error_code ec;
      upstream_ = co_await ConnectTo(w_.executor(), *ep, route.connect_timeout, ec);
      if (!ec) {
        backend_ = ep->key;
        endpoint_state_ = ep->state;  // least-connections load, released in the destructor
        if (endpoint_state_) endpoint_state_->active.fetch_add(1, std::memory_order_relaxed);
        w_.metrics().L4Connections(listener_, backend_).Increment();
        co_return true;
      }
      log::Debug("l4", "connect to backend failed",
                 {{"listener", listener_}, {"backend", ep->key}, {"error", IsTimeout(ec) ? "timeout" : ec.message()}});
    }
    if (tried.empty()) {
      log::Debug("l4", "no ready endpoint; closing client", {{"listener", listener_}, {"route", route.name}});
    } else {
      log::Warn("l4", "no backend accepted the connection; closing client",
                {{"listener", listener_}, {"route", route.name}, {"tried", std::to_string(tried.size())}});
    }
    co_return false;
  }

  // Copies `from` → `to` until EOF (then half-closes `to`) or an error (then closes both).
  static Task<> Pump(std::shared_ptr<TcpSession> self, Socket& from, Socket& to, bool rx) {
    std::array<char, kPumpBuffer> buf;
    for (;;) {
      error_code ec;
      const std::size_t n = co_await from.async_read_some(net::buffer(buf), Redirect(ec));
      if (ec == net::error::eof) {
        error_code ignored;
        to.shutdown(tcp::socket::shutdown_send, ignored);  // forward the FIN
        break;
      }
      if (ec) {
        self->CloseBoth();
        break;
      }
      self->last_activity_ = Clock::now();
      co_await net::async_write(to, net::buffer(buf.data(), n), Redirect(ec));
      if (ec) {
        self->CloseBoth();
        break;
      }
      self->last_activity_ = Clock::now();
      self->Count(rx, n);
    }
    if (--self->open_directions_ == 0) {
      self->done_ = true;
      self->idle_timer_.cancel();
    }
  }

  // One timer per connection, re-armed only when it fires (not per read): cheap idle tracking.
  static Task<> IdleWatch(std::shared_ptr<TcpSession> self) {
    while (!self->done_) {
      const auto deadline = self->last_activity_ + self->idle_timeout_;
      if (Clock::now() >= deadline) {
        log::Debug("l4", "idle timeout", {{"listener", self->listener_}, {"backend", self->backend_}});
        self->CloseBoth();
        co_return;
      }
      self->idle_timer_.expires_at(deadline);
      error_code ec;
      co_await self->idle_timer_.async_wait(Redirect(ec));
      if (ec && ec != net::error::operation_aborted) co_return;
    }
  }

  // Hash of the client's IP address (not its port): source-hash/maglev pin a client, not a flow.
  uint64_t ClientHash() const {
    error_code ec;
    const auto remote = client_.remote_endpoint(ec);
    if (ec) return 0;
    const auto addr = remote.address();
    if (addr.is_v4()) {
      const auto b = addr.to_v4().to_bytes();
      return lb::HashKey(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
    }
    const auto b = addr.to_v6().to_bytes();
    return lb::HashKey(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  }

  void Count(bool rx, std::size_t n) {
    uint64_t& pending = rx ? rx_pending_ : tx_pending_;
    pending += n;
    if (pending >= kBytesFlushThreshold) {
      (rx ? rx_ : tx_).Increment(static_cast<double>(pending));
      pending = 0;
    }
  }

  void CloseBoth() {
    error_code ignored;
    if (client_.is_open()) client_.close(ignored);
    if (upstream_.is_open()) upstream_.close(ignored);
    idle_timer_.cancel();
  }

  Worker& w_;
  Socket client_;
  Socket upstream_;
  Timer idle_timer_;
  std::string listener_;
  std::string backend_;
  lb::EndpointStatePtr endpoint_state_;
  prometheus::Gauge& active_;
  prometheus::Counter& rx_;
  prometheus::Counter& tx_;
  uint64_t rx_pending_ = 0;
  uint64_t tx_pending_ = 0;
  Millis idle_timeout_ = kDefaultL4IdleTimeout;
  Clock::time_point last_activity_ = Clock::now();
  int open_directions_ = 0;
  bool done_ = false;
};

}  // namespace

void StartTcpSession(Worker& worker, Socket client, const std::string& listener_name) {
  error_code ignored;
  client.set_option(tcp::no_delay(true), ignored);
  auto session = std::make_shared<TcpSession>(worker, std::move(client), listener_name);
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
