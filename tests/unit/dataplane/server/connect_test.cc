#include "dataplane/server/connect.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <gtest/gtest.h>

namespace doorman::dataplane {
namespace {

using std::chrono::milliseconds;
using error_code = boost::system::error_code;

// A loopback port whose SYNs go unanswered: a listener with backlog 0 and one connection queued
// that is never accepted (Linux drops SYNs to a full accept queue). `ok` is false if this kernel
// answers anyway; the tests that need silence then skip.
struct SilentPort {
  int listener = -1;
  int filler = -1;
  uint16_t port = 0;
  bool ok = false;

  SilentPort() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener, 0) != 0 || ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port = ntohs(addr.sin_port);
    filler = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (filler < 0 || ::connect(filler, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return;
    const int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0) return;
    ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    pollfd p{probe, POLLOUT, 0};
    ok = ::poll(&p, 1, 300) == 0;  // still connecting after 300 ms: the SYN was dropped
    ::close(probe);
  }
  ~SilentPort() {
    if (filler >= 0) ::close(filler);
    if (listener >= 0) ::close(listener);
  }
};

Endpoint Loopback(uint16_t port) {
  Endpoint ep;
  ep.address = "127.0.0.1";
  ep.port = port;
  ep.key = "127.0.0.1:" + std::to_string(port);
  return ep;
}

// Runs ConnectTo to completion on `ioc`; returns whether it reported a connected socket.
bool RunConnect(net::io_context& ioc, const Endpoint& ep, milliseconds timeout, error_code& ec) {
  bool connected = false, finished = false;
  ioc.restart();  // a previous run may have stopped it by running out of work
  net::co_spawn(
      ioc.get_executor(),
      [&]() -> Task<> {
        Socket s = co_await ConnectTo(ioc.get_executor(), ep, timeout, ec);
        connected = !ec && s.is_open();
        finished = true;
      },
      net::detached);
  for (int i = 0; i < 500 && !finished; ++i) ioc.run_one_for(milliseconds(10));
  EXPECT_TRUE(finished);
  return connected;
}

TEST(ConnectToTest, ConnectsRefusesAndTimesOut) {
  net::io_context ioc;
  Acceptor acc(ioc.get_executor(), tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  error_code ec;
  EXPECT_TRUE(RunConnect(ioc, Loopback(acc.local_endpoint().port()), milliseconds(2000), ec));
  EXPECT_FALSE(ec);

  // A closed port: refused at once, not a timeout.
  uint16_t closed_port = 0;
  {
    Acceptor gone(ioc.get_executor(), tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    closed_port = gone.local_endpoint().port();
  }
  EXPECT_FALSE(RunConnect(ioc, Loopback(closed_port), milliseconds(2000), ec));
  EXPECT_EQ(ec, net::error::connection_refused);

  SilentPort silent;
  if (!silent.ok) GTEST_SKIP() << "this kernel answers SYNs to a full accept queue";
  EXPECT_FALSE(RunConnect(ioc, Loopback(silent.port), milliseconds(100), ec));
  EXPECT_TRUE(IsTimeout(ec)) << ec.message();
}

// Regression (a CI flake, then a real misroute under load): an event the reactor had already
// collected for a socket that a handler closes in the same turn is delivered to the reactor
// state Asio reuses for the next socket. When that next socket is a connect in progress, its
// wait for writability completes while the connect is still in SYN_SENT. ConnectTo used to take
// that as connected (SO_ERROR is 0 then), pinning the session to a backend that never answered.
//
// Set up deterministically: sockets C and A become readable in that order, so one epoll_wait
// reports both; C's handler closes A and starts a connect to a silent port, whose new socket
// gets A's reactor state while A's event (readable and writable) is still queued. `connect`
// runs in that handler, right after A is closed.
template <class Connect>
void WithAStaleWakeUp(Connect connect) {
  net::io_context ioc;
  const Executor ex = ioc.get_executor();
  Acceptor acc(ex, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  Socket a(ex), c(ex);
  a.connect(acc.local_endpoint());
  Socket peer_a = acc.accept();
  c.connect(acc.local_endpoint());
  Socket peer_c = acc.accept();
  // A's registration gains EPOLLOUT (as a proxied socket's does after its first waited write),
  // so its later events report it writable too.
  bool waited = false;
  a.async_wait(tcp::socket::wait_write, [&](const error_code&) { waited = true; });
  for (int i = 0; i < 100 && !waited; ++i) ioc.run_one_for(milliseconds(10));
  ASSERT_TRUE(waited);
  bool finished = false, started = false;
  net::co_spawn(
      ex,
      [&]() -> Task<> {
        error_code ec;
        started = true;
        co_await c.async_wait(tcp::socket::wait_read, Redirect(ec));
        a.close(ec);
        co_await connect(ex);
        finished = true;
      },
      net::detached);
  ioc.restart();
  for (int i = 0; i < 100 && !started; ++i) ioc.poll_one();
  ASSERT_TRUE(started);
  ioc.poll();  // the wait on C is registered
  net::write(peer_c, net::buffer("c", 1));
  net::write(peer_a, net::buffer("a", 1));
  for (int i = 0; i < 500 && !finished; ++i) ioc.run_one_for(milliseconds(10));
  ASSERT_TRUE(finished);
}

// The canary: the setup really produces the stale wake-up (a bare wait for writability on a
// socket still in SYN_SENT completes). If a Boost upgrade fixes that, this fails, and the
// regression test below needs another way to force one.
TEST(ConnectToTest, TheSetupReproducesAStaleWakeUp) {
  SilentPort silent;
  if (!silent.ok) GTEST_SKIP() << "this kernel answers SYNs to a full accept queue";
  bool woken_in_syn_sent = false;
  WithAStaleWakeUp([&](Executor ex) -> Task<> {
    Socket b(ex);
    b.open(tcp::v4());  // registered with the reactor here: it gets A's state
    b.native_non_blocking(true);
    error_code ec;
    const tcp::endpoint to(net::ip::make_address("127.0.0.1"), silent.port);
    if (::connect(b.native_handle(), to.data(), static_cast<socklen_t>(to.size())) == 0 || errno != EINPROGRESS) co_return;
    Timer deadline(ex);
    deadline.expires_after(milliseconds(300));
    deadline.async_wait([&b](const error_code& e) {
      if (!e) b.cancel();
    });
    co_await b.async_wait(tcp::socket::wait_write, Redirect(ec));
    deadline.cancel();
    tcp_info info{};
    socklen_t len = sizeof info;
    woken_in_syn_sent = !ec && ::getsockopt(b.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
                        info.tcpi_state == TCP_SYN_SENT;
  });
  EXPECT_TRUE(woken_in_syn_sent) << "Asio no longer delivers a closed socket's queued event to its successor";
}

TEST(ConnectToTest, AWakeUpLeftOverFromAClosedSocketIsNotAConnection) {
  SilentPort silent;
  if (!silent.ok) GTEST_SKIP() << "this kernel answers SYNs to a full accept queue";
  const Endpoint ep = Loopback(silent.port);
  error_code connect_ec;
  bool connected = false;
  WithAStaleWakeUp([&](Executor ex) -> Task<> {
    Socket s = co_await ConnectTo(ex, ep, milliseconds(300), connect_ec);
    connected = !connect_ec && s.is_open();
  });
  EXPECT_FALSE(connected) << "reported connected to a port that never answered";
  EXPECT_TRUE(IsTimeout(connect_ec)) << connect_ec.message();
}

}  // namespace
}  // namespace doorman::dataplane
