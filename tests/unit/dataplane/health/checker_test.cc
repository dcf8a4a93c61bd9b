// The health checker's "no verdict" rule, with real probes on loopback: a probe that cannot get a
// socket because this process is out of descriptors moves neither threshold (the endpoint is not
// marked down for the dataplane's own shortage), and the same check marks the endpoint down as
// soon as descriptors are back (so the probes did run and the test can fail).
#include "dataplane/health/checker.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "dataplane/config/runtime_config.h"
#include "dataplane/lb/scheduler.h"

namespace doorman::health {
namespace {

using std::chrono::milliseconds;

// A loopback port that refuses connections: bound, never listening (kept bound, so no other
// test takes it meanwhile).
struct RefusingPort {
  int fd = -1;
  uint16_t port = 0;
  RefusingPort() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
  }
  ~RefusingPort() {
    if (fd >= 0) ::close(fd);
  }
};

// Uses up this process's descriptors until destroyed: the soft limit is lowered to a few above
// what is open (never raised), and the rest is filled with /dev/null.
class DescriptorShortage {
 public:
  DescriptorShortage() {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    std::size_t open = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++open;
    rlimit low = saved_;
    low.rlim_cur = std::min<rlim_t>(saved_.rlim_cur, open + 32);
    ::setrlimit(RLIMIT_NOFILE, &low);
    for (;;) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        error_ = errno;
        break;
      }
      fds_.push_back(fd);
    }
  }
  ~DescriptorShortage() {
    for (const int fd : fds_) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  int error() const { return error_; }

 private:
  rlimit saved_{};
  std::vector<int> fds_;
  int error_ = 0;
};

// Probe outcomes and health transitions as the checker reports them.
struct Observed {
  std::atomic<int> passed{0}, failed{0}, skipped{0}, went_down{0};
  HealthChecker::OnChange OnChange() {
    return [this](const std::string&, bool healthy) {
      if (!healthy) ++went_down;
    };
  }
  HealthChecker::OnProbe OnProbe() {
    return [this](ProbeResult r) {
      (r == ProbeResult::kPassed ? passed : r == ProbeResult::kFailed ? failed : skipped)++;
    };
  }
};

std::shared_ptr<dataplane::RuntimeConfig> OneCheckedEndpoint(CheckProtocol protocol, uint16_t port) {
  auto config = std::make_shared<dataplane::RuntimeConfig>();
  auto set = std::make_unique<dataplane::BackendSet>();
  set->name = "checked";
  dataplane::Endpoint e;
  e.address = "127.0.0.1";
  e.port = port;
  e.ready = e.eligible = true;
  e.key = "127.0.0.1:" + std::to_string(port);
  e.state = std::make_shared<lb::EndpointState>();
  e.health = std::make_shared<lb::HealthSlot>();
  set->endpoints.push_back(std::move(e));
  set->health_check.protocol = protocol;
  set->health_check.path = "/healthz";
  set->health_check.interval = milliseconds(20);
  set->health_check.timeout = milliseconds(1000);
  set->health_check.unhealthy_threshold = 1;  // one counted failure is enough to mark it down
  config->backend_sets.push_back(std::move(set));
  return config;
}

// Polls `done` every 5 ms for up to 10 s.
bool WaitFor(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

class NoVerdictTest : public ::testing::TestWithParam<CheckProtocol> {};

TEST_P(NoVerdictTest, AProbeWithoutDescriptorsMovesNoThreshold) {
#if defined(__SANITIZE_ADDRESS__)
  // UBSan's vptr check reads memory through a pipe(2) (sanitizer_common IsAccessibleMemoryRange):
  // with no descriptor left it reports every virtual call as "invalid vptr". The plain build runs it.
  GTEST_SKIP() << "the sanitizer runtimes need descriptors of their own";
#endif
  RefusingPort refusing;
  ASSERT_NE(refusing.port, 0);
  Observed seen;
  HealthChecker checker(seen.OnChange(), seen.OnProbe());
  auto config = OneCheckedEndpoint(GetParam(), refusing.port);
  const auto& state = *config->backend_sets[0]->endpoints[0].health;
  {
    DescriptorShortage shortage;
    ASSERT_EQ(shortage.error(), EMFILE);
    checker.Update(config);
    ASSERT_TRUE(WaitFor([&] { return seen.skipped >= 5; })) << "no probe ran";
    EXPECT_EQ(seen.failed, 0);
    EXPECT_EQ(seen.went_down, 0);
    EXPECT_TRUE(state.healthy.load());
  }
  // Descriptors are back: the next probe reaches the refusing port and one failure marks it down.
  ASSERT_TRUE(WaitFor([&] { return seen.went_down > 0; })) << "skipped " << seen.skipped << ", failed " << seen.failed;
  EXPECT_GE(seen.failed, 1);
  EXPECT_FALSE(state.healthy.load());
  EXPECT_EQ(seen.passed, 0);
}

// Health is per (endpoint, check): a failing check marks its own slot down only; the endpoint's
// doorman_backend_up (the OnChange verdict) stays up while another set routes it unchecked, and
// goes down once only checked sets route it.
TEST(HealthCheckerTest, AFailingCheckDecidesForItsOwnSetsOnly) {
  RefusingPort refusing;
  ASSERT_NE(refusing.port, 0);
  std::mutex mu;
  std::vector<bool> reported;
  HealthChecker checker([&](const std::string&, bool up) {
    std::lock_guard lock(mu);
    reported.push_back(up);
  });
  auto config = OneCheckedEndpoint(CheckProtocol::kTcp, refusing.port);
  auto unchecked = std::make_unique<dataplane::BackendSet>();
  unchecked->name = "unchecked";
  unchecked->endpoints.push_back(config->backend_sets[0]->endpoints[0]);
  unchecked->endpoints[0].health = nullptr;  // this set declares no check
  config->backend_sets.push_back(std::move(unchecked));
  const auto& slot = *config->backend_sets[0]->endpoints[0].health;
  checker.Update(config);
  ASSERT_TRUE(WaitFor([&] { return !slot.healthy.load(); })) << "the TCP check never failed";
  {
    std::lock_guard lock(mu);
    for (const bool up : reported) EXPECT_TRUE(up) << "an unchecked set still routes it";
  }
  // Only the checked set left: the endpoint is down for doorman_backend_up too.
  auto only_checked = OneCheckedEndpoint(CheckProtocol::kTcp, refusing.port);
  only_checked->backend_sets[0]->endpoints[0].health = config->backend_sets[0]->endpoints[0].health;
  checker.Update(only_checked);
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard lock(mu);
    return !reported.empty() && !reported.back();
  }));
  checker.Update(nullptr);
}

INSTANTIATE_TEST_SUITE_P(Protocols, NoVerdictTest,
                         ::testing::Values(CheckProtocol::kTcp, CheckProtocol::kHttp, CheckProtocol::kGrpc),
                         [](const auto& param_info) { return std::string(CheckProtocolName(param_info.param)); });

}  // namespace
}  // namespace doorman::health
