// A worker: one thread running one io_context. Every connection lives entirely on the worker
// that accepted it (SO_REUSEPORT gives each worker its own listening socket), so sessions need
// no strands or locks; state shared across workers is read-only (RuntimeConfig) or atomic.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "common/log_throttle.h"
#include "dataplane/admin/metrics.h"
#include "dataplane/config/config_store.h"
#include "dataplane/l7/upstream_pool.h"
#include "dataplane/server/asio_types.h"
#include "dataplane/server/deadline.h"

#include <boost/asio/executor_work_guard.hpp>

namespace doorman::dataplane {

// Process-wide state the workers share.
struct SharedState {
  SharedState(ConfigStore& c, Metrics& m) : config(c), metrics(m) {}
  ConfigStore& config;
  Metrics& metrics;
  std::atomic<bool> draining{false};           // SIGTERM: finish in-flight work, keep no idle connection
  std::atomic<int64_t> l4_active{0};           // open L4 sessions
  std::atomic<int64_t> http_in_flight{0};      // HTTP requests being proxied or answered
  std::size_t udp_max_flows = kDefaultUdpMaxFlowsPerWorker;  // per worker and UDP listener (set before Start)
  // Every UDP flow holds a descriptor (its connected socket towards the backend): all of them
  // together stay within this many (0 = no bound; main sets half the open-file limit), so
  // clients cycling source ports cannot take the descriptors TCP and HTTP need.
  std::size_t udp_flow_descriptors = 0;
  std::atomic<std::size_t> udp_flows{0};
};

// One unit of an atomic count, held for as long as the slot lives: an open client connection on
// the worker that serves it (connection balancing, ListenerManager, reads the counts; the
// accepting worker takes the slot on the chosen worker before handing the socket over, so a
// burst of accepts sees the connections still in flight), or an L7 request in flight to an
// endpoint (EndpointState::active, read by least-connections and p2c).
class ConnectionSlot {
 public:
  ConnectionSlot() = default;
  explicit ConnectionSlot(std::atomic<int64_t>& count) : count_(&count) { count_->fetch_add(1, std::memory_order_relaxed); }
  ConnectionSlot(ConnectionSlot&& o) noexcept : count_(o.count_) { o.count_ = nullptr; }
  ConnectionSlot& operator=(ConnectionSlot&& o) noexcept {
    if (this != &o) {
      Release();
      count_ = o.count_;
      o.count_ = nullptr;
    }
    return *this;
  }
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;
  ~ConnectionSlot() { Release(); }
  const std::atomic<int64_t>* count() const { return count_; }

 private:
  void Release() {
    if (count_) count_->fetch_sub(1, std::memory_order_relaxed);
    count_ = nullptr;
  }
  std::atomic<int64_t>* count_ = nullptr;
};

class Worker {
 public:
  Worker(int index, SharedState& shared);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void Start();
  void Stop();  // stops the io_context; pending sessions are destroyed with it (in ~Worker)
  void Join();

  int index() const { return index_; }
  net::io_context& context() { return *ioc_; }
  Executor executor() { return ioc_->get_executor(); }
  SharedState& shared() { return shared_; }
  WorkerMetrics& metrics() { return metrics_; }
  UpstreamPool& pool() { return pool_; }
  DeadlineList& deadlines() { return deadlines_; }
  // Thread-safe: closes, on the worker's thread, the connections waiting for a next request.
  void CloseIdleConnections();
  // Per-connection failures a client can repeat at will (a dead backend) are logged through
  // this: the line keyed `key` at most once per 10 s per worker. Returns the count of repeats it
  // stands for (the value of a `repeated` field) when it is to be logged now, else nullopt; the
  // metrics count every one. Worker thread only (no lock).
  std::optional<std::string> LogRepeats(const std::string& key) {
    uint64_t repeated = 0;
    if (!log_throttle_.Allow(key, log::Throttle::Clock::now(), &repeated)) return std::nullopt;
    return std::to_string(repeated);
  }
  // Open client connections (L4 sessions and L7 client connections) this worker serves.
  std::atomic<int64_t>& connections() { return connections_; }

 private:
  Task<> SweepPool();
  Task<> SweepDeadlines();

  int index_;
  SharedState& shared_;
  std::atomic<int64_t> connections_{0};
  prometheus::Gauge* connections_gauge_;  // doorman_worker_connections{worker}, set every tick
  WorkerMetrics metrics_;
  UpstreamPool pool_;
  DeadlineList deadlines_;  // before ioc_: sessions destroyed with the io_context unlink from it
  log::Throttle log_throttle_{std::chrono::seconds(10), 4096};
  std::unique_ptr<net::io_context> ioc_;
  std::unique_ptr<net::executor_work_guard<Executor>> guard_;
  std::thread thread_;
};

}  // namespace doorman::dataplane
