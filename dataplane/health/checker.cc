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
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "common/log.h"
#include "dataplane/config/runtime_config.h"
#include "dataplane/health/grpc_probe.h"
#include "dataplane/health/health_state.h"
#include "dataplane/server/asio_types.h"
#include "dataplane/server/connect.h"

namespace doorman::health {

using dataplane::Executor;
using dataplane::Redirect;
using dataplane::Task;
using dataplane::Timer;
namespace net = boost::asio;
using boost::system::error_code;

namespace {

constexpr std::size_t kMaxHttpHead = 4096;

struct Target {
  std::string key;  // endpoint key
  dataplane::Endpoint endpoint;  // copy: address, port, state
  CheckSpec spec;
  HealthState state;
  bool stopped = false;
  std::unique_ptr<Timer> timer;
  Target(std::string k, dataplane::Endpoint e, CheckSpec s, bool healthy)
      : key(std::move(k)), endpoint(std::move(e)), spec(std::move(s)), state(spec, healthy) {}
};

Millis SteadyNow() {
  return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now().time_since_epoch());
}

// One TCP or HTTP probe; kSkipped when it could not be run here (this process is out of
// descriptors, buffers or memory: not the endpoint's fault, so no verdict at all).
Task<ProbeResult> Probe(Executor ex, const Target& t) {
  constexpr auto Verdict = [](bool ok) { return ok ? ProbeResult::kPassed : ProbeResult::kFailed; };
  error_code ec;
  auto sock = co_await dataplane::ConnectTo(ex, t.endpoint, t.spec.timeout, ec);
  if (ec && dataplane::IsLocalResourceError(ec)) co_return ProbeResult::kSkipped;
  if (ec) co_return ProbeResult::kFailed;
  if (t.spec.protocol == CheckProtocol::kTcp) {
    sock.close(ec);
    co_return ProbeResult::kPassed;
  }
  boost::beast::basic_stream<dataplane::tcp, Executor> stream(std::move(sock));
  stream.expires_after(t.spec.timeout);
  const std::string host = t.endpoint.key;
  const std::string req = "GET " + t.spec.path + " HTTP/1.1\r\nHost: " + host +
                          "\r\nUser-Agent: doorman-health-check\r\nConnection: close\r\n\r\n";
  co_await net::async_write(stream, net::buffer(req), Redirect(ec));
  if (ec) co_return ProbeResult::kFailed;
  std::string head;
  char buf[1024];
  for (;;) {
    const std::size_t n = co_await stream.async_read_some(net::buffer(buf), Redirect(ec));
    head.append(buf, n);
    if (auto status = ParseHttpStatus(head)) co_return Verdict(t.spec.StatusOk(*status));
    if (ec || head.size() > kMaxHttpHead || head.find("\r\n") != std::string::npos) co_return ProbeResult::kFailed;
  }
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
        t->endpoint.state->healthy.store(*flip, std::memory_order_relaxed);
        log::Info("health", *flip ? "endpoint healthy" : "endpoint unhealthy",
                  {{"backend", t->key}, {"check", std::string(CheckProtocolName(t->spec.protocol))}});
        if (on_change) on_change(t->key, *flip);
      }
      due = t->state.NextProbeAt(started, rng());
    }
  }

  void Apply(const dataplane::RuntimeConfig& config) {
    std::map<std::string, std::shared_ptr<Target>> next;
    for (const auto& set : config.backend_sets) {
      if (set->health_check.protocol == CheckProtocol::kNone) continue;
      for (const auto& e : set->endpoints) {
        // One check per endpoint: the first backend set (by name) that checks it wins.
        if (next.count(e.key)) continue;
        auto it = targets.find(e.key);
        const bool same_endpoint = it != targets.end() && it->second->endpoint.state == e.state;
        if (same_endpoint && it->second->spec == set->health_check) {
          next[e.key] = it->second;
          continue;
        }
        // A new check of an endpoint already checked (its check was edited or replaced) keeps the
        // endpoint's verdict until the new check's thresholds flip it: a failing endpoint is not
        // handed traffic again because its check changed. A newly checked endpoint starts healthy.
        const bool healthy = same_endpoint ? it->second->state.healthy() : true;
        auto t = std::make_shared<Target>(e.key, e, set->health_check, healthy);
        t->timer = std::make_unique<Timer>(ioc.get_executor());
        t->endpoint.state->healthy.store(healthy, std::memory_order_relaxed);
        // doorman_backend_up follows (the metric was computed from the state when the snapshot
        // was applied, which may predate this store).
        if (on_change) on_change(e.key, healthy);
        next[e.key] = t;
        net::co_spawn(ioc.get_executor(), Run(t), net::detached);
      }
    }
    for (auto& [key, t] : targets) {
      auto it = next.find(key);
      if (it != next.end() && it->second == t) continue;
      t->stopped = true;
      t->timer->cancel();
      if (it == next.end()) {
        t->endpoint.state->healthy.store(true, std::memory_order_relaxed);  // no longer checked
        if (on_change) on_change(key, true);
      }
    }
    targets = std::move(next);
  }

  OnChange on_change;
  OnProbe on_probe;
  // Declared before ioc, so destroyed after it: verdicts posted but never run release their calls
  // (and channels) while gRPC is still initialised. Shutdown() runs first (~HealthChecker).
  GrpcProbes grpc;
  net::io_context ioc{1};
  net::executor_work_guard<Executor> guard;
  std::mt19937_64 rng;
  std::map<std::string, std::shared_ptr<Target>> targets;  // checker thread only
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
