#include "dataplane/l7/upstream_pool.h"

#include <gtest/gtest.h>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

namespace doorman::dataplane {
namespace {

class FakeConnection final : public PooledConnection {
 public:
  explicit FakeConnection(Socket s) : socket_(std::move(s)) {}
  explicit FakeConnection(net::io_context& ioc) : socket_(ioc.get_executor()) { socket_.open(tcp::v4()); }
  Socket& socket() override { return socket_; }

 private:
  Socket socket_;
};

// A connected loopback pair: {the pooled side, the "backend" side}.
std::pair<Socket, Socket> Pair(net::io_context& ioc) {
  Acceptor acc(ioc.get_executor(), tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  Socket client(ioc.get_executor());
  client.connect(acc.local_endpoint());
  Socket server = acc.accept();
  return {std::move(client), std::move(server)};
}

TEST(UpstreamPoolTest, BoundedPerEndpointAndPerWorker) {
  net::io_context ioc;
  UpstreamPool pool;
  for (int i = 0; i < 70; ++i) pool.Put("a", std::make_unique<FakeConnection>(ioc));
  EXPECT_EQ(pool.idle_count(), kMaxIdlePerEndpoint);
  // Many keys (e.g. HTTPS backends pooled per client-chosen Host): the worker's total is capped.
  for (int i = 0; i < 2000; ++i) pool.Put("k" + std::to_string(i), std::make_unique<FakeConnection>(ioc));
  EXPECT_EQ(pool.idle_count(), kMaxIdlePerWorker);
  // Unconnected sockets fail the peek: Take discards them all and hands out nothing.
  EXPECT_EQ(pool.Take("a"), nullptr);
  EXPECT_EQ(pool.idle_count(), kMaxIdlePerWorker - kMaxIdlePerEndpoint);
  EXPECT_EQ(pool.Take("missing"), nullptr);
  pool.Put("b", std::make_unique<FakeConnection>(ioc));  // room again after the take
  EXPECT_EQ(pool.idle_count(), kMaxIdlePerWorker - kMaxIdlePerEndpoint + 1);
  pool.Close();
  EXPECT_EQ(pool.idle_count(), 0u);
  pool.Put("c", std::make_unique<FakeConnection>(ioc));  // refused after Close
  EXPECT_EQ(pool.idle_count(), 0u);
}

// A connection the backend closed, or wrote to while it was idle, is never handed out (the next
// client would read someone else's bytes); a quiet one is, and stays usable.
TEST(UpstreamPoolTest, ClosedAndChattyConnectionsAreNeverHandedOut) {
  net::io_context ioc;
  UpstreamPool pool;
  auto [quiet, quiet_backend] = Pair(ioc);
  auto [closed, closed_backend] = Pair(ioc);
  auto [chatty, chatty_backend] = Pair(ioc);
  pool.Put("quiet", std::make_unique<FakeConnection>(std::move(quiet)));
  pool.Put("closed", std::make_unique<FakeConnection>(std::move(closed)));
  pool.Put("chatty", std::make_unique<FakeConnection>(std::move(chatty)));
  closed_backend.close();
  net::write(chatty_backend, net::buffer("HTTP/1.1 200 OK\r\n", 17));
  // The FIN and the bytes are in the pooled sockets' receive queues once the writes returned.
  EXPECT_EQ(pool.Take("closed"), nullptr);
  EXPECT_EQ(pool.Take("chatty"), nullptr);
  auto c = pool.Take("quiet");
  ASSERT_NE(c, nullptr);
  // Still usable: a request and its answer go through.
  net::write(c->socket(), net::buffer("ping", 4));
  char buf[4];
  net::read(quiet_backend, net::buffer(buf, 4));
  net::write(quiet_backend, net::buffer("pong", 4));
  net::read(c->socket(), net::buffer(buf, 4));
  EXPECT_EQ(std::string(buf, 4), "pong");
  EXPECT_EQ(pool.idle_count(), 0u);
}

}  // namespace
}  // namespace doorman::dataplane
