#include "dataplane/health/health_state.h"

#include <gtest/gtest.h>

namespace doorman::health {
namespace {

CheckSpec Spec(uint32_t healthy, uint32_t unhealthy) {
  CheckSpec s;
  s.protocol = CheckProtocol::kTcp;
  s.healthy_threshold = healthy;
  s.unhealthy_threshold = unhealthy;
  return s;
}

TEST(HealthStateTest, StartsHealthyAndFlipsAfterConsecutiveFailures) {
  HealthState h(Spec(2, 3));
  EXPECT_TRUE(h.healthy());
  EXPECT_EQ(h.OnResult(false), std::nullopt);
  EXPECT_EQ(h.OnResult(false), std::nullopt);
  EXPECT_EQ(h.OnResult(false), false);
  EXPECT_FALSE(h.healthy());
  EXPECT_EQ(h.OnResult(false), std::nullopt);  // no repeated transition
}

TEST(HealthStateTest, ASuccessResetsTheFailureStreak) {
  HealthState h(Spec(2, 3));
  h.OnResult(false);
  h.OnResult(false);
  h.OnResult(true);
  h.OnResult(false);
  h.OnResult(false);
  EXPECT_TRUE(h.healthy());
  EXPECT_EQ(h.OnResult(false), false);
}

TEST(HealthStateTest, RecoversAfterHealthyThreshold) {
  HealthState h(Spec(2, 1));
  EXPECT_EQ(h.OnResult(false), false);
  EXPECT_EQ(h.OnResult(true), std::nullopt);
  EXPECT_EQ(h.OnResult(false), std::nullopt);
  EXPECT_EQ(h.OnResult(true), std::nullopt);
  EXPECT_EQ(h.OnResult(true), true);
  EXPECT_TRUE(h.healthy());
}

TEST(HealthStateTest, ZeroThresholdsBehaveAsOne) {
  HealthState h(Spec(0, 0));
  EXPECT_EQ(h.OnResult(false), false);
  EXPECT_EQ(h.OnResult(true), true);
}

TEST(HealthStateTest, NextProbeHasBoundedJitter) {
  CheckSpec s = Spec(2, 3);
  s.interval = Millis(1000);
  HealthState h(s);
  const Millis now(50'000);
  Millis lo(1'000'000), hi(0);
  for (uint64_t r = 0; r < 1000; ++r) {
    const Millis next = h.NextProbeAt(now, r * 2654435761u);
    lo = std::min(lo, next);
    hi = std::max(hi, next);
  }
  EXPECT_EQ(lo, Millis(51'000));
  EXPECT_EQ(hi, Millis(51'100));  // interval + 10%
}

TEST(HealthStateTest, ExpectedStatuses) {
  CheckSpec s;
  EXPECT_TRUE(s.StatusOk(200));
  EXPECT_TRUE(s.StatusOk(302));
  EXPECT_FALSE(s.StatusOk(404));
  EXPECT_FALSE(s.StatusOk(500));
  s.expected_statuses = {200, 204};
  EXPECT_TRUE(s.StatusOk(204));
  EXPECT_FALSE(s.StatusOk(302));
}

TEST(HealthStateTest, ParsesStatusLines) {
  EXPECT_EQ(ParseHttpStatus("HTTP/1.1 200 OK\r\n"), 200u);
  EXPECT_EQ(ParseHttpStatus("HTTP/1.0 503 Service Unavailable\r\nX: y\r\n\r\n"), 503u);
  EXPECT_EQ(ParseHttpStatus("HTTP/1.1 204\r\n"), 204u);
  EXPECT_EQ(ParseHttpStatus("HTTP/1.1 200 OK\nContent-Length: 3\n\n"), 200u);  // bare LF, as the proxy takes it
  for (const char* bad : {"", "HTTP/1.1 200 OK", "HTTP/2 200\r\n", "HTTP/1.1 2x0 OK\r\n", "HTTP/1.1 20\r\n",
                          "SSH-2.0-OpenSSH\r\n", "HTTP/1.1 2000\r\n", "HTTP/1.1 099 x\r\n", "HTTP/1.9 200 OK\r\n"}) {
    EXPECT_EQ(ParseHttpStatus(bad), std::nullopt) << bad;
  }
}

// helper-119: a 103 Early Hints before the 200 is not the answer (RFC 9110 §15.2), a bare-LF
// head ends at "\n\n", and nothing is final before its head is complete.
TEST(HealthStateTest, FinalReplyStatusSkipsInterimHeads) {
  const auto final_code = [](std::string_view reply) {
    const ReplyStatus s = FinalReplyStatus(reply);
    return s.state == ReplyStatus::kFinal ? std::optional<uint32_t>(s.code) : std::nullopt;
  };
  EXPECT_EQ(final_code("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 200u);
  EXPECT_EQ(final_code("HTTP/1.1 200 OK\nContent-Length: 2\n\nok"), 200u);
  EXPECT_EQ(final_code("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"), 204u);
  EXPECT_EQ(final_code("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\n\nHTTP/1.1 503 x\r\n\r\n"), 503u);
  EXPECT_EQ(final_code("HTTP/1.1 101 Switching Protocols\r\n\r\n"), 101u);  // not interim: a (wrong) answer
  for (const char* partial : {"", "HTTP/1.1 200 OK\r\n", "HTTP/1.1 200 OK\r\nX: y\r\n\r",
                              "HTTP/1.1 102 Processing\r\n\r\n", "HTTP/1.1 103 x\r\n\r\nHTTP/1.1 200 OK\r\n"}) {
    EXPECT_EQ(FinalReplyStatus(partial).state, ReplyStatus::kNeedMore) << partial;
  }
  EXPECT_EQ(FinalReplyStatus("SSH-2.0-OpenSSH\r\n\r\n").state, ReplyStatus::kInvalid);
  EXPECT_EQ(FinalReplyStatus("HTTP/1.1 103 x\r\n\r\ngarbage\r\n\r\n").state, ReplyStatus::kInvalid);
}

TEST(HealthStateTest, GrpcVerdictNeedsAnOkCallAndServing) {
  EXPECT_TRUE(GrpcCheckPassed(kGrpcStatusOk, kGrpcServing));
  EXPECT_FALSE(GrpcCheckPassed(kGrpcStatusOk, 0));   // UNKNOWN
  EXPECT_FALSE(GrpcCheckPassed(kGrpcStatusOk, 2));   // NOT_SERVING
  EXPECT_FALSE(GrpcCheckPassed(kGrpcStatusOk, 3));   // SERVICE_UNKNOWN
  EXPECT_FALSE(GrpcCheckPassed(kGrpcStatusOk, 99));  // a value this build does not know
  for (int code : {1, 2, 4, 5, 12, 14, 16}) {       // CANCELLED ... DEADLINE_EXCEEDED, NOT_FOUND, UNAVAILABLE
    EXPECT_FALSE(GrpcCheckPassed(code, kGrpcServing)) << code;
  }
}

TEST(HealthStateTest, GrpcFailuresForWantOfLocalResourcesAreNoVerdict) {
  // gRPC 1.51's words (a probe run at EMFILE once gRPC was up; a refused port), and others.
  EXPECT_TRUE(GrpcFailureIsLocal("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:59515: "
                                 "Too many open files"));
  EXPECT_TRUE(GrpcFailureIsLocal("socket: Too many open files in system"));
  EXPECT_TRUE(GrpcFailureIsLocal("connect: No buffer space available"));
  EXPECT_TRUE(GrpcFailureIsLocal("Cannot allocate memory"));
  EXPECT_FALSE(GrpcFailureIsLocal("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:59515: "
                                  "Failed to connect to remote host: Connection refused"));
  EXPECT_FALSE(GrpcFailureIsLocal("Deadline Exceeded"));
  EXPECT_FALSE(GrpcFailureIsLocal(""));
  EXPECT_EQ(ProbeResultName(ProbeResult::kSkipped), "skipped");
}

TEST(HealthStateTest, GrpcTargetsNeedNoNameResolution) {
  EXPECT_EQ(GrpcTarget("10.0.0.1", 50051), "ipv4:10.0.0.1:50051");
  EXPECT_EQ(GrpcTarget("fd00::1", 8080), "ipv6:[fd00::1]:8080");
  EXPECT_EQ(GrpcTarget("::ffff:10.0.0.1", 1), "ipv6:[::ffff:10.0.0.1]:1");
}

TEST(HealthStateTest, GrpcServiceNames) {
  EXPECT_TRUE(ValidGrpcServiceName(""));
  EXPECT_TRUE(ValidGrpcServiceName("grpc.health.v1.Health"));
  EXPECT_TRUE(ValidGrpcServiceName(std::string(256, 'a')));
  EXPECT_FALSE(ValidGrpcServiceName(std::string(257, 'a')));
  for (const char* bad : {"my service", "a\tb", "a\nb", "caf\xc3\xa9", "\x7f"}) {
    EXPECT_FALSE(ValidGrpcServiceName(bad)) << bad;
  }
}

TEST(HealthStateTest, ProtocolNames) {
  EXPECT_EQ(CheckProtocolName(CheckProtocol::kTcp), "tcp");
  EXPECT_EQ(CheckProtocolName(CheckProtocol::kHttp), "http");
  EXPECT_EQ(CheckProtocolName(CheckProtocol::kGrpc), "grpc");
  EXPECT_EQ(CheckProtocolName(CheckProtocol::kNone), "none");
}

}  // namespace
}  // namespace doorman::health
