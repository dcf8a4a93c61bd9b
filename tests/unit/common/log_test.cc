#include "common/log.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>

namespace doorman::log {
namespace {

// A text value with a control character is quoted and escaped: a peer's string (a dataplane's
// node name or build) cannot put a raw ESC (a terminal escape) or CR into the log (helper-101).
TEST(LogTest, TextValuesWithControlCharactersAreEscaped) {
  SetFormat(Format::kText);
  SetLevel(Level::kInfo);
  testing::internal::CaptureStderr();
  Info("test", "peer", {{"build", "x\x1b[31mred"}, {"node", "a\rb"}, {"plain", "v1.2"}});
  const std::string line = testing::internal::GetCapturedStderr();
  EXPECT_EQ(line.find('\x1b'), std::string::npos) << line;
  EXPECT_EQ(line.find('\r'), std::string::npos) << line;
  EXPECT_NE(line.find("build=\"x\\u001b[31mred\""), std::string::npos) << line;
  EXPECT_NE(line.find("node=\"a\\rb\""), std::string::npos) << line;
  EXPECT_NE(line.find("plain=v1.2"), std::string::npos) << line;
}

// A stderr reader that stalls (a container runtime's log pipe) must not stop the threads that
// log: with nobody reading, 6 MB of lines are taken at once (1 MiB queued, the pipe's 64 KiB
// written, the rest dropped and counted); once the reader reads, every kept line arrives whole,
// and WARN lines report exactly the dropped count.
TEST(LogTest, AsyncModeNeverBlocksOnAStalledOutputAndReportsWhatItDropped) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  SetFormat(Format::kText);
  SetLevel(Level::kInfo);
  StartAsync(std::size_t{1} << 20, fds[1]);
  constexpr int kLines = 6000;
  const std::string body(1000, 'x');
  auto writes = std::async(std::launch::async, [&] {
    for (int i = 0; i < kLines; ++i) Info("test", "line", {{"n", std::to_string(100000 + i)}, {"b", body}});
  });
  ASSERT_EQ(writes.wait_for(std::chrono::seconds(20)), std::future_status::ready) << "a thread that logs blocked";
  const uint64_t dropped = Dropped();
  EXPECT_GT(dropped, 0u);
  std::string got;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    char buf[65536];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      pollfd p{fds[0], POLLIN, 0};
      const int ready = ::poll(&p, 1, 100);
      if (ready != 1) {
        if (done || std::chrono::steady_clock::now() > deadline) return;  // written, and nothing left
        continue;
      }
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) return;
      got.append(buf, static_cast<std::size_t>(n));
    }
  });
  StopAsync(std::chrono::seconds(20));
  done = true;
  reader.join();
  ::close(fds[0]);
  ::close(fds[1]);

  uint64_t kept = 0, reported = 0;
  std::size_t at = 0;
  while (at < got.size()) {
    const std::size_t nl = got.find('\n', at);
    ASSERT_NE(nl, std::string::npos) << "a partial last line";
    const std::string line = got.substr(at, nl - at);
    at = nl + 1;
    if (line.find(" INFO test: line n=") != std::string::npos) {
      ASSERT_NE(line.find(" b=" + body), std::string::npos) << line.substr(0, 80);
      ++kept;
    } else {
      const auto d = line.find(" WARN log: the log output did not keep up; lines dropped dropped=");
      ASSERT_NE(d, std::string::npos) << line.substr(0, 200);
      reported += std::stoull(line.substr(line.rfind('=') + 1));
    }
  }
  EXPECT_EQ(kept + dropped, static_cast<uint64_t>(kLines));
  EXPECT_EQ(reported, dropped);
}

}  // namespace
}  // namespace doorman::log
