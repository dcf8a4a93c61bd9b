#include "dataplane/l7/upstream_pool.h"

#include <gtest/gtest.h>

namespace doorman::dataplane {
namespace {

// An open (unconnected) socket stands in for a backend connection: the pool only looks at it.
class FakeConnection final : public PooledConnection {
 public:
  explicit FakeConnection(net::io_context& ioc) : socket_(ioc.get_executor()) { socket_.open(tcp::v4()); }
  Socket& socket() override { return socket_; }

 private:
  Socket socket_;
};

TEST(UpstreamPoolTest, BoundedPerEndpointAndPerWorker) {
  net::io_context ioc;
  UpstreamPool pool;
  for (int i = 0; i < 70; ++i) pool.Put("a", std::make_unique<FakeConnection>(ioc));
  EXPECT_EQ(pool.idle_count(), kMaxIdlePerEndpoint);
  // Many keys (e.g. HTTPS backends pooled per client-chosen Host): the worker's total is capped.
  for (int i = 0; i < 2000; ++i) pool.Put("k" + std::to_string(i), std::make_unique<FakeConnection>(ioc));
  EXPECT_EQ(pool.idle_count(), kMaxIdlePerWorker);
  // A fresh connection is handed out without a peek when the caller does not ask for one.
  EXPECT_NE(pool.Take("a", /*verify=*/false), nullptr);
  EXPECT_EQ(pool.idle_count(), kMaxIdlePerWorker - 1);
  // With a peek, an unusable socket (here: not connected) is discarded, never handed out.
  EXPECT_EQ(pool.Take("k0", /*verify=*/true), nullptr);
  EXPECT_EQ(pool.Take("missing"), nullptr);
  pool.Put("b", std::make_unique<FakeConnection>(ioc));  // room again after the takes
  EXPECT_EQ(pool.idle_count(), kMaxIdlePerWorker - 1);
  pool.Close();
  EXPECT_EQ(pool.idle_count(), 0u);
  pool.Put("c", std::make_unique<FakeConnection>(ioc));  // refused after Close
  EXPECT_EQ(pool.idle_count(), 0u);
}

}  // namespace
}  // namespace doorman::dataplane
