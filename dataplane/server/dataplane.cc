#include "dataplane/server/dataplane.h"

#include "dataplane/l7/tls_context.h"

#include <prometheus/registry.h>

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "common/log.h"
#include "dataplane/admin/config_dump.h"
#include "dataplane/admin/metrics.h"
#include "dataplane/config/compile.h"
#include "dataplane/config/config_store.h"
#include "dataplane/config/state_file.h"
#include "dataplane/health/checker.h"
#include "dataplane/server/listener_manager.h"
#include "dataplane/server/worker.h"
#include "doorman/v1/routing.pb.h"

namespace doorman::dataplane {

namespace {
// How long idle keep-alive client connections are kept after SIGTERM (within the grace period).
constexpr std::chrono::milliseconds kIdleConnectionDrain{1000};
}  // namespace

struct Dataplane::Impl {
  Impl(DataplaneOptions o, std::shared_ptr<prometheus::Registry> registry, net::ip::address bind)
      : opts(std::move(o)), metrics(std::move(registry)), shared(store, metrics) {
    shared.udp_max_flows = std::max<std::size_t>(1, opts.udp_max_flows);
    shared.udp_flow_descriptors = opts.udp_flow_descriptors;
    for (int i = 0; i < opts.workers; ++i) workers.push_back(std::make_unique<Worker>(i, shared));
    listeners = std::make_unique<ListenerManager>(workers, bind, opts.connection_balance);
    health = std::make_unique<health::HealthChecker>(
        [this](const std::string& key, bool healthy) { metrics.SetBackendHealth(key, healthy); },
        [this](health::ProbeResult result) { metrics.HealthProbed(result); });
  }

  // Declaration order is destruction order in reverse: listeners (acceptors) go before the
  // workers (their io_contexts), which go before the shared state and metrics they reference.
  DataplaneOptions opts;
  ConfigStore store;
  Metrics metrics;
  SharedState shared;
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<ListenerManager> listeners;
  std::unique_ptr<health::HealthChecker> health;  // destroyed first: its callback uses metrics

  mutable std::mutex mu;  // serialises Apply/Shutdown; guards the fields below
  std::vector<std::string> warnings;
  bool shut_down = false;
};

static_assert(DataplaneOptions{}.udp_max_flows == kDefaultUdpMaxFlowsPerWorker);

bool Dataplane::ValidBindAddress(const std::string& address) {
  boost::system::error_code ec;
  net::ip::make_address(address, ec);
  return !ec;
}

Dataplane::Dataplane(DataplaneOptions options, std::shared_ptr<prometheus::Registry> registry) {
  boost::system::error_code ec;
  const auto bind = net::ip::make_address(options.bind_address, ec);
  if (ec) throw std::invalid_argument("invalid bind address \"" + options.bind_address + "\"");
  if (options.workers < 1) options.workers = 1;
  impl_ = std::make_unique<Impl>(std::move(options), std::move(registry), bind);
}

Dataplane::~Dataplane() { Shutdown(std::chrono::milliseconds(0)); }

void Dataplane::Start() {
  for (auto& w : impl_->workers) w->Start();
}

ApplyResult Dataplane::Apply(const doorman::v1::StateUpdate& update, bool persist) {
  std::lock_guard lock(impl_->mu);
  ApplyResult r;
  r.serving_version = applied_version_.load();
  if (impl_->shut_down) {
    r.error = "dataplane is shutting down";
    return r;
  }
  if (update.version() != 0 && update.version() == r.serving_version) {
    // Identical state (e.g. restored from --state-dir, or sent again after a reconnect): nothing
    // to rebuild, ACK the new nonce. Listeners that could not be bound are tried again, and the
    // ACK says which still are not open.
    r.ok = true;
    r.warnings = impl_->warnings;
    if (const auto config = impl_->store.Load()) {
      if (!impl_->listeners->Unbound(*config).empty()) {
        for (auto& w : impl_->listeners->Prepare(*config)) log::Warn("dataplane", "not programmed", {{"detail", w}});
        impl_->listeners->Commit();
      }
      r.unserved_listeners = impl_->listeners->Unbound(*config);
    }
    return r;
  }
  const auto previous = impl_->store.Load();  // endpoints keep their health/load state
  CompileOptions copts;
  copts.node_name = impl_->opts.node_name;
  copts.tls_builder = &TlsServerContext::Build;
  copts.backend_tls_builder = &TlsClientContext::Build;
  copts.previous = previous.get();
  CompileResult c = Compile(update.snapshot(), update.version(), copts);
  if (!c.ok()) {
    impl_->metrics.ConfigRejected();
    log::Error("dataplane", "routing state rejected; keeping the previous one",
               {{"version", std::to_string(update.version())}, {"serving", std::to_string(r.serving_version)}, {"error", c.error}});
    r.error = c.error;
    return r;
  }
  // Make-before-break: new sockets are bound before the swap and accept only after it.
  std::vector<std::string> warnings = std::move(c.warnings);
  for (auto& w : impl_->listeners->Prepare(*c.config)) warnings.push_back(std::move(w));
  impl_->store.Store(c.config);
  MarkRemovedEndpoints(previous.get(), *c.config,
                       std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now().time_since_epoch()).count());
  impl_->listeners->Commit();
  impl_->health->Update(c.config);
  applied_version_.store(update.version());
  impl_->metrics.ConfigApplied(*c.config);
  impl_->warnings = warnings;
  for (const auto& w : warnings) log::Warn("dataplane", "not programmed", {{"detail", w}});
  log::Info("dataplane", "routing state applied",
            {{"version", std::to_string(update.version())},
             {"listeners", std::to_string(c.config->listeners.size())},
             {"routes", std::to_string(c.config->routes.size())},
             {"warnings", std::to_string(warnings.size())}});
  if (persist && !impl_->opts.state_dir.empty()) {
    std::string error;
    if (!SaveState(impl_->opts.state_dir, update, &error)) {
      log::Error("dataplane", "cannot save the routing state", {{"error", error}});
    }
  }
  r.ok = true;
  r.serving_version = update.version();
  r.warnings = std::move(warnings);
  r.unserved_listeners = impl_->listeners->Unbound(*c.config);
  return r;
}

std::pair<uint64_t, std::vector<std::string>> Dataplane::UnservedListeners() const {
  std::lock_guard lock(impl_->mu);
  const auto config = impl_->store.Load();
  return {applied_version_.load(), config ? impl_->listeners->Unbound(*config) : std::vector<std::string>{}};
}

bool Dataplane::RetryUnboundListeners() {
  std::lock_guard lock(impl_->mu);
  if (impl_->shut_down) return false;
  const auto config = impl_->store.Load();
  if (!config) return false;
  const auto before = impl_->listeners->Unbound(*config);
  if (before.empty()) return false;
  impl_->listeners->Prepare(*config, /*quiet=*/true);
  impl_->listeners->Commit();
  const auto after = impl_->listeners->Unbound(*config);
  bool opened = false;
  for (const auto& name : before) {
    if (std::find(after.begin(), after.end(), name) != after.end()) continue;
    opened = true;
    log::Info("listener", "listener opened on retry", {{"listener", name}});
    // Its "not served" warning goes, and only that one.
    const std::string prefix = "listener \"" + name + "\": ";
    std::erase_if(impl_->warnings, [&](const std::string& w) {
      return w.rfind(prefix, 0) == 0 && w.find(ListenerManager::kNotServedRetried) != std::string::npos;
    });
  }
  return opened;
}

std::string Dataplane::DebugConfigJson() const {
  const auto config = impl_->store.Load();
  std::vector<std::string> warnings;
  {
    std::lock_guard lock(impl_->mu);
    warnings = impl_->warnings;
  }
  return ConfigToJson(config.get(), impl_->listeners->Status(), warnings);
}

bool Dataplane::draining() const { return impl_->shared.draining.load(std::memory_order_relaxed); }

void Dataplane::Shutdown(std::chrono::milliseconds grace) {
  std::lock_guard lock(impl_->mu);
  if (impl_->shut_down) return;
  impl_->shut_down = true;
  impl_->shared.draining.store(true);
  impl_->listeners->CloseAll();
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + grace;
  // Idle keep-alive connections stay open for a short while too: a request their client sent as
  // the signal arrived (or sends now) is answered, with Connection: close, instead of meeting a
  // closed socket (clients that see the close retry elsewhere; closing them at once reset up to
  // 40 % of busy keep-alive clients on every rollout).
  const auto idle_until = start + std::min<std::chrono::milliseconds>(grace, kIdleConnectionDrain);
  auto open_connections = [this] {
    int64_t n = 0;
    for (auto& w : impl_->workers) n += w->connections().load(std::memory_order_relaxed);
    return n;
  };
  bool idle_closed = false;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    const bool busy = impl_->shared.http_in_flight.load() > 0 || impl_->shared.l4_active.load() > 0;
    if (!busy && (now >= idle_until || open_connections() == 0)) break;
    if (now >= idle_until && !idle_closed) {
      // Others are still busy (a WebSocket, a long download): the idle keep-alive connections
      // go now all the same, not at the end of the grace period.
      for (auto& w : impl_->workers) w->CloseIdleConnections();
      idle_closed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto left_http = impl_->shared.http_in_flight.load();
  const auto left_l4 = impl_->shared.l4_active.load();
  if (left_http > 0 || left_l4 > 0) {
    log::Info("dataplane", "grace period over; closing remaining connections",
              {{"http_in_flight", std::to_string(left_http)}, {"l4_connections", std::to_string(left_l4)}});
  }
  for (auto& w : impl_->workers) w->Stop();
  for (auto& w : impl_->workers) w->Join();
}

}  // namespace doorman::dataplane
