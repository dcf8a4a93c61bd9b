#include "dataplane/l7/access_log.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <future>
#include <string>
#include <thread>

namespace doorman::dataplane {
namespace {

TEST(AccessLogTest, OneEscapedJsonLine) {
  AccessLogEntry e;
  e.listener = "http-80";
  e.route = "ns/lb/r";
  e.backend = "10.0.0.1:80";
  e.client_ip = "192.0.2.1";
  e.peer_ip = "10.1.1.1";
  e.method = "GET";
  e.host = "a\"b";
  e.path = "/x\n\x01";
  e.request_id = "id";
  e.status = 200;
  e.duration_s = 0.0012345;
  const auto line = FormatAccessLog(e, std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'123)));
  EXPECT_EQ(line,
            "{\"ts\":\"2023-11-14T22:13:20.123Z\",\"listener\":\"http-80\",\"route\":\"ns/lb/r\",\"backend\":\"10.0.0.1:80\","
            "\"client\":\"192.0.2.1\",\"peer\":\"10.1.1.1\",\"method\":\"GET\",\"host\":\"a\\\"b\",\"path\":\"/x\\n\\u0001\",\"request_id\":\"id\","
            "\"tls\":false,\"status\":200,\"duration_ms\":1.234,\"retries\":0}\n");
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

// A log reader that stalls (the pipe to a container runtime's shim) must not stop traffic: with
// nobody reading, 12 MB of lines are accepted at once (the writer thread holds up to 8 MiB and
// the pipe 64 KiB, the rest is dropped and counted); once the reader reads, every line that was
// kept arrives whole.
TEST(AccessLogTest, AStalledOutputNeverBlocksTheCallerAndLinesStayWhole) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::string error;
  ASSERT_TRUE(OpenAccessLog("/proc/self/fd/" + std::to_string(fds[1]), &error)) << error;
  ASSERT_TRUE(AccessLogEnabled());
  constexpr int kLines = 12000;
  const std::string body(990, 'x');
  auto writes = std::async(std::launch::async, [&] {
    for (int i = 0; i < kLines; ++i) WriteAccessLog("{\"n\":" + std::to_string(100000 + i) + ",\"b\":\"" + body + "\"}\n");
  });
  ASSERT_EQ(writes.wait_for(std::chrono::seconds(20)), std::future_status::ready) << "a caller blocked on the output";
  const uint64_t dropped = AccessLogDropped();
  EXPECT_GT(dropped, 0u);
  const std::size_t line_size = std::string("{\"n\":100000,\"b\":\"\"}\n").size() + body.size();
  const std::size_t want = (kLines - dropped) * line_size;
  // The log's own descriptor to the pipe (opened through /proc) stays open until exit, so there
  // is no EOF: read until what was kept has arrived, for at most 20 s.
  std::string got;
  std::thread reader([&] {
    char buf[65536];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fds[0], POLLIN, 0};
      if (::poll(&p, 1, 100) != 1) continue;
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) return;
      got.append(buf, static_cast<std::size_t>(n));
    }
  });
  CloseAccessLog(std::chrono::seconds(20));
  reader.join();
  ::close(fds[0]);
  ::close(fds[1]);
  ASSERT_EQ(got.size(), want);
  std::size_t lines = 0;
  for (std::size_t at = 0; at < got.size(); at += line_size, ++lines) {
    ASSERT_EQ(got.compare(at, 5, "{\"n\":"), 0) << "line " << lines;
    ASSERT_EQ(got[at + line_size - 1], '\n') << "line " << lines;
  }
  EXPECT_EQ(lines + dropped, static_cast<uint64_t>(kLines));
}

}  // namespace
}  // namespace doorman::dataplane
