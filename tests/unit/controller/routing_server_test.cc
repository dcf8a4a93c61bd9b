// The RoutingState server over loopback gRPC (127.0.0.1, port 0): the protocol as a dataplane
// sees it. Every wait is a blocking read with a deadline; no sleeps.
#include "controller/grpc/routing_server.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "doorman/v1/routing.grpc.pb.h"

namespace doorman::controller {
namespace {

namespace v1 = doorman::v1;

std::shared_ptr<const v1::Snapshot> Snap(const std::string& listener) {
  auto s = std::make_shared<v1::Snapshot>();
  s->add_listeners()->set_name(listener);
  return s;
}

struct Client {
  explicit Client(int port) {
    // Its own connection, as each dataplane process has (channels in one process would otherwise
    // share one, and the server takes at most 8 streams per connection).
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials(), args);
    stub = v1::RoutingState::NewStub(channel);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    stream = stub->StreamRoutingState(&ctx);
  }
  bool Hello(const std::string& node) {
    v1::DataplaneMessage m;
    m.mutable_hello()->set_node_name(node);
    return stream->Write(m);
  }
  bool Ack(const v1::StateUpdate& u) {
    v1::DataplaneMessage m;
    m.mutable_ack()->set_version(u.version());
    m.mutable_ack()->set_nonce(u.nonce());
    return stream->Write(m);
  }
  std::optional<v1::StateUpdate> Read() {
    v1::ControllerMessage m;
    if (!stream->Read(&m)) return std::nullopt;
    return m.update();
  }
  // A real dataplane cancels; a half-close is refused (INVALID_ARGUMENT) after the server has
  // dropped the stream, so the status also tells the test that the server saw it go.
  grpc::Status HalfClose() {
    stream->WritesDone();
    v1::ControllerMessage m;
    while (stream->Read(&m)) {
    }
    return stream->Finish();
  }

  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::RoutingState::Stub> stub;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::DataplaneMessage, v1::ControllerMessage>> stream;
};

class RoutingServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(server.Start("127.0.0.1:0", &error)) << error;
    server.Publish(5, Snap("a"), Clock::now());
  }
  RoutingServer server{PublisherOptions{}, nullptr};
};

TEST_F(RoutingServerTest, HelloUpdateAckThenTheNextVersion) {
  Client c(server.port());
  ASSERT_TRUE(c.Hello("n1"));
  auto u1 = c.Read();
  ASSERT_TRUE(u1);
  EXPECT_EQ(u1->version(), 5u);
  EXPECT_EQ(u1->snapshot().listeners(0).name(), "a");
  ASSERT_TRUE(c.Ack(*u1));
  server.Publish(6, Snap("b"), Clock::now());
  auto u2 = c.Read();
  ASSERT_TRUE(u2);
  EXPECT_EQ(u2->version(), 6u);
  EXPECT_NE(u2->nonce(), u1->nonce());
  ASSERT_TRUE(c.Ack(*u2));
  const grpc::Status st = c.HalfClose();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("stays open"), std::string::npos) << st.error_message();
  EXPECT_TRUE(server.dataplanes().empty());  // closed before the client saw the status
}

TEST_F(RoutingServerTest, FirstMessageNotHelloClosesWithInvalidArgument) {
  Client c(server.port());
  v1::StateUpdate bogus;
  bogus.set_nonce("nope");
  ASSERT_TRUE(c.Ack(bogus));
  EXPECT_FALSE(c.Read());
  const grpc::Status st = c.stream->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("Hello"), std::string::npos);
}

TEST_F(RoutingServerTest, UnknownNonceIsIgnoredAndTheStreamStaysUp) {
  Client c(server.port());
  ASSERT_TRUE(c.Hello("n1"));
  auto u1 = c.Read();
  ASSERT_TRUE(u1);
  v1::StateUpdate wrong = *u1;
  wrong.set_nonce("garbage");
  ASSERT_TRUE(c.Ack(wrong));
  ASSERT_TRUE(c.Ack(*u1));
  server.Publish(7, Snap("c"), Clock::now());
  auto u2 = c.Read();
  ASSERT_TRUE(u2);
  EXPECT_EQ(u2->version(), 7u);
  EXPECT_EQ(c.HalfClose().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RoutingServerTest, ManyDataplanesAndAStopWithOpenStreams) {
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(std::make_unique<Client>(server.port()));
    ASSERT_TRUE(clients.back()->Hello("n" + std::to_string(i)));
    auto u = clients.back()->Read();
    ASSERT_TRUE(u);
    EXPECT_EQ(u->version(), 5u);
  }
  EXPECT_EQ(server.dataplanes().size(), 20u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(clients[i]->HalfClose().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(server.dataplanes().size(), 10u);
  server.Stop();
  for (int i = 10; i < 20; ++i) EXPECT_FALSE(clients[i]->Read());
}

}  // namespace
}  // namespace doorman::controller
