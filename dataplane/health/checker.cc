#include "dataplane/health/checker.h"
// GCC 12 + -fsanitize: false -Wmismatched-new-delete on Asio's coroutine frame allocator
// (awaitable_frame_base's operator new/delete pair); the pairing is correct.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <utility>  // before Asio's coroutine headers (g++ 12 + Boost 1.74)

#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>
#include <vector>
#include <thread>

#include "common/log.h"
#include "dataplane/config/runtime_config.h"
#include "dataplane/health/grpc_probe.h"
#include "dataplane/health/health_state.h"
#include "dataplane/server/asio_types.h"
#include "dataplane/l7/tls_context.h"
#include "dataplane/server/connect.h"

namespace doorman::health {

using dataplane::Executor;
using dataplane::Redirect;
using dataplane::Task;
using dataplane::Timer;
namespace net = boost::asio;
using boost::system::error_code;

namespace {

// The proxy's limit on a response head (docs/l7.md), here for the interim heads and the final
// one together: an application's /healthz with large security headers must not fail its check.
constexpr std::size_t kMaxHttpHead = 64 * 1024;

struct Target {
  std::string key;  // endpoint key
  dataplane::Endpoint endpoint;  // copy: address, port, health (the slot this target decides)
  CheckSpec spec;
  std::shared_ptr<const dataplane::TlsClientContext> tls;  // HTTP over TLS (BackendSet::health_tls)
  HealthState state;
  bool stopped = false;
  std::unique_ptr<Timer> timer;
  Target(std::string k, dataplane::Endpoint e, CheckSpec s, std::shared_ptr<const dataplane::TlsClientContext> c,
         bool healthy)
      : key(std::move(k)), endpoint(std::move(e)), spec(std::move(s)), tls(std::move(c)), state(spec, healthy) {}
};

// Whether a target made for `a` probes as `b` would: same check, and over TLS with a context
// that verifies the same way (pool_id: none, or the CA bundle's SHA-256).
bool SameProbe(const Target& t, const CheckSpec& spec, const dataplane::TlsClientContext* tls) {
  if (!(t.spec == spec) || (t.tls == nullptr) != (tls == nullptr)) return false;
  return tls == nullptr || t.tls->pool_id() == tls->pool_id();
}

Millis SteadyNow() {
  return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now().time_since_epoch());
}

using ProbeStream = boost::beast::basic_stream<dataplane::tcp, Executor>;

// GET the check's path on `stream` (plain or TLS) and judge the status line.
template <class Stream>
Task<ProbeResult> AskStatus(Stream& stream, const Target& t) {
  error_code ec;
  // Over TLS with a server name, the name is the Host too (the virtual host the SNI selects).
  // (An IPv6 literal in brackets, as a Host header wants it.)
  const std::string& name = t.spec.tls_server_name;
  const std::string host = name.empty() ? t.endpoint.key : name.find(':') != std::string::npos ? "[" + name + "]" : name;
  const std::string req = "GET " + t.spec.path + " HTTP/1.1\r\nHost: " + host +
                          "\r\nUser-Agent: doorman-health-check\r\nConnection: close\r\n\r\n";
  co_await net::async_write(stream, net::buffer(req), Redirect(ec));
  if (ec) co_return ProbeResult::kFailed;
  // The whole head within the timeout, not just its status line: a backend that stalls after
  // "HTTP/1.1 200 OK" is not answering (helper-102).
  // Interim (1xx) heads are skipped; the final one is judged (helper-119).
  std::string head;
  char buf[4096];
  for (;;) {
    const std::size_t n = co_await stream.async_read_some(net::buffer(buf), Redirect(ec));
    head.append(buf, n);
    const ReplyStatus status = FinalReplyStatus(head);
    if (status.state == ReplyStatus::kFinal) {
      co_return t.spec.StatusOk(status.code) ? ProbeResult::kPassed : ProbeResult::kFailed;
    }
    if (status.state == ReplyStatus::kInvalid || ec || head.size() > kMaxHttpHead) co_return ProbeResult::kFailed;
  }
}

// One TCP or HTTP(S) probe; kSkipped when it could not be run here (this process is out of
// descriptors, buffers or memory: not the endpoint's fault, so no verdict at all).
Task<ProbeResult> Probe(Executor ex, const Target& t) {
  error_code ec;
  auto sock = co_await dataplane::ConnectTo(ex, t.endpoint, t.spec.timeout, ec);
  if (ec && dataplane::IsLocalResourceError(ec)) co_return ProbeResult::kSkipped;
  if (ec) co_return ProbeResult::kFailed;
  if (t.spec.protocol == CheckProtocol::kTcp) {
    sock.close(ec);
    co_return ProbeResult::kPassed;
  }
  if (t.tls == nullptr) {
    ProbeStream stream(std::move(sock));
    stream.expires_after(t.spec.timeout);  // one deadline for the whole exchange
    co_return co_await AskStatus(stream, t);
  }
  // As the route's requests reach these backends (TlsClientContext: TLS >= 1.2, ALPN http/1.1,
  // the CA and the name checked when verifying). A failed handshake is a failed probe.
  net::ssl::stream<ProbeStream> stream(ProbeStream(std::move(sock)), t.tls->context());
  stream.next_layer().expires_after(t.spec.timeout);
  std::string error;
  if (!t.tls->SetUpConnection(stream.native_handle(), t.spec.tls_server_name, &error)) co_return ProbeResult::kFailed;
  co_await stream.async_handshake(net::ssl::stream_base::client, Redirect(ec));
  if (ec) co_return ProbeResult::kFailed;
  co_return co_await AskStatus(stream, t);
}

// One gRPC probe: the Check call runs on gRPC's threads; its verdict comes back through
// GrpcProbes' post (the checker's thread), where the coroutine resumes.
Task<ProbeResult> GrpcProbe(GrpcProbes& probes, const Target& t) {
  return net::async_initiate<decltype(dataplane::kUseTask), void(ProbeResult)>(
      [&probes, &t](auto handler) {
        // std::function needs a copyable callable; the handler itself runs once.
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        probes.Start(t.endpoint.address, t.endpoint.port, t.spec.grpc_service, t.spec.timeout, [h](ProbeResult result) {
          auto run = std::move(*h);
          run(result);
        });
      },
      dataplane::kUseTask);
}

}  // namespace

struct HealthChecker::Impl {
  Impl(OnChange cb, OnProbe probed)
      : on_change(std::move(cb)),
        on_probe(std::move(probed)),
        grpc([this](std::function<void()>&& fn) { net::post(ioc.get_executor(), std::move(fn)); }),
        guard(ioc.get_executor()),
        rng(std::random_device{}()) {
    // Asio creates the io_context's reactor (an epoll and an eventfd descriptor) with its first
    // timer or socket. Done here, at start-up: created by the first snapshot's Apply, it threw
    // when the process was out of descriptors then, and that snapshot's checks never started.
    Timer reactor_now(ioc);
  }

  Task<> Run(std::shared_ptr<Target> t) {
    // First probe soon, spread over the first interval's jitter window.
    Millis due = SteadyNow() + Millis(static_cast<int64_t>(rng() % 100));
    while (!t->stopped) {
      t->timer->expires_at(std::chrono::steady_clock::time_point(due));
      error_code ec;
      co_await t->timer->async_wait(Redirect(ec));
      if (t->stopped) break;
      const Millis started = SteadyNow();
      const ProbeResult result = t->spec.protocol == CheckProtocol::kGrpc ? co_await GrpcProbe(grpc, *t)
                                                                          : co_await Probe(ioc.get_executor(), *t);
      if (t->stopped) break;
      if (on_probe) on_probe(result);
      // A skipped probe (it could not run: local resources) is no verdict either way.
      if (auto flip = result == ProbeResult::kSkipped ? std::nullopt : t->state.OnResult(result == ProbeResult::kPassed)) {
        t->endpoint.health->healthy.store(*flip, std::memory_order_relaxed);
        log::Info("health", *flip ? "endpoint healthy" : "endpoint unhealthy",
                  {{"backend", t->key}, {"check", t->tls ? "https" : std::string(CheckProtocolName(t->spec.protocol))}});
        if (on_change) on_change(t->key, Up(t->key));
      }
      due = t->state.NextProbeAt(started, rng());
    }
  }

  // doorman_backend_up of an endpoint: some set routes it unchecked, or one of its checks
  // passes (each set is balanced by its own check's verdict: HealthSlot).
  bool Up(const std::string& key) const {
    if (unchecked.count(key)) return true;
    const auto it = slots_of.find(key);
    if (it == slots_of.end()) return false;
    for (const lb::HealthSlot* slot : it->second) {
      if (slot->healthy.load(std::memory_order_relaxed)) return true;
    }
    return false;
  }

  void Apply(const dataplane::RuntimeConfig& config) {
    std::map<const lb::HealthSlot*, std::shared_ptr<Target>> next;
    std::set<std::string> next_unchecked;
    std::set<std::string> touched;  // endpoints whose doorman_backend_up may have changed
    for (const auto& set : config.backend_sets) {
      for (const auto& e : set->endpoints) {
        if (!e.health) {  // this set does not check it
          next_unchecked.insert(e.key);
          continue;
        }
        // One probe per (endpoint, check): the sets that declare the same check share the slot.
        if (next.count(e.health.get())) continue;
        auto it = targets.find(e.health.get());
        if (it != targets.end() && SameProbe(*it->second, set->health_check, set->health_tls.get())) {
          next[e.health.get()] = it->second;
          continue;
        }
        // A new slot starts with the verdict Compile gave it: healthy, or the verdict of the same
        // set's previous check of the endpoint (an edited check keeps it until its own
        // thresholds flip it; streaks start over).
        auto t = std::make_shared<Target>(e.key, e, set->health_check, set->health_tls,
                                          e.health->healthy.load(std::memory_order_relaxed));
        t->timer = std::make_unique<Timer>(ioc.get_executor());
        touched.insert(e.key);
        next[e.health.get()] = t;
        net::co_spawn(ioc.get_executor(), Run(t), net::detached);
      }
    }
    for (auto& [slot, t] : targets) {
      auto it = next.find(slot);
      if (it != next.end() && it->second == t) continue;
      t->stopped = true;
      t->timer->cancel();
      touched.insert(t->key);
    }
    for (const auto& key : next_unchecked) {
      if (!unchecked.count(key)) touched.insert(key);
    }
    for (const auto& key : unchecked) {
      if (!next_unchecked.count(key)) touched.insert(key);
    }
    targets = std::move(next);
    unchecked = std::move(next_unchecked);
    slots_of.clear();
    for (const auto& [slot, t] : targets) slots_of[t->key].push_back(slot);
    // doorman_backend_up follows (the metric was computed when the snapshot was applied).
    if (on_change) {
      for (const auto& key : touched) on_change(key, Up(key));
    }
  }

  OnChange on_change;
  OnProbe on_probe;
  // Declared before ioc, so destroyed after it: verdicts posted but never run release their calls
  // (and channels) while gRPC is still initialised. Shutdown() runs first (~HealthChecker).
  GrpcProbes grpc;
  net::io_context ioc{1};
  net::executor_work_guard<Executor> guard;
  std::mt19937_64 rng;
  // Keyed by the slot a target decides; each Target holds a shared_ptr to its slot (in its
  // Endpoint copy), so a key's memory cannot be freed and reused while it is in the map.
  std::map<const lb::HealthSlot*, std::shared_ptr<Target>> targets;  // checker thread only
  std::unordered_map<std::string, std::vector<const lb::HealthSlot*>> slots_of;  // endpoint key → its checks
  std::set<std::string> unchecked;  // endpoints some set routes without a check (checker thread)
  std::thread thread;
};

HealthChecker::HealthChecker(OnChange on_change, OnProbe on_probe)
    : impl_(std::make_unique<Impl>(std::move(on_change), std::move(on_probe))) {
  impl_->thread = std::thread([this] {
    for (;;) {
      try {
        impl_->ioc.run();
        return;
      } catch (const std::exception& e) {
        log::Error("health", "unexpected exception in a probe", {{"error", e.what()}});
      }
    }
  });
}

HealthChecker::~HealthChecker() {
  // gRPC calls in flight post their verdicts to ioc: let them land while it still exists.
  impl_->grpc.Shutdown();
  impl_->guard.reset();
  impl_->ioc.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void HealthChecker::Update(std::shared_ptr<const dataplane::RuntimeConfig> config) {
  net::post(impl_->ioc.get_executor(), [this, config = std::move(config)] {
    if (config) impl_->Apply(*config);
  });
}

}  // namespace doorman::health
