// A worker: one thread running one io_context. Every connection lives entirely on the worker
// that accepted it (SO_REUSEPORT gives each worker its own listening socket), so sessions need
// no strands or locks; state shared across workers is read-only (RuntimeConfig) or atomic.
#pragma once

#include <atomic>
#include <memory>
#include <thread>

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

 private:
  Task<> SweepPool();
  Task<> SweepDeadlines();

  int index_;
  SharedState& shared_;
  WorkerMetrics metrics_;
  UpstreamPool pool_;
  DeadlineList deadlines_;  // before ioc_: sessions destroyed with the io_context unlink from it
  std::unique_ptr<net::io_context> ioc_;
  std::unique_ptr<net::executor_work_guard<Executor>> guard_;
  std::thread thread_;
};

}  // namespace doorman::dataplane
