// doorman-controller: the one wiring file. A source (manifest files → ManifestSet, or the
// Kubernetes API → KubeSource) → object store → Translator → RoutingServer (publisher + gRPC
// streams), plus the admin endpoint (/metrics, /healthz, /readyz, /debug/snapshot,
// /debug/status) and, with the Kubernetes source, the status writer (leader only, optionally
// elected on a Lease).
#include <atomic>
#include <map>
#include <signal.h>
#include <unistd.h>

#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <condition_variable>
#include <optional>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "common/admin_server.h"
#include "common/flags.h"
#include "common/address.h"
#include "common/fd_limit.h"
#include "common/grpc_log.h"
#include "common/grpc_tls.h"
#include "common/log.h"
#include "controller/grpc/routing_server.h"
#include "controller/kube/config.h"
#include "controller/kube/http.h"
#include "controller/kube/leader_runner.h"
#include "controller/kube/resources.h"
#include "controller/kube/status_writer.h"
#include "controller/metrics/metrics.h"
#include "controller/source/file_watcher.h"
#include "controller/source/kube_source.h"
#include "controller/source/manifest.h"
#include "controller/status/status.h"
#include "controller/translate/openapi_check.h"
#include "controller/translate/translate.h"

namespace dc = doorman::controller;

namespace doorman::controller {
extern const char kLoadBalancerCrdYaml[];  // lb_crd.cc, generated from crds/ at build time
}  // namespace doorman::controller
using doorman::AdminServer;

namespace {

constexpr const char* kProgram = "doorman-controller";
constexpr auto kRescanInterval = std::chrono::seconds(1);

[[noreturn]] void Fail(int code, const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", kProgram, message.c_str());
  std::exit(code);
}

// What the admin handlers show; written by the controller loop.
struct Published {
  std::mutex mu;
  std::shared_ptr<const doorman::v1::Snapshot> snapshot;
  uint64_t version = 0;
  std::vector<dc::ObjectStatus> statuses;
  std::vector<dc::ManifestError> manifest_errors;
  // Which generation of each object each recent version routes (for the Programmed condition).
  doorman::controller::status::ServedGenerations served;
  // The last good versions the last build served in place of invalid objects; `built` once a
  // build has run (before it, the empty map means "not known yet", not "none").
  std::map<dc::ObjectKey, nlohmann::json> last_good;
  bool built = false;
};

// The dataplanes connected to this controller, as the status functions take them.
std::vector<doorman::controller::status::DataplaneView> OwnDataplaneViews(dc::RoutingServer& server) {
  std::vector<doorman::controller::status::DataplaneView> views;
  for (const auto& d : server.dataplanes()) {
    views.push_back({d.node_name, d.advertise_address, d.acked_version, d.unserved_listeners});
  }
  return views;
}

// The controller loop: owns the object store and the translator; the sources only enqueue.
// With the Kubernetes source nothing is published before every initial list is in (`synced`),
// so dataplanes never see a half-listed cluster.
class ControllerLoop {
 public:
  ControllerLoop(dc::RoutingServer* server, dc::ControllerMetrics* metrics, Published* published,
                 dc::TranslateOptions options)
      : server_(server), metrics_(metrics), published_(published), translator_(options) {}

  // Kubernetes mode: builds wait until synced() says the initial lists are in.
  void UseKubeSource(std::function<bool()> synced) {
    kube_ = true;
    synced_ = std::move(synced);
  }
  void SetAfterBuild(std::function<void()> f) { after_build_ = std::move(f); }
  // Kubernetes mode with --leader-elect: the last good versions stored by the leader, read once
  // before the first build; those still valid for the store (same uid) are adopted.
  void SetLastGoodSource(std::function<std::optional<std::map<dc::ObjectKey, nlohmann::json>>()> f) {
    last_good_source_ = std::move(f);
  }

  void Enqueue(std::vector<dc::FileChange> changes) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : changes) pending_.push_back(std::move(c));
    cv_.notify_one();
  }

  void EnqueueKube(std::vector<dc::KubeEvent> events) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& e : events) pending_kube_.push_back(std::move(e));
    cv_.notify_one();
  }

  void ApplyKube(std::vector<dc::KubeEvent> events, bool notify) {
    for (auto& e : events) {
      doorman::log::Debug("kube", "watch event", {{"type", e.type}, {"object", e.key.ToString()}});
      if (e.type == "DELETED") {
        store_.erase(e.key);
      } else {
        store_[e.key] = dc::StoredObject{std::move(e.object), dc::SourceLocation{"kubernetes", 0, 0}, ""};
      }
    }
    if (notify && !events.empty()) server_->NotifyChange(dc::Clock::now());
  }

  void ApplyFiles(std::vector<dc::FileChange> changes, bool notify) {
    std::vector<dc::Diagnostic> logs;
    std::vector<std::pair<std::string, std::optional<dc::ParseResult>>> files;
    for (auto& c : changes) {
      if (c.content) {
        files.emplace_back(c.path, dc::ParseManifests(*c.content, c.path));
      } else {
        logs.push_back({doorman::log::Level::kInfo, "manifest", "file removed", {{"file", c.path}}});
        files.emplace_back(c.path, std::nullopt);
      }
    }
    // One rebuild of the store for the whole batch (a first scan reads every file at once).
    for (const auto& e : set_.ApplyFiles(std::move(files), &logs)) {
      metrics_->WatchEvent(dc::ResourceName(e.key.kind), e.type);
      const auto it = set_.objects().find(e.key);
      logs.push_back({doorman::log::Level::kDebug, "manifest", "watch event",
                      {{"type", e.type}, {"object", e.key.ToString()},
                       {"file", it == set_.objects().end() ? std::string() : it->second.source.file}}});
    }
    dc::EmitAll(logs);
    if (!changes.empty()) {
      // /debug/status shows the files' problems now: a file that fails to parse changes no
      // object, so no new snapshot (Build) would bring its error there.
      std::lock_guard<std::mutex> lock(published_->mu);
      published_->manifest_errors = set_.errors();
    }
    if (notify && !changes.empty()) server_->NotifyChange(dc::Clock::now());
  }

  // Translates the current objects and publishes the snapshot (a no-op for the dataplanes when
  // the version did not change).
  void Build(dc::TimePoint change_seen) {
    built_ = true;
    dc::TranslateResult r = translator_.Translate(kube_ ? store_ : set_.objects());
    dc::EmitAll(r.diagnostics);
    metrics_->CountTranslation();
    // Per kind the controller translates (every series present, zeros included, so an alert on
    // accepted="false" has something to compare with).
    std::map<std::string, std::pair<size_t, size_t>> objects = {
        {dc::kKindLoadBalancer, {0, 0}}, {dc::kKindService, {0, 0}}, {dc::kKindIngress, {0, 0}},
        {dc::kKindIngressClass, {0, 0}}};
    for (const auto& st : r.statuses) {
      auto& [accepted, rejected] = objects[st.key.kind];
      (st.accepted ? accepted : rejected)++;
    }
    for (const auto& [kind, counts] : objects) {
      metrics_->SetObjects(kind, true, counts.first);
      metrics_->SetObjects(kind, false, counts.second);
    }
    auto snapshot = std::make_shared<const doorman::v1::Snapshot>(std::move(r.snapshot));
    const uint64_t version = dc::SnapshotVersion(*snapshot);
    std::vector<uint64_t> in_use;
    for (const auto& d : server_->dataplanes()) in_use.push_back(d.acked_version);
    {
      std::lock_guard<std::mutex> lock(published_->mu);
      published_->snapshot = snapshot;
      published_->version = version;
      published_->served.Record(version, doorman::controller::status::ServedBy(r.statuses), in_use);
      published_->statuses = std::move(r.statuses);
      published_->manifest_errors = set_.errors();
      if (kube_) published_->last_good = translator_.LastGoodServed();
      published_->built = true;
    }
    server_->Publish(version, std::move(snapshot), change_seen);
    if (after_build_) after_build_();
  }

  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      auto deadline = server_->NextDeadline();
      const bool waiting_sync = kube_ && !built_;
      if (waiting_sync) deadline = dc::Clock::now() + std::chrono::milliseconds(50);  // poll synced()
      if (adopt_pending_ && (!deadline || next_adopt_try_ < *deadline)) deadline = next_adopt_try_;
      auto ready = [this] { return stop_ || !pending_.empty() || !pending_kube_.empty(); };
      if (deadline) {
        cv_.wait_until(lock, *deadline, ready);
      } else {
        cv_.wait(lock, ready);
      }
      if (stop_) break;
      std::vector<dc::FileChange> changes = std::move(pending_);
      pending_.clear();
      std::vector<dc::KubeEvent> kube_events = std::move(pending_kube_);
      pending_kube_.clear();
      lock.unlock();
      ApplyFiles(std::move(changes), true);
      ApplyKube(std::move(kube_events), built_);
      if (kube_ && !built_) {
        if (synced_()) {
          doorman::log::Info("kube", "initial lists synced", {{"objects", std::to_string(store_.size())}});
          if (last_good_source_) AdoptLastGood();
          Build(dc::Clock::now());
        }
      } else if (auto due = server_->TakeDue(dc::Clock::now())) {
        Build(*due);
      }
      // The start-up read of the last good versions failed: try again every few seconds; what
      // it brings changes the snapshot now.
      if (built_ && adopt_pending_ && dc::Clock::now() >= next_adopt_try_ && AdoptLastGood()) Build(dc::Clock::now());
      lock.lock();
    }
  }

  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_one();
  }

 private:
  // Reads and adopts the stored last good versions; true when something was adopted. A failed
  // read is tried again later (adopt_pending_).
  bool AdoptLastGood() {
    auto saved = last_good_source_();
    adopt_pending_ = !saved;
    if (!saved) {
      next_adopt_try_ = dc::Clock::now() + std::chrono::seconds(5);
      return false;
    }
    const auto seeds = doorman::controller::status::LastGoodSeeds(*saved, store_);
    std::string names;
    for (const auto& [key, object] : seeds) {
      translator_.SeedLastGood(key, object);
      names += (names.empty() ? "" : ",") + key.ToString();
    }
    if (!seeds.empty()) {
      doorman::log::Info("kube", "adopted the last good versions stored by the leader", {{"objects", names}});
    }
    return !seeds.empty();
  }

  dc::RoutingServer* server_;
  dc::ControllerMetrics* metrics_;
  Published* published_;
  dc::ManifestSet set_;
  dc::ObjectStore store_;  // Kubernetes mode
  dc::Translator translator_;
  bool kube_ = false;
  bool built_ = false;
  std::function<bool()> synced_;
  std::function<void()> after_build_;
  std::function<std::optional<std::map<dc::ObjectKey, nlohmann::json>>()> last_good_source_;
  bool adopt_pending_ = false;  // the last good versions could not be read yet
  dc::TimePoint next_adopt_try_{};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<dc::FileChange> pending_;
  std::vector<dc::KubeEvent> pending_kube_;
  bool stop_ = false;
};

// Writes status and Events while this replica may (always without --leader-elect; with it,
// while it holds the Lease). Level-triggered: a pass every 500 ms and after every build.
// Right after start-up, while no dataplane has (re)connected yet, nothing is written for a few
// seconds: a controller restart must not flap Programmed and blank Service/Ingress addresses.
constexpr auto kStatusStartupGrace = std::chrono::seconds(5);
// SIGTERM: each API request made while stopping (lease release, view delete) is bounded by the
// deadline, and all of them together by the budget.
constexpr auto kShutdownRequestDeadline = std::chrono::milliseconds(2000);
constexpr auto kShutdownBudget = std::chrono::milliseconds(4000);

class StatusLoop {
 public:
  StatusLoop(dc::kube::StatusWriter* writer, dc::KubeSource* source, dc::RoutingServer* server, Published* published,
             std::function<bool()> may_write, dc::kube::ViewPublisher* views, dc::kube::LastGoodLease* last_good)
      : writer_(writer),
        source_(source),
        server_(server),
        published_(published),
        may_write_(std::move(may_write)),
        views_(views),
        last_good_(last_good) {}

  void Kick() {
    std::lock_guard<std::mutex> lock(mu_);
    kicked_ = true;
    cv_.notify_one();
  }

  void Run() {
    bool was_writer = false;
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stop_ || kicked_; });
      if (stop_) break;
      kicked_ = false;
      lock.unlock();
      const bool may = may_write_();
      if (may != was_writer) {
        writer_->Reset();
        if (last_good_) last_good_->Reset();
        was_writer = may;
      }
      std::vector<doorman::controller::status::DataplaneView> own = OwnDataplaneViews(*server_);
      if (views_) views_->Publish(own);
      if (may && last_good_) {
        std::optional<std::map<dc::ObjectKey, nlohmann::json>> objects;
        {
          std::lock_guard<std::mutex> plock(published_->mu);
          if (published_->built) objects = published_->last_good;
        }
        if (objects && !stopping_.load()) last_good_->Write(*objects);
      }
      const bool settling = dc::Clock::now() - started_ < kStatusStartupGrace && own.empty();
      if (may && !settling && source_->synced() && server_->version() != 0) {
        // With --leader-elect, the other replicas' dataplanes count too (their view Leases).
        std::optional<std::vector<doorman::controller::status::PeerView>> peers;
        if (views_) {
          peers = views_->ListPeers();
          if (!peers) {  // unknown: writing our partial view would flap Programmed and addresses
            lock.lock();
            continue;
          }
        }
        dc::kube::StatusInputs in;
        doorman::controller::status::ServedGenerations served;
        {
          std::lock_guard<std::mutex> plock(published_->mu);
          in.statuses = published_->statuses;
          served = published_->served;
        }
        in.dataplanes = peers ? doorman::controller::status::MergeDataplaneViews(own, *peers, std::chrono::system_clock::now())
                              : own;
        in.served = &served;
        in.may_write = [this] { return !stopping_.load() && may_write_(); };
        writer_->Sync(in);
      }
      lock.lock();
    }
  }

  void Stop() {
    stopping_ = true;  // read by a Sync pass in flight, without the loop's mutex
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_one();
  }

 private:
  dc::kube::StatusWriter* writer_;
  dc::KubeSource* source_;
  dc::RoutingServer* server_;
  Published* published_;
  std::function<bool()> may_write_;
  std::atomic<bool> stopping_{false};
  dc::kube::ViewPublisher* views_;
  dc::kube::LastGoodLease* last_good_;
  const dc::TimePoint started_ = dc::Clock::now();
  std::mutex mu_;
  std::condition_variable cv_;
  bool kicked_ = false;
  bool stop_ = false;
};

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "doorman";
  return buf;
}

nlohmann::json StatusJson(const dc::ObjectStatus& st) {
  nlohmann::json listeners = nlohmann::json::array();
  for (const auto& l : st.listeners) listeners.push_back({{"name", l.name}, {"attachedRoutes", l.attached_routes}});
  nlohmann::json warnings = nlohmann::json::array();
  for (const auto& w : st.warnings) warnings.push_back({{"reason", w.reason}, {"field", w.field}, {"message", w.message}});
  return {{"kind", st.key.kind},
          {"namespace", st.key.ns},
          {"name", st.key.name},
          {"file", st.source.file},
          {"generation", st.generation},
          {"accepted", st.accepted},
          {"reason", st.reason},
          {"field", st.field},
          {"message", st.message},
          {"servingLastGood", st.serving_last_good},
          {"listeners", listeners},
          {"warnings", warnings}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string manifests;
  std::string kubeconfig;
  std::string grpc_listen = "0.0.0.0:18000";
  std::string metrics_listen = ":9100";
  std::string log_format = "text";
  std::string log_level = "info";
  std::string ingress_class = "doorman";
  int64_t ingress_http_port = 80;
  int64_t ingress_https_port = 443;
  bool default_lb_class = false;
  bool allow_node_local_endpoints = false;
  bool allow_cross_namespace_hosts = false;
  bool debug_remote = false;
  std::string ingress_trusted_proxies;
  bool ingress_proxy_protocol = false;
  std::string ingress_default_certificate;
  std::string watch_namespace;
  std::string controller_class = "doorman.dev/ingress-controller";
  std::string load_balancer_class = "doorman.dev/lb";
  std::string loadbalancer_selector;
  bool leader_elect = false;
  int64_t lease_duration_ms = 15000;
  int64_t renew_deadline_ms = 10000;
  int64_t retry_period_ms = 2000;
  int64_t kube_gone_after_ms = 60000;
  std::string leader_elect_namespace;
  std::string leader_elect_id = "doorman-controller";
  std::string pod_name;
  doorman::TlsFiles tls;

  doorman::FlagSet flags(kProgram,
                         "Doorman controller: turns LoadBalancer, Service (type LoadBalancer) and Ingress objects into "
                         "routing state and streams it to dataplanes over gRPC.");
  flags.String("kubeconfig", &kubeconfig,
               "kubeconfig of the Kubernetes API to watch (default: the in-cluster service account, else "
               "$KUBECONFIG)");
  flags.String("manifests", &manifests,
               "standalone mode instead of a cluster: read LoadBalancer, Service, EndpointSlice, Ingress, "
               "IngressClass and Secret objects from this multi-document YAML file or directory of *.yaml/*.yml "
               "files, re-read on change");
  flags.String("grpc-listen", &grpc_listen, "address the RoutingState gRPC server listens on");
  flags.String("metrics-listen", &metrics_listen,
               "address of /metrics, /healthz, /readyz, /debug/snapshot and /debug/status");
  flags.Bool("debug-remote", &debug_remote,
             "serve /debug/snapshot and /debug/status to clients off loopback too (default: loopback only)");
  flags.String("log-format", &log_format, "text | json");
  flags.String("log-level", &log_level, "debug | info | warn | error");
  flags.Bool("leader-elect", &leader_elect,
             "only the replica holding a coordination.k8s.io Lease writes status and Events (every replica "
             "serves dataplanes)");
  flags.DurationMs("leader-elect-lease-duration", &lease_duration_ms,
                   "how long followers wait after the leader's last renewal before taking over");
  flags.DurationMs("leader-elect-renew-deadline", &renew_deadline_ms,
                   "how long the leader keeps acting without a successful renewal (< lease duration)");
  flags.DurationMs("leader-elect-retry-period", &retry_period_ms, "how often the Lease is read or renewed");
  flags.String("leader-elect-namespace", &leader_elect_namespace,
               "namespace of the Lease (default: the pod's namespace in a cluster, else doorman-system)");
  flags.String("leader-elect-id", &leader_elect_id, "name of the Lease");
  flags.DurationMs("kube-gone-after", &kube_gone_after_ms,
                   "the LoadBalancer resource answered NotFound on every list for this long (and 4 lists) "
                   "means its CRD was deleted: the LoadBalancers stop routing (shorter runs, e.g. an API "
                   "server restarting, keep the cache)");
  flags.String("pod-name", &pod_name,
               "this replica's identity in the Lease, Events and User-Agent (default: $POD_NAME, which deploy/ and "
               "the chart set from the downward API, else hostname_pid)");
  flags.String("ingress-class", &ingress_class,
               "value of the legacy kubernetes.io/ingress.class annotation that selects doorman");
  flags.Int("ingress-http-port", &ingress_http_port, "port Ingress HTTP rules listen on");
  flags.Int("ingress-https-port", &ingress_https_port, "port Ingress HTTPS rules listen on");
  flags.String("ingress-trusted-proxies", &ingress_trusted_proxies,
               "comma-separated CIDRs whose X-Forwarded-For Ingress routes keep (a balancer in front); default none");
  flags.Bool("ingress-proxy-protocol", &ingress_proxy_protocol,
             "Ingress listeners expect a PROXY protocol v1/v2 header on every connection (a balancer in front sends one)");
  flags.String("ingress-default-certificate", &ingress_default_certificate,
               "NAMESPACE/NAME of a kubernetes.io/tls Secret: every Ingress is served on the HTTPS port with it "
               "(those without tls[] too, not redirected), tls[] entries without secretName use it, and clients "
               "without SNI or with an unknown name get it (ingress-nginx's --default-ssl-certificate); default none");
  flags.String("watch-namespace", &watch_namespace,
               "list and watch Services, EndpointSlices, Ingresses, Secrets and LoadBalancers in this namespace only "
               "(RBAC can then be a Role there; IngressClasses stay cluster-wide); default every namespace");
  flags.Bool("default-lb-class", &default_lb_class, "also claim Services of type LoadBalancer without a class");
  flags.Bool("allow-cross-namespace-hosts", &allow_cross_namespace_hosts,
             "let routes of objects in different namespaces name the same host on a shared HTTP/HTTPS port "
             "(ingress-nginx merges them); default: a host belongs to the namespace of the oldest object routing it");
  flags.Bool("allow-node-local-endpoints", &allow_node_local_endpoints,
             "in a cluster, take LoadBalancer endpoints in loopback, link-local or unspecified ranges (refused by "
             "default: the dataplane shares the node's network, so they would reach the node's own services); "
             "--manifests mode always takes them");
  flags.String("controller-class", &controller_class,
               "spec.controller of the IngressClasses this controller claims (ingress-nginx's --controller-class); "
               "a second install in the cluster takes its own, with an IngressClass naming it");
  flags.String("load-balancer-class", &load_balancer_class,
               "spec.loadBalancerClass of the Services of type LoadBalancer this controller claims");
  flags.String("loadbalancer-selector", &loadbalancer_selector,
               "label selector (key=value, key!=value, key, !key; comma-separated) of the LoadBalancer objects this "
               "controller claims, e.g. doorman.dev/edge=internal; default all of them");
  flags.String("tls-cert", &tls.cert,
               "mTLS to dataplanes: the gRPC server's certificate chain (PEM); needs --tls-key and --tls-ca");
  flags.String("tls-key", &tls.key, "mTLS: the gRPC server's private key (PEM, unencrypted)");
  flags.String("tls-ca", &tls.ca,
               "mTLS: CA bundle (PEM); every dataplane must present a client certificate it signed. The three "
               "files are re-read every 5s (rotation without a restart)");
  const auto positional = flags.ParseOrExit(argc, argv);

  if (!positional.empty()) Fail(2, "unexpected argument \"" + positional.front() + "\" (see --help)");
  if (log_format != "text" && log_format != "json") Fail(2, "invalid --log-format \"" + log_format + "\" (want text or json)");
  if (!doorman::log::Configure(log_format, log_level)) {
    Fail(2, "invalid --log-level \"" + log_level + "\" (want debug, info, warn or error)");
  }
  doorman::RouteGrpcLogs();
  const uint64_t open_files = doorman::RaiseOpenFileLimit();
  if (auto e = doorman::CheckTlsFlags(tls); !e.empty()) Fail(2, e);
  if (tls.enabled()) {
    if (auto e = doorman::CheckTlsFiles(tls); !e.empty()) Fail(2, e);
  }
  for (const auto& [name, value] : {std::pair{"ingress-http-port", ingress_http_port}, std::pair{"ingress-https-port", ingress_https_port}}) {
    if (value < 1 || value > 65535) Fail(2, std::string("invalid --") + name + " " + std::to_string(value) + " (want 1..65535)");
  }
  std::vector<std::string> trusted_proxies;
  if (std::string bad; !dc::ParseCidrList(ingress_trusted_proxies, &trusted_proxies, &bad)) {
    Fail(2, "invalid --ingress-trusted-proxies entry \"" + bad + "\" (want e.g. 10.0.0.0/8)");
  }
  if (ingress_http_port == ingress_https_port) {
    Fail(2, "--ingress-http-port and --ingress-https-port are both " + std::to_string(ingress_http_port) +
                ": Ingress HTTP and HTTPS rules need two ports");
  }
  if (!ingress_default_certificate.empty()) {
    const auto slash = ingress_default_certificate.find('/');
    if (slash == std::string::npos || !doorman::IsDns1123Label(ingress_default_certificate.substr(0, slash)) ||
        !doorman::IsObjectName(ingress_default_certificate.substr(slash + 1))) {
      Fail(2, "invalid --ingress-default-certificate \"" + ingress_default_certificate +
                  "\" (want NAMESPACE/NAME of a kubernetes.io/tls Secret)");
    }
  }
  if (!watch_namespace.empty()) {
    if (!doorman::IsDns1123Label(watch_namespace)) {
      Fail(2, "invalid --watch-namespace \"" + watch_namespace + "\" (want a namespace name)");
    }
    if (!manifests.empty()) Fail(2, "--watch-namespace needs the Kubernetes API source, not --manifests");
    if (!ingress_default_certificate.empty() &&
        ingress_default_certificate.substr(0, ingress_default_certificate.find('/')) != watch_namespace) {
      Fail(2, "--ingress-default-certificate " + ingress_default_certificate + " is outside --watch-namespace " +
                  watch_namespace + ": its Secret would never be seen");
    }
  }
  // As the API server validates them, or they could never match an object: IngressClass
  // spec.controller is a domain-prefixed path ("example.com/name", <= 250), Service
  // spec.loadBalancerClass a qualified name ("example.com/name" or "internal-vip").
  if (!dc::kube::IsDomainPrefixedPath(controller_class)) {
    Fail(2, "invalid --controller-class \"" + controller_class + "\" (want a domain-prefixed path, e.g. example.com/internal)");
  }
  const bool legacy_class_shared = controller_class != "doorman.dev/ingress-controller" && ingress_class == "doorman";
  if (!dc::kube::IsQualifiedName(load_balancer_class)) {
    Fail(2, "invalid --load-balancer-class \"" + load_balancer_class +
                "\" (want a qualified name, e.g. example.com/internal or internal-vip)");
  }
  if (!loadbalancer_selector.empty()) {
    if (auto why = dc::kube::LabelSelectorProblem(loadbalancer_selector); !why.empty()) {
      Fail(2, "invalid --loadbalancer-selector \"" + loadbalancer_selector + "\": " + why);
    }
    if (!manifests.empty()) Fail(2, "--loadbalancer-selector needs the Kubernetes API source, not --manifests");
  }
  if (!manifests.empty() && !kubeconfig.empty()) {
    Fail(2, "--manifests and --kubeconfig are mutually exclusive (standalone files or a cluster, not both)");
  }
  if (!manifests.empty() && leader_elect) Fail(2, "--leader-elect needs the Kubernetes API source, not --manifests");
  if (kube_gone_after_ms <= 0) Fail(2, "--kube-gone-after must be greater than 0");
  if (leader_elect && !(renew_deadline_ms > 0 && renew_deadline_ms < lease_duration_ms && retry_period_ms > 0 &&
                        retry_period_ms < renew_deadline_ms)) {
    Fail(2, "--leader-elect durations must satisfy 0 < retry-period < renew-deadline < lease-duration");
  }
  std::string grpc_host, host;
  uint16_t port = 0;
  if (!doorman::SplitHostPort(grpc_listen, &grpc_host, &port)) {
    Fail(2, "invalid --grpc-listen \"" + grpc_listen + "\" (want host:port)");
  }
  if (!doorman::SplitHostPort(metrics_listen, &host, &port)) {
    Fail(2, "invalid --metrics-listen \"" + metrics_listen + "\" (want host:port or :port)");
  }
  const bool kube_mode = manifests.empty();
  std::optional<dc::kube::KubeConfig> kube_config;
  if (kube_mode) {
    std::string error;
    kube_config = dc::kube::ResolveKubeConfig(kubeconfig, dc::kube::GetEnv, dc::kube::ReadFile, &error);
    if (!kube_config) Fail(2, error + " (or --manifests PATH for standalone mode; see --help)");
    // A client certificate that cannot be used would silently make every request anonymous
    // (401s forever): refused here, as a bad --tls-* file is.
    if (!kube_config->client_cert_pem.empty()) {
      const char* why = nullptr;
      switch (doorman::CheckPemPair(kube_config->client_cert_pem, kube_config->client_key_pem)) {
        case doorman::PemPairProblem::kNoCertificate: why = "client-certificate is not a PEM certificate"; break;
        case doorman::PemPairProblem::kNoKey: why = "client-key is not an unencrypted PEM private key"; break;
        case doorman::PemPairProblem::kMismatch: why = "client-key does not match client-certificate"; break;
        case doorman::PemPairProblem::kNone: break;
      }
      if (why != nullptr) Fail(2, kube_config->origin + ": " + why);
    }
    // Allowed, as client-go allows them, but said: the credential or the server is unprotected.
    if (kube_config->server.rfind("http://", 0) == 0 && (!kube_config->token.empty() || !kube_config->token_file.empty())) {
      doorman::log::Warn("controller", "the API server is reached over plain http: the bearer token is sent in cleartext",
                         {{"server", kube_config->server}, {"source", kube_config->origin}});
    }
    if (kube_config->insecure_skip_tls_verify) {
      doorman::log::Warn("controller", "insecure-skip-tls-verify: the API server's certificate is not checked",
                         {{"server", kube_config->server}, {"source", kube_config->origin}});
    }
    if (legacy_class_shared) {
      doorman::log::Warn("controller",
                         "--controller-class is changed but --ingress-class is still \"doorman\": Ingresses with the "
                         "legacy annotation kubernetes.io/ingress.class: doorman are claimed by this install and by a "
                         "default one; give this install its own --ingress-class (docs/operations.md, several installs)",
                         {{"controller_class", controller_class}});
    }
  } else {
    std::error_code ec;
    if (!std::filesystem::exists(manifests, ec)) Fail(2, "--manifests " + manifests + ": no such file or directory");
  }
  const char* pod_name_env = std::getenv("POD_NAME");
  const std::string identity = !pod_name.empty()                          ? pod_name
                               : pod_name_env != nullptr && *pod_name_env ? std::string(pod_name_env)
                                                                          : Hostname() + "_" + std::to_string(getpid());

  // Signals are taken by sigwait() in this thread only; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);  // logged and ignored: a closed terminal does not end the controller
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  doorman::log::StartAsync();  // no thread waits for a stalled stderr reader from here on

  auto registry = std::make_shared<prometheus::Registry>();
  dc::ControllerMetrics metrics(registry);
  auto& leader_gauge = prometheus::BuildGauge()
                           .Name("doorman_controller_leader")
                           .Help("1 while this replica writes status and Events (the Lease holder, or always "
                                 "without --leader-elect), else 0.")
                           .Register(*registry)
                           .Add({});
  dc::RoutingServer server(dc::PublisherOptions{}, &metrics);
  Published published;
  dc::TranslateOptions translate_options;
  translate_options.default_lb_class = default_lb_class;
  if (!ingress_class.empty()) translate_options.ingress_class = ingress_class;
  translate_options.ingress_controller = controller_class;
  translate_options.load_balancer_class = load_balancer_class;
  translate_options.ingress_http_port = static_cast<uint32_t>(ingress_http_port);
  translate_options.ingress_https_port = static_cast<uint32_t>(ingress_https_port);
  translate_options.ingress_trusted_proxies = trusted_proxies;
  translate_options.ingress_proxy_protocol = ingress_proxy_protocol;
  translate_options.ingress_default_certificate = ingress_default_certificate;
  translate_options.only_tls_secrets_watched = kube_mode;  // controller/kube/resources.cc: the Secret field selector
  translate_options.refuse_node_local_endpoints = kube_mode && !allow_node_local_endpoints;
  translate_options.allow_cross_namespace_hosts = allow_cross_namespace_hosts;
  // Standalone: no API server validates the files, so the CRD's schema is applied here.
  static nlohmann::json lb_schema;
  if (!kube_mode) {
    try {
      lb_schema = dc::CrdSchema(dc::YamlToJson(dc::kLoadBalancerCrdYaml));
    } catch (const std::exception& e) {
      Fail(1, std::string("the built-in LoadBalancer CRD does not parse: ") + e.what());
    }
    if (!lb_schema.is_object()) Fail(1, "the built-in LoadBalancer CRD has no openAPIV3Schema");
    translate_options.loadbalancer_schema = &lb_schema;
    translate_options.check_known_fields = true;
    translate_options.report_unclaimed = true;
  }
  ControllerLoop loop(&server, &metrics, &published, translate_options);

  // ---- the source ----
  std::unique_ptr<dc::FileWatcher> watcher;
  dc::kube::KubeHttpPtr http;
  std::unique_ptr<dc::KubeSource> source;
  std::unique_ptr<dc::kube::LeaderRunner> leader;
  std::unique_ptr<dc::kube::StatusWriter> writer;
  std::unique_ptr<StatusLoop> status_loop;
  std::unique_ptr<dc::kube::ViewPublisher> views;
  std::unique_ptr<dc::kube::LastGoodLease> last_good;
  if (kube_mode) {
    dc::kube::HttpOptions http_options;
    http_options.user_agent = std::string(kProgram) + "/" + DOORMAN_VERSION + " (" + identity + ")";
    http = dc::kube::MakeKubeHttp(*kube_config, http_options);
    dc::kube::ReflectorOptions reflector_options;
    reflector_options.not_served_grace = std::chrono::milliseconds(kube_gone_after_ms);
    source = std::make_unique<dc::KubeSource>(
        http.get(), reflector_options,
        [&loop](std::vector<dc::KubeEvent> events) { loop.EnqueueKube(std::move(events)); },
        [&metrics](const std::string& resource, const std::string& type) { metrics.WatchEvent(resource, type); },
        watch_namespace, loadbalancer_selector);
    loop.UseKubeSource([&source] { return source->synced(); });
    if (leader_elect) {
      dc::kube::LeaderOptions lo;
      lo.identity = identity;
      lo.ns = !leader_elect_namespace.empty()            ? leader_elect_namespace
              : kube_config->origin == "in-cluster" && !kube_config->ns.empty() ? kube_config->ns
                                                                                 : "doorman-system";
      lo.name = leader_elect_id;
      lo.lease_duration = std::chrono::milliseconds(lease_duration_ms);
      lo.renew_deadline = std::chrono::milliseconds(renew_deadline_ms);
      lo.retry_period = std::chrono::milliseconds(retry_period_ms);
      views = std::make_unique<dc::kube::ViewPublisher>(http.get(), lo);
      last_good = std::make_unique<dc::kube::LastGoodLease>(http.get(), lo);
      loop.SetLastGoodSource([&last_good] { return last_good->Read(); });
      leader = std::make_unique<dc::kube::LeaderRunner>(http.get(), lo, [&leader_gauge](bool is_leader) {
        leader_gauge.Set(is_leader ? 1 : 0);
      });
    } else {
      leader_gauge.Set(1);
    }
    writer = std::make_unique<dc::kube::StatusWriter>(
        http.get(), [&source](const dc::ObjectKey& key) { return source->Get(key); }, identity);
    status_loop = std::make_unique<StatusLoop>(writer.get(), source.get(), &server, &published,
                                               [&leader] { return !leader || leader->IsLeader(); }, views.get(),
                                               last_good.get());
    loop.SetAfterBuild([&status_loop] { status_loop->Kick(); });
  } else {
    leader_gauge.Set(1);
    // The first snapshot, built synchronously before anything is served.
    watcher = std::make_unique<dc::FileWatcher>(manifests, kRescanInterval,
                                                [&loop](std::vector<dc::FileChange> c) { loop.Enqueue(std::move(c)); });
    std::vector<dc::FileChange> initial;
    std::string error;
    if (!watcher->Scan(&initial, &error)) Fail(2, error);
    loop.ApplyFiles(std::move(initial), false);
    loop.Build(dc::Clock::now());
  }

  std::string error;
  if (tls.enabled()) server.UseTls(tls);
  if (!server.Start(grpc_listen, &error)) Fail(1, "--grpc-listen: " + error);
  if (!tls.enabled() && !doorman::IsLoopbackHost(grpc_host)) {
    // The stream carries every HTTPS listener's private key, and a peer that says Hello is a
    // dataplane whose address goes into status: plaintext is for a trusted network only.
    doorman::log::Warn("controller",
                       "the routing stream is served without TLS on a non-loopback address: whoever can reach it "
                       "receives every TLS private key and can add addresses to status",
                       {{"grpc_listen", grpc_listen},
                        {"hint", "use --tls-cert, --tls-key and --tls-ca (deploy/mtls, or mtls.enabled in the Helm chart)"}});
  }
  std::atomic<bool> serving{true};
  AdminServer admin(registry, [&] {
    return serving.load() && server.version() != 0 && (!source || source->synced());
  });
  // gRPC 1.51 never reopens a listener an accept4 failure closed (common/grpc_log.h): no
  // dataplane could connect again, so the process says it needs a restart.
  admin.AllowRemoteHandlers(debug_remote);
  // doorman_controller_leader is the clock-based view at every scrape: the runner's own update
  // waits for its Lease request, which may hang for the whole request timeout while the API is
  // unresponsive (exactly when a leader-count alert matters).
  admin.SetBeforeMetrics([&leader, &leader_gauge] {
    if (leader) leader_gauge.Set(leader->IsLeader() ? 1 : 0);
  });
  admin.SetBroken([] {
    const std::string why = doorman::GrpcListenerFailure();
    return why.empty() ? why : "the gRPC server stopped accepting connections (" + why + ")";
  });
  admin.AddHandler("/debug/snapshot", [&published] {
    std::lock_guard<std::mutex> lock(published.mu);
    std::string body = "{\"version\":" + std::to_string(published.version) + ",\"snapshot\":" +
                       (published.snapshot ? dc::RedactedSnapshotJson(*published.snapshot) : "{}") + "}\n";
    return AdminServer::Response{200, "application/json", std::move(body)};
  });
  admin.AddHandler("/debug/status", [&published, &server, &source, &leader, &writer, &identity] {
    nlohmann::json out;
    // --manifests: no API server holds a .status, so each object shows the one a cluster would
    // hold, computed as the status writer does from this controller's dataplanes: Accepted and
    // Programmed conditions, listeners, addresses, loadBalancer.ingress.
    const auto dp_views = OwnDataplaneViews(server);
    const std::string now = dc::kube::FormatTime(std::chrono::system_clock::now());
    {
      std::lock_guard<std::mutex> lock(published.mu);
      out["version"] = published.version;
      out["objects"] = nlohmann::json::array();
      for (const auto& st : published.statuses) {
        out["objects"].push_back(StatusJson(st));
        if (source) continue;
        if (auto desired = doorman::controller::status::DesiredStatus(st, dp_views, published.served,
                                                                      nlohmann::json(nullptr), now)) {
          out["objects"].back()["status"] = std::move(*desired);
        }
      }
      out["manifestErrors"] = nlohmann::json::array();
      for (const auto& e : published.manifest_errors) out["manifestErrors"].push_back(e.ToString());
    }
    out["dataplanes"] = nlohmann::json::array();
    for (const auto& d : server.dataplanes()) {
      out["dataplanes"].push_back({{"node", d.node_name},
                                   {"zone", d.zone},
                                   {"advertiseAddress", d.advertise_address},
                                   {"ackedVersion", d.acked_version},
                                   {"inFlightVersion", d.in_flight_version},
                                   {"rejectedVersion", d.rejected_version},
                                   {"lastError", d.last_error},
                                   {"unservedListeners", d.unserved_listeners}});
    }
    if (source) {
      out["kubernetes"] = {{"synced", source->synced()},
                           {"pending", source->pending()},
                           {"identity", identity},
                           {"leader", !leader || leader->IsLeader()}};
    }
    // replace: a string that is not UTF-8 (none should get here: manifests and API objects are
    // checked) must not make the encoder throw out of the admin thread.
    return AdminServer::Response{200, "application/json",
                                 out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"};
  });
  if (!admin.Start(metrics_listen, &error)) Fail(1, "--metrics-listen: " + error);
  if (watcher && !watcher->Start(&error)) Fail(1, "watching " + manifests + ": " + error);
  std::thread loop_thread([&loop] { loop.Run(); });
  std::thread status_thread;
  if (source) {
    source->Start();
    if (leader) leader->Start();
    status_thread = std::thread([&status_loop] { status_loop->Run(); });
    doorman::log::Info("controller", "started",
                       {{"kubernetes", kube_config->origin},
                        {"server", kube_config->server},
                        {"namespaces", watch_namespace.empty() ? "all" : watch_namespace},
                        {"identity", identity},
                        {"grpc_port", std::to_string(server.port())},
                        {"grpc_tls", tls.enabled() ? "mtls" : "off"},
                        {"metrics_port", std::to_string(admin.port())},
                        {"open_files", std::to_string(open_files)}});
  } else {
    doorman::log::Info("controller", "started",
                       {{"manifests", manifests},
                        {"grpc_port", std::to_string(server.port())},
                        {"grpc_tls", tls.enabled() ? "mtls" : "off"},
                        {"metrics_port", std::to_string(admin.port())},
                        {"open_files", std::to_string(open_files)},
                        {"version", std::to_string(server.version())}});
  }

  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    doorman::log::Warn("controller", "SIGHUP ignored: the controller follows the API server (or --manifests) itself; SIGTERM stops it");
  }
  doorman::log::Info("controller", "shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  serving = false;
  // Bounded even when the API server accepts connections but never answers: stop the status and
  // election loops, abort every API request in flight (status writes, lists, watches, a renewal),
  // then give the lease release and the view delete kShutdownRequestDeadline each; after
  // kShutdownBudget whatever is left is cancelled.
  if (status_loop) status_loop->Stop();
  if (leader) leader->RequestStop();
  if (source) source->RequestStop();
  if (http) http->BeginShutdown(kShutdownRequestDeadline, kShutdownBudget);
  if (status_thread.joinable()) status_thread.join();
  if (leader) leader->Stop();  // releases the Lease so a follower takes over at once
  if (views) views->Stop();    // then deletes this replica's dataplane view Lease
  if (source) source->Stop();
  if (watcher) watcher->Stop();
  loop.Stop();
  loop_thread.join();
  server.Stop();
  admin.Stop();
  doorman::log::Info("controller", "stopped");
  return 0;
}
