#include "dataplane/l7/access_log.h"

#include <gtest/gtest.h>

namespace doorman::dataplane {
namespace {

TEST(AccessLogTest, OneEscapedJsonLine) {
  AccessLogEntry e;
  e.listener = "http-80";
  e.route = "ns/lb/r";
  e.backend = "10.0.0.1:80";
  e.client_ip = "192.0.2.1";
  e.method = "GET";
  e.host = "a\"b";
  e.path = "/x\n\x01";
  e.request_id = "id";
  e.status = 200;
  e.duration_s = 0.0012345;
  const auto line = FormatAccessLog(e, std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'123)));
  EXPECT_EQ(line,
            "{\"ts\":\"2023-11-14T22:13:20.123Z\",\"listener\":\"http-80\",\"route\":\"ns/lb/r\",\"backend\":\"10.0.0.1:80\","
            "\"client\":\"192.0.2.1\",\"method\":\"GET\",\"host\":\"a\\\"b\",\"path\":\"/x\\n\\u0001\",\"request_id\":\"id\","
            "\"tls\":false,\"status\":200,\"duration_ms\":1.234,\"retries\":0}\n");
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

}  // namespace
}  // namespace doorman::dataplane
