#include "dataplane/server/connect.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include <boost/beast/core/error.hpp>

#include "common/fd_limit.h"
#include "dataplane/server/socket_state.h"

namespace doorman::dataplane {

namespace {

// What the connect timeout's handler may touch: cleared before the connecting frame ends, so a
// timer that fired in the same turn as the connect completed cancels nothing.
struct ConnectWatch {
  Socket* socket = nullptr;
  bool fired = false;
};

boost::system::error_code Errno() { return {errno, boost::system::system_category()}; }

}  // namespace

// The socket is connected with a non-blocking connect(2), a wait for writability and one
// getsockopt(TCP_INFO) that confirms the connection (SO_ERROR only when it failed): Asio's
// async_connect adds a poll(2) after the wait, one syscall per connection more
// (docs/benchmarks.md, L4 "what bounds it").
Task<Socket> ConnectTo(Executor ex, const Endpoint& endpoint, std::chrono::milliseconds timeout,
                       boost::system::error_code& ec, Socket** connecting) {
  Socket s(ex);
  boost::system::error_code ignored;
  const auto addr = net::ip::make_address(endpoint.address, ec);
  if (ec) co_return s;
  const tcp::endpoint to(addr, endpoint.port);
  // Created non-blocking (no ioctl) and adopted as a descriptor only this process holds (no
  // epoll_ctl(DEL) before its close): socket_state.h.
  const int fd = ::socket(to.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    ec = Errno();
    co_return s;
  }
  Adopt(s, to.protocol(), fd, true, ec);
  if (ec) {
    ::close(fd);
    co_return s;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, to.data(), static_cast<socklen_t>(to.size())) != 0) {
    if (errno != EINPROGRESS) {
      ec = Errno();
      s.close(ignored);
      co_return s;
    }
    auto watch = std::make_shared<ConnectWatch>();
    watch->socket = &s;
    Timer timer(ex);
    timer.expires_after(timeout);
    timer.async_wait([watch](const boost::system::error_code& tec) {
      if (tec || watch->socket == nullptr) return;
      watch->fired = true;
      boost::system::error_code e;
      watch->socket->cancel(e);
    });
    // A completed wait is not proof of a finished connect: Asio's wait operations complete on
    // any event its reactor hands the descriptor, and under load a socket still in SYN_SENT was
    // seen woken (an event queued for a just-closed descriptor reaches the reactor state Asio
    // reuses for the next one). Taken as connected, the session was pinned to a backend that
    // never answered. So the TCP state decides: still connecting → wait again (the timer
    // bounds it); connected → done; closed → SO_ERROR says why. One getsockopt on success, as
    // before (Asio's own async_connect pays a poll(2) for the same check).
    auto so_error = [fd]() {
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      return err;
    };
    if (connecting != nullptr) *connecting = &s;
    for (;;) {
      if (watch->fired) {  // the deadline passed while this frame was not waiting
        ec = net::error::operation_aborted;
        break;
      }
      co_await s.async_wait(tcp::socket::wait_write, Redirect(ec));
      if (ec) break;
      tcp_info info{};
      socklen_t len = sizeof info.tcpi_state;  // only the first byte is needed
      if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
        // No TCP_INFO (a sandboxed kernel): the previous check, SO_ERROR alone.
        if (const int err = so_error(); err != 0) ec = boost::system::error_code(err, boost::system::system_category());
        break;
      }
      // Connected: ESTABLISHED, or CLOSE_WAIT (the backend accepted and already closed its side).
      if (info.tcpi_state == TCP_ESTABLISHED || info.tcpi_state == TCP_CLOSE_WAIT) break;
      if (info.tcpi_state == TCP_SYN_SENT || info.tcpi_state == TCP_SYN_RECV) continue;  // woken early
      // CLOSE (refused, unreachable) or anything else: SO_ERROR says why, if it can.
      const int err = so_error();
      ec = err != 0 ? boost::system::error_code(err, boost::system::system_category())
                    : boost::system::error_code(net::error::not_connected);
      break;
    }
    if (connecting != nullptr) *connecting = nullptr;
    watch->socket = nullptr;
    timer.cancel();
    if (watch->fired && ec == net::error::operation_aborted) ec = boost::beast::error::timeout;
    if (ec) s.close(ignored);
  }
  co_return s;
}

bool IsLocalResourceError(const boost::system::error_code& ec) {
  return ec.category() == boost::system::system_category() && IsLocalResourceErrno(ec.value());
}

bool IsTimeout(const boost::system::error_code& ec) {
  return ec == boost::beast::error::timeout || ec == net::error::timed_out;
}

}  // namespace doorman::dataplane
