#include "common/admin_server.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <map>
#include <thread>

#include "common/flags.h"
#include "common/log.h"

namespace doorman {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

struct AdminServer::Impl {
  std::shared_ptr<prometheus::Registry> registry;
  std::function<bool()> ready;
  std::function<std::string()> broken;
  std::function<void()> before_metrics;
  std::map<std::string, Handler> handlers;
  bool remote_handlers = false;
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  uint16_t port = 0;

  Response Handle(std::string_view target, bool loopback_client) {
    const auto q = target.find('?');
    const std::string path(target.substr(0, q));
    if (path == "/metrics") {
      if (before_metrics) before_metrics();
      prometheus::TextSerializer serializer;
      return {200, "text/plain; version=0.0.4; charset=utf-8", serializer.Serialize(registry->Collect())};
    }
    if (path == "/healthz" || path == "/readyz") {
      if (std::string why = broken ? broken() : std::string(); !why.empty()) {
        return {503, "text/plain", "broken: " + why + "\n"};
      }
    }
    if (path == "/healthz") return {200, "text/plain", "ok\n"};
    if (path == "/readyz") {
      const bool ok = !ready || ready();
      return {ok ? 200 : 503, "text/plain", ok ? "ready\n" : "not ready\n"};
    }
    if (auto it = handlers.find(path); it != handlers.end()) {
      if (!loopback_client && !remote_handlers) {
        return {403, "text/plain",
                "forbidden: " + path + " answers only on loopback (kubectl port-forward, or --debug-remote)\n"};
      }
      return it->second();
    }
    return {404, "text/plain", "not found\n"};
  }

  void DoAccept();
};

namespace {

class AdminSession : public std::enable_shared_from_this<AdminSession> {
 public:
  AdminSession(tcp::socket socket, std::function<AdminServer::Response(std::string_view, bool)> handle)
      : stream_(std::move(socket)), handle_(std::move(handle)) {}

  void Start() {
    beast::error_code ec;
    const auto peer = stream_.socket().remote_endpoint(ec).address();
    loopback_ = !ec && (peer.is_loopback() || (peer.is_v6() && peer.to_v6().is_v4_mapped() &&
                                               net::ip::make_address_v4(net::ip::v4_mapped, peer.to_v6()).is_loopback()));
    DoRead();
  }

 private:
  void DoRead() {
    req_ = {};
    stream_.expires_after(std::chrono::seconds(30));
    http::async_read(stream_, buffer_, req_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->OnRead(ec);
    });
  }

  void OnRead(beast::error_code ec) {
    if (ec) {
      stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      return;
    }
    AdminServer::Response r;
    if (req_.method() != http::verb::get && req_.method() != http::verb::head) {
      r = {405, "text/plain", "method not allowed\n"};
    } else {
      r = handle_(req_.target(), loopback_);
    }
    res_ = {};
    res_.result(static_cast<unsigned>(r.status));
    res_.version(req_.version());
    res_.set(http::field::content_type, r.content_type);
    if (r.status == 405) res_.set(http::field::allow, "GET, HEAD");  // RFC 9110 §15.5.6
    res_.keep_alive(req_.keep_alive());
    res_.body() = std::move(r.body);
    res_.prepare_payload();
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code wec, size_t) {
      if (wec || !self->res_.keep_alive()) {
        beast::error_code ignored;
        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        return;
      }
      self->DoRead();
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  std::function<AdminServer::Response(std::string_view, bool)> handle_;
  bool loopback_ = false;  // the client's address is a loopback one
};

}  // namespace

void AdminServer::Impl::DoAccept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket s) {
    if (ec == net::error::operation_aborted) return;
    if (!ec) {
      std::make_shared<AdminSession>(std::move(s), [this](std::string_view t, bool loopback) {
        return Handle(t, loopback);
      })->Start();
      DoAccept();
      return;
    }
    // Out of descriptors (EMFILE) and the like: the connection stays queued and the acceptor
    // readable, so accepting again at once would spin a core; wait a little first.
    auto pause = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(50));
    pause->async_wait([this, pause](beast::error_code tec) {
      if (tec != net::error::operation_aborted && acceptor.is_open()) DoAccept();
    });
  });
}

AdminServer::AdminServer(std::shared_ptr<prometheus::Registry> registry, std::function<bool()> ready)
    : impl_(std::make_unique<Impl>()) {
  impl_->registry = std::move(registry);
  impl_->ready = std::move(ready);
}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::AddHandler(std::string path, Handler handler) { impl_->handlers[std::move(path)] = std::move(handler); }

void AdminServer::AllowRemoteHandlers(bool allow) { impl_->remote_handlers = allow; }

void AdminServer::SetBroken(std::function<std::string()> broken) { impl_->broken = std::move(broken); }

bool AdminServer::Start(const std::string& listen, std::string* error) {
  std::string host;
  uint16_t port = 0;
  if (!SplitHostPort(listen, &host, &port)) {
    *error = "invalid listen address \"" + listen + "\" (want host:port or :port)";
    return false;
  }
  beast::error_code ec;
  const auto addr = net::ip::make_address(host, ec);
  if (ec) {
    *error = "invalid listen address \"" + listen + "\": " + ec.message();
    return false;
  }
  const tcp::endpoint ep{addr, port};
  auto& acc = impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    *error = "cannot listen on " + listen + ": " + ec.message();
    return false;
  }
  impl_->port = acc.local_endpoint().port();
  impl_->DoAccept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->ioc.run(); });
  return true;
}

void AdminServer::SetBeforeMetrics(std::function<void()> before) { impl_->before_metrics = std::move(before); }

uint16_t AdminServer::port() const { return impl_->port; }

void AdminServer::Stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->ioc.stop();
  impl_->thread.join();
}

}  // namespace doorman
