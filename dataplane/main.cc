// doorman-dataplane: wiring only (flags → Dataplane + Subscriber + AdminServer; signals).
#include <prometheus/registry.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "common/address.h"
#include "common/admin_server.h"
#include "common/flags.h"
#include "common/fd_limit.h"
#include "common/grpc_log.h"
#include "common/grpc_tls.h"
#include "common/log.h"
#include "dataplane/config/state_file.h"
#include "dataplane/config/subscriber.h"
#include "dataplane/l4/l4_options.h"
#include "dataplane/l7/access_log.h"
#include "dataplane/l7/l7_options.h"
#include "dataplane/server/dataplane.h"
#include "doorman/v1/routing.pb.h"

namespace {


[[noreturn]] void Usage(const char* message) {
  std::fprintf(stderr, "doorman-dataplane: %s (see --help)\n", message);
  std::exit(2);
}

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "";
  return buf;
}

// sigtimedwait until `deadline` (at least 1 ms): the signal taken, or -1 when none came.
int SigWaitUntil(const sigset_t& signals, std::chrono::steady_clock::time_point deadline) {
  const auto left = std::max<std::chrono::nanoseconds>(std::chrono::milliseconds(1),
                                                       deadline - std::chrono::steady_clock::now());
  const timespec wait{static_cast<time_t>(left.count() / 1000000000), static_cast<long>(left.count() % 1000000000)};
  return sigtimedwait(&signals, nullptr, &wait);
}

// SIGHUP or SIGUSR1 while running.
void OtherSignal(int sig) {
  using namespace doorman;
  if (sig == SIGUSR1) {
    if (std::string error; !dataplane::ReopenAccessLog(&error)) {
      log::Error("access-log", error);
    } else {
      log::Info("access-log", "SIGUSR1: access log reopened");
    }
    return;
  }
  log::Warn("dataplane", "SIGHUP ignored: routing state comes from the controller (SIGTERM drains and stops)");
}

}  // namespace

// The image gives this binary CAP_NET_BIND_SERVICE as a permitted file capability only (not
// effective: with +e, execve fails outright wherever the capability is not granted, e.g. a
// container that drops ALL and binds only high ports). Raised here into the effective set when it
// is permitted, in the main thread before any other starts (capabilities are per thread and
// inherited), so listeners below 1024 can be bound by a non-root process.
void RaiseNetBindService() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return;
  constexpr uint32_t kBit = 1u << CAP_NET_BIND_SERVICE;  // < 32: in data[0]
  if ((data[0].permitted & kBit) == 0 || (data[0].effective & kBit) != 0) return;
  data[0].effective |= kBit;
  syscall(SYS_capset, &header, data);  // failing leaves ports below 1024 unbindable, reported there
}

int main(int argc, char** argv) {
  using namespace doorman;
  RaiseNetBindService();
  // Block the stop signals first, in every thread to come (they inherit the mask: the access-log
  // writer, gRPC's, the workers); main waits for them below. A thread started before this line
  // would take a SIGTERM with the default action and end the process without a drain.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  // Not stop signals: SIGHUP is logged and ignored (a closed terminal must not end a dataplane
  // without a drain; its state comes from the controller, there is nothing to reload), SIGUSR1
  // reopens a file access log (logrotate).
  sigaddset(&stop_signals, SIGHUP);
  sigaddset(&stop_signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::string controller, node_name, advertise_address, bind_address = "0.0.0.0", metrics_listen = ":9101",
                                                         state_dir, log_format = "text", log_level = "info";
  TlsFiles tls;
  bool debug_remote = false;
  int64_t workers = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  dataplane::L7Options l7;
  int64_t l7_max_body = static_cast<int64_t>(l7.max_body_bytes);
  int64_t l7_max_conns = l7.max_connections_per_listener;
  int64_t l7_header_timeout_ms = l7.header_timeout.count();
  int64_t l7_body_timeout_ms = l7.body_timeout.count();
  dataplane::L4Options l4;
  int64_t l4_splice_pipe = 0;
  std::string l4_splice = "off";
  std::string connection_balance = "off";
  constexpr int64_t kMaxUdpFlows = int64_t{1} << 24;
  int64_t udp_max_flows = static_cast<int64_t>(dataplane::DataplaneOptions{}.udp_max_flows);
  int64_t shutdown_delay_ms = 0;
  int64_t controller_keepalive_ms = 30'000;
  int64_t drain_timeout_ms = 5000;

  FlagSet flags("doorman-dataplane", "Doorman dataplane: L4/L7 load balancer fed by doorman-controller over gRPC.");
  flags.String("controller", &controller, "controller routing-state address host:port (required)");
  flags.String("node-name", &node_name, "node name reported to the controller (default: the host name)");
  flags.String("advertise-address", &advertise_address, "address reported to the controller for status");
  flags.String("bind-address", &bind_address, "address the listeners bind to");
  flags.String("metrics-listen", &metrics_listen, "admin address for /metrics /healthz /readyz /debug/config");
  flags.Bool("debug-remote", &debug_remote,
             "serve /debug/config to clients off loopback too (default: loopback only, e.g. kubectl port-forward)");
  flags.String("state-dir", &state_dir, "directory for the last good routing state (served at start-up)");
  flags.Int("workers", &workers, "worker threads, one event loop each; the default is this machine's core count");
  flags.String("log-format", &log_format, "text | json");
  flags.String("log-level", &log_level, "debug | info | warn | error");
  flags.String("tls-cert", &tls.cert, "mTLS to the controller: client certificate chain (PEM); needs --tls-key and --tls-ca");
  flags.String("tls-key", &tls.key, "mTLS: client private key (PEM, unencrypted)");
  flags.String("tls-ca", &tls.ca, "mTLS: CA bundle (PEM) that must have signed the controller's certificate (files re-read every 5s)");
  flags.String("tls-server-name", &tls.server_name, "mTLS: name expected in the controller's certificate (default: the --controller host)");
  flags.Int("l7-max-body-bytes", &l7_max_body, "L7: largest request body (streamed), else 413");
  flags.Int("l7-max-connections", &l7_max_conns, "L7: open client connections per listener, else 503 (0 = no cap)");
  flags.DurationMs("l7-header-timeout", &l7_header_timeout_ms, "L7: time to receive a request header once it started, else 408");
  flags.DurationMs("l7-body-timeout", &l7_body_timeout_ms, "L7: time for each request-body read to make progress, else 408");
  flags.Int("udp-max-flows", &udp_max_flows,
            "UDP: flows per worker and listener; datagrams that would open another are dropped (udp_table_full)");
  flags.String("access-log", &l7.access_log, "L7 access log: off | stdout | PATH (one JSON line per request)");
  flags.Bool("l7-abort-on-client-close", &l7.abort_on_client_close,
             "L7: a client that closes while the backend is connected to or its response head awaited cancels the backend request (logged 499)");
  flags.String("connection-balance", &connection_balance,
               "TCP connections across workers: off (SO_REUSEPORT hash) | exact (to the worker serving the fewest)");
  flags.String("l4-splice", &l4_splice, "L4 splice(2) forwarding: off | bulk (once a read fills 16 KiB) | always");
  flags.Int("l4-splice-pipe-size", &l4_splice_pipe, "L4: pipe capacity with --l4-splice bulk|always, bytes (0 = kernel default, else 4096..1048576)");
  flags.DurationMs("controller-keepalive", &controller_keepalive_ms,
                   "an HTTP/2 PING to the controller this often; a stream whose PING is not answered within a "
                   "third of it (at least 1s) is dropped and reconnected (a controller that froze or a partition "
                   "without a reset): 1s..1h");
  flags.DurationMs("shutdown-delay", &shutdown_delay_ms,
                   "after SIGTERM, keep serving (new connections too) this long with /readyz at 503 before the drain, "
                   "so balancers and DNS in front stop sending first (ingress-nginx's shutdown grace period)");
  flags.DurationMs("drain-timeout", &drain_timeout_ms,
                   "after the shutdown delay: listeners closed, in-flight requests and connections get this long to "
                   "finish, then are closed (keep shutdown-delay + drain-timeout below terminationGracePeriodSeconds)");
  const auto positional = flags.ParseOrExit(argc, argv);
  if (!positional.empty()) Usage(("unexpected argument \"" + positional.front() + "\"").c_str());
  if (controller.empty()) Usage("--controller is required");
  {
    std::string host;
    uint16_t port = 0;
    if (!SplitHostPort(controller, &host, &port) || port == 0) {
      Usage(("--controller: \"" + controller + "\" is not host:port").c_str());
    }
    // A DNS name or an IP literal (brackets removed): gRPC would otherwise retry it forever.
    const bool host_ok = controller.front() != ':' && !host.empty() && host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                 "0123456789.-:_") == std::string::npos;
    if (!host_ok) Usage(("--controller: \"" + controller + "\" has no valid host").c_str());
    if (!SplitHostPort(metrics_listen, &host, &port)) {
      Usage(("--metrics-listen: \"" + metrics_listen + "\" is not host:port or :port").c_str());
    }
  }
  if (!advertise_address.empty() && !IsValidStatusAddress(advertise_address)) {
    Usage(("--advertise-address: \"" + advertise_address +
           "\" is neither an IP address nor a DNS name (lowercase, RFC 1123): it is written into Kubernetes status")
              .c_str());
  }
  if (auto e = CheckTlsFlags(tls); !e.empty()) Usage(e.c_str());
  if (tls.enabled()) {
    if (auto e = CheckTlsFiles(tls); !e.empty()) Usage(e.c_str());
  }
  if (workers < 1 || workers > 1024) Usage("--workers must be between 1 and 1024");
  if (connection_balance != "exact" && connection_balance != "off") Usage("--connection-balance must be exact or off");
  if (udp_max_flows < 1 || udp_max_flows > kMaxUdpFlows) {
    Usage(("--udp-max-flows must be between 1 and " + std::to_string(kMaxUdpFlows)).c_str());
  }
  if (shutdown_delay_ms < 0 || drain_timeout_ms < 0) Usage("--shutdown-delay/--drain-timeout must be >= 0");
  if (controller_keepalive_ms < 1'000 || controller_keepalive_ms > 3'600'000) {
    Usage("--controller-keepalive must be between 1s and 1h");
  }
  if (l7_max_body < 0) Usage("--l7-max-body-bytes must be >= 0");
  if (l7_max_conns < 0) Usage("--l7-max-connections must be >= 0");
  if (l7_header_timeout_ms <= 0 || l7_body_timeout_ms <= 0) Usage("--l7-header-timeout/--l7-body-timeout must be > 0");
  if (l7.access_log.empty()) Usage("--access-log must be off, stdout or a file path");
  // DOORMAN_L4_SPLICE=1: the former switch, still honoured (deprecated, warned below).
  const char* splice_env = std::getenv("DOORMAN_L4_SPLICE");
  const bool splice_from_env = l4_splice == "off" && splice_env != nullptr && std::string(splice_env) == "1";
  if (splice_from_env) l4_splice = "always";
  if (l4_splice == "off") {
    l4.splice = dataplane::L4Options::Splice::kOff;
  } else if (l4_splice == "bulk") {
    l4.splice = dataplane::L4Options::Splice::kBulk;
  } else if (l4_splice == "always") {
    l4.splice = dataplane::L4Options::Splice::kAlways;
  } else {
    Usage("--l4-splice must be off, bulk or always");
  }
  if (l4_splice_pipe != 0 && (l4_splice_pipe < static_cast<int64_t>(dataplane::kMinSplicePipeBytes) ||
                              l4_splice_pipe > static_cast<int64_t>(dataplane::kMaxSplicePipeBytes))) {
    Usage("--l4-splice-pipe-size must be 0 or between 4096 and 1048576");
  }
  if (l4_splice_pipe != 0 && l4.splice == dataplane::L4Options::Splice::kOff) {
    Usage("--l4-splice-pipe-size needs --l4-splice bulk|always");
  }
  l4.splice_pipe_bytes = static_cast<std::size_t>(l4_splice_pipe);
  dataplane::SetL4Options(l4);
  l7.max_body_bytes = static_cast<uint64_t>(l7_max_body);
  l7.max_connections_per_listener = l7_max_conns;
  l7.header_timeout = std::chrono::milliseconds(l7_header_timeout_ms);
  l7.body_timeout = std::chrono::milliseconds(l7_body_timeout_ms);
  dataplane::SetL7Options(l7);
  if (std::string error; !dataplane::OpenAccessLog(l7.access_log, &error)) Usage(("--access-log: " + error).c_str());
  if (!dataplane::Dataplane::ValidBindAddress(bind_address)) {
    Usage(("--bind-address: \"" + bind_address + "\" is not an IP address").c_str());
  }
  if (log_format != "text" && log_format != "json") Usage(("invalid --log-format \"" + log_format + "\" (want text or json)").c_str());
  if (!log::Configure(log_format, log_level)) {
    Usage(("invalid --log-level \"" + log_level + "\" (want debug, info, warn or error)").c_str());
  }
  RouteGrpcLogs();
  const uint64_t open_files = RaiseOpenFileLimit();
  if (node_name.empty()) node_name = HostName();
  if (splice_from_env) log::Warn("dataplane", "DOORMAN_L4_SPLICE=1 is deprecated; use --l4-splice");

  ::signal(SIGPIPE, SIG_IGN);
  log::StartAsync();  // no worker waits for a stalled stderr reader from here on (common/log.h)

  if (!state_dir.empty()) {
    std::string error;
    std::string warning;
    if (!dataplane::EnsureStateDir(state_dir, &error, &warning)) Usage(("--state-dir: " + error).c_str());
    if (!warning.empty()) log::Warn("dataplane", "--state-dir is shared", {{"warning", warning}});
  }

  auto registry = std::make_shared<prometheus::Registry>();
  dataplane::DataplaneOptions opts;
  opts.bind_address = bind_address;
  opts.workers = static_cast<int>(workers);
  opts.node_name = node_name;
  opts.state_dir = state_dir;
  opts.udp_max_flows = static_cast<std::size_t>(udp_max_flows);
  opts.udp_flow_descriptors = static_cast<std::size_t>(open_files / 2);  // the other half: TCP, HTTP, probes
  opts.connection_balance = connection_balance == "exact";
  dataplane::Dataplane dp(opts, registry);
  dp.Start();

  if (!state_dir.empty()) {
    std::string error;
    if (auto saved = dataplane::LoadState(state_dir, &error)) {
      const auto r = dp.Apply(*saved, /*persist=*/false);
      if (r.ok) {
        log::Info("dataplane", "serving the saved routing state until the controller answers",
                  {{"version", std::to_string(saved->version())}});
      } else {
        log::Warn("dataplane", "saved routing state rejected; waiting for the controller",
                  {{"version", std::to_string(saved->version())}, {"error", r.error}});
      }
    } else if (!error.empty()) {
      log::Warn("dataplane", "cannot load the saved routing state", {{"error", error}});
    }
  }

  AdminServer admin(registry, [&dp] { return dp.ready(); });
  admin.AllowRemoteHandlers(debug_remote);
  admin.AddHandler("/debug/config", [&dp] { return AdminServer::Response{200, "application/json", dp.DebugConfigJson()}; });
  std::string error;
  if (!admin.Start(metrics_listen, &error)) {
    std::fprintf(stderr, "doorman-dataplane: --metrics-listen: %s\n", error.c_str());
    return 1;
  }

  dataplane::SubscriberOptions sub_opts;
  sub_opts.controller = controller;
  sub_opts.node_name = node_name;
  sub_opts.advertise_address = advertise_address;
  sub_opts.tls = tls;
  sub_opts.keepalive_ms = controller_keepalive_ms;
  dataplane::Subscriber subscriber(
      sub_opts, [&dp](const v1::StateUpdate& u) { return dp.Apply(u); }, [&dp] { return dp.applied_version(); },
      [&dp] {
        auto [version, unserved] = dp.UnservedListeners();
        return dataplane::Subscriber::ListenerState{version, std::move(unserved)};
      });
  subscriber.Start();
  log::Info("dataplane", "started",
            {{"controller", controller}, {"node", node_name}, {"workers", std::to_string(workers)},
             {"bind_address", bind_address}, {"metrics", metrics_listen}, {"open_files", std::to_string(open_files)},
             {"version", DOORMAN_VERSION}});

  // Waits for a stop signal; every 2 s meanwhile, listeners whose port was busy are tried again.
  int sig = 0;
  // The controller hears of an opened one at once (its status would otherwise wait for the next
  // update). Retried every 2 s whatever else wakes the wait (a SIGHUP or SIGUSR1 every second
  // must not postpone it for ever).
  auto next_retry = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    sig = SigWaitUntil(stop_signals, next_retry);
    if (sig == SIGTERM || sig == SIGINT) break;
    if (sig > 0) OtherSignal(sig);
    if (std::chrono::steady_clock::now() >= next_retry) {
      next_retry = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      if (dp.RetryUnboundListeners()) subscriber.ReportListeners();
    }
  }
  if (shutdown_delay_ms > 0) {
    // Still serving, no longer ready: whatever health-checks /readyz in front stops sending here
    // before the listeners close. A second signal ends the delay.
    log::Info("dataplane", "stopping: not ready, still serving for the shutdown delay",
              {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}, {"delay", std::to_string(shutdown_delay_ms) + "ms"}});
    dp.MarkNotReady();
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(shutdown_delay_ms);
    while (std::chrono::steady_clock::now() < until) {
      const int again = SigWaitUntil(stop_signals, until);
      if (again == SIGTERM || again == SIGINT) break;
      if (again > 0) OtherSignal(again);
      if (again < 0 && errno != EAGAIN && errno != EINTR) break;
    }
  }
  log::Info("dataplane", "stopping: no new connections, finishing in-flight work",
            {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}, {"grace", std::to_string(drain_timeout_ms) + "ms"}});
  subscriber.Stop();
  dp.Shutdown(std::chrono::milliseconds(drain_timeout_ms));
  dataplane::CloseAccessLog(std::chrono::seconds(1));  // what is queued, unless the output is stalled
  admin.Stop();
  log::Info("dataplane", "stopped");
  return 0;
}
