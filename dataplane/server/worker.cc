#include "dataplane/server/worker.h"
#include "dataplane/server/essential.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <exception>

#include <prometheus/gauge.h>

#include "common/log.h"
#include "dataplane/l7/tls_context.h"

namespace doorman::dataplane {

namespace {
constexpr std::chrono::seconds kPoolSweepInterval{5};
}

Worker::Worker(int index, SharedState& shared)
    : index_(index),
      shared_(shared),
      connections_gauge_(&shared.metrics.WorkerConnections(index)),
      metrics_(shared.metrics),
      // One thread per io_context, and every socket's operations start on that thread (acceptors
      // are only registered from elsewhere): the reactor's per-descriptor locks can go, which
      // is measurable per request (PERFORMANCE-NOTES.md). Posting from other threads stays safe.
      ioc_(std::make_unique<net::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO)),
      guard_(std::make_unique<net::executor_work_guard<Executor>>(ioc_->get_executor())) {}

Worker::~Worker() {
  Stop();
  Join();
  pool_.Close();  // sockets must go before their io_context
  ioc_.reset();   // destroys suspended sessions (their sockets close here)
}

void Worker::Start() {
  net::co_spawn(executor(), SweepPool(), EssentialLoop("pool sweep"));
  net::co_spawn(executor(), SweepDeadlines(), EssentialLoop("deadline sweep"));
  thread_ = std::thread([this] {
    for (;;) {
      try {
        ioc_->run();
        return;
      } catch (const std::exception& e) {
        // A handler threw: log and keep the worker alive (one bad connection must not kill others).
        log::Error("worker", "unexpected exception in a handler", {{"worker", std::to_string(index_)}, {"error", e.what()}});
      }
    }
  });
}

void Worker::CloseIdleConnections() {
  net::post(*ioc_, [this] { deadlines_.FireIdle(); });
}

void Worker::Stop() {
  guard_.reset();
  ioc_->stop();
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

Task<> Worker::SweepPool() {
  Timer timer(executor());
  for (;;) {
    timer.expires_after(kPoolSweepInterval);
    boost::system::error_code ec;
    co_await timer.async_wait(Redirect(ec));
    if (ec) co_return;
    pool_.Sweep();
    ExpireTicketKeys();  // a retired session-ticket key goes even when no handshake comes
  }
}

Task<> Worker::SweepDeadlines() {
  Timer timer(executor());
  for (;;) {
    timer.expires_after(kDeadlineTick);
    boost::system::error_code ec;
    co_await timer.async_wait(Redirect(ec));
    if (ec) co_return;
    deadlines_.Sweep(CoarseClock::now());
    metrics_.Tick();  // between operations: no series pointer is in use here
    connections_gauge_->Set(static_cast<double>(connections_.load(std::memory_order_relaxed)));
  }
}

}  // namespace doorman::dataplane
