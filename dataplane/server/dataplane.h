// The dataplane process minus flag parsing: workers, listeners, the current config, metrics.
// Apply() is the subscriber's callback (and the --state-dir loader's): compile, bind new
// listeners, swap the config atomically, start accepting, record metrics and the state file.
// No Asio in this header: main.cc includes it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/config/apply_result.h"

namespace doorman::v1 {
class StateUpdate;
}
namespace prometheus {
class Registry;
}

namespace doorman::dataplane {

struct DataplaneOptions {
  std::string bind_address = "0.0.0.0";
  int workers = 1;
  std::string node_name;
  std::string state_dir;  // "" = do not persist
  // UDP flow-table bound per worker and UDP listener (--udp-max-flows); datagrams that would
  // open a flow beyond it are dropped and counted (drops{reason="udp_table_full"}).
  std::size_t udp_max_flows = 16384;  // = kDefaultUdpMaxFlowsPerWorker (runtime_config.h)
  // UDP flows of all workers and listeners together (each holds a descriptor); 0 = no bound.
  std::size_t udp_flow_descriptors = 0;
  // --connection-balance exact: an accepted TCP connection goes to the worker serving the fewest
  // connections (false = wherever SO_REUSEPORT's hash put it).
  bool connection_balance = false;
};

class Dataplane {
 public:
  // Throws std::invalid_argument for a bad bind address.
  Dataplane(DataplaneOptions options, std::shared_ptr<prometheus::Registry> registry);
  ~Dataplane();
  Dataplane(const Dataplane&) = delete;
  Dataplane& operator=(const Dataplane&) = delete;

  static bool ValidBindAddress(const std::string& address);

  void Start();
  // Thread-safe. `persist` = write the state file after success (not when loading it).
  ApplyResult Apply(const doorman::v1::StateUpdate& update, bool persist = true);
  uint64_t applied_version() const { return applied_version_.load(); }
  // Ready once a routing state is applied, and no longer once SIGTERM started the drain (the
  // listeners refuse new connections then: a Service or balancer in front should stop sending).
  bool ready() const { return applied_version_.load() != 0 && !draining() && !not_ready_.load(); }
  bool draining() const;
  // --shutdown-delay: /readyz answers 503 from now on while everything else keeps serving.
  void MarkNotReady() { not_ready_.store(true); }
  std::string DebugConfigJson() const;
  // Binds the listeners of the current state whose port could not be bound (another process held
  // it), without waiting for the next update; main calls it every 2 s. Thread-safe. True when
  // one opened (the controller is told: Subscriber::ReportListeners).
  bool RetryUnboundListeners();
  // The applied version and its listeners that are not open now, read under one lock.
  std::pair<uint64_t, std::vector<std::string>> UnservedListeners() const;

  // Stops accepting, waits up to `grace` for in-flight HTTP requests and open TCP connections,
  // then stops the workers. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<uint64_t> applied_version_{0};
  std::atomic<bool> not_ready_{false};
};

}  // namespace doorman::dataplane
