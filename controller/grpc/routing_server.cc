#include "controller/grpc/routing_server.h"

#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>

#include "common/flags.h"
#include "common/grpc_tls.h"
#include "common/log.h"
#include "common/log_throttle.h"
#include "controller/metrics/metrics.h"
#include "doorman/v1/routing.grpc.pb.h"

namespace doorman::controller {
namespace {

namespace v1 = doorman::v1;

// A stream that ends before a valid Hello is logged at most once a minute, with the repeats
// counted: a peer that opens and resets streams in a loop (HTTP/2 "rapid reset") must not turn
// each one into a log line.
void NoStreamWithoutHello(const std::string& peer) {
  static auto* mu = new std::mutex;  // never destroyed: gRPC threads may run during exit
  static auto* throttle = new log::Throttle(std::chrono::minutes(1));
  uint64_t repeated = 0;
  {
    std::lock_guard<std::mutex> lock(*mu);
    if (!throttle->Allow("no-hello", log::Throttle::Clock::now(), &repeated)) return;
  }
  static constexpr const char* kMessage = "dataplane stream ended before a valid Hello (unparseable message or early close)";
  if (repeated == 0) {
    log::Warn("grpc", kMessage, {{"peer", peer}});
  } else {
    log::Warn("grpc", kMessage, {{"peer", peer}, {"repeated", std::to_string(repeated)}});
  }
}
class StreamReactor;

}  // namespace

struct RoutingServer::Impl {
  std::mutex mu;
  std::condition_variable streams_gone;
  Publisher publisher;
  ControllerMetrics* metrics;
  std::map<StreamId, StreamReactor*> reactors;  // guarded by mu
  std::unique_ptr<grpc::Service> service;  // declared first: must outlive the server
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  bool stopped = false;
  TlsFiles tls;  // mTLS when enabled(), else plaintext

  Impl(PublisherOptions o, ControllerMetrics* m) : publisher(o), metrics(m) {}

  StreamId Open(StreamReactor* r);
  // Returns the INVALID_ARGUMENT message when the stream must be closed.
  std::optional<std::string> OnMessage(StreamId id, const v1::DataplaneMessage& msg);
  void Close(StreamId id);
  // Requires mu. Sends pushes and records metrics; returns the diagnostics to log (after unlock).
  std::vector<Diagnostic> Apply(PublisherOutput out);
};

namespace {

// One dataplane stream. Writes are queued (at most a couple: the publisher keeps one update in
// flight) and started one at a time; Finish waits for the outstanding write. Deleted in OnDone.
class StreamReactor final : public grpc::ServerBidiReactor<v1::DataplaneMessage, v1::ControllerMessage> {
 public:
  StreamReactor(RoutingServer::Impl* hub, std::string peer) : hub_(hub), peer_(std::move(peer)) {
    id_ = hub_->Open(this);
    StartRead(&in_);
  }

  const std::string& peer() const { return peer_; }

  // Called with the hub's lock held (so OnDone cannot run concurrently: it takes that lock).
  void Send(v1::ControllerMessage msg) {
    const v1::ControllerMessage* start = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finishing_) return;
      queue_.push_back(std::move(msg));
      if (!writing_) {
        writing_ = true;
        start = &queue_.front();
      }
    }
    if (start) StartWrite(start);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the dataplane closed its side, the connection broke, or the server stops
      hub_->Close(id_);
      if (!got_hello_) {
        // Nothing valid arrived: a frame that is not a DataplaneMessage (gRPC reports a message
        // it cannot parse like the end of the stream), or a peer that left before its Hello.
        NoStreamWithoutHello(peer_);
        FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message must be a valid Hello"));
        return;
      }
      // A dataplane keeps its stream open while it runs and cancels it to leave; a read that
      // ends without a cancel is a half-close or, again, a frame gRPC could not parse. Which one
      // is known only in OnDone (a cancel may be reported after the failed read).
      ended_after_hello_ = true;
      FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "the routing stream stays open while the dataplane runs (it was half-closed, "
                              "or a message could not be parsed)"));
      return;
    }
    if (auto close = hub_->OnMessage(id_, in_)) {
      hub_->Close(id_);
      FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, *close));
      return;
    }
    got_hello_ = true;  // OnMessage closes a stream whose first message is not a Hello
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    const v1::ControllerMessage* next = nullptr;
    std::optional<grpc::Status> finish;
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.pop_front();
      if (ok && !queue_.empty() && !finishing_) {
        next = &queue_.front();
      } else {
        writing_ = false;
        if (!ok) log::Debug("grpc", "write failed, stream is going away", {{"peer", peer_}});
        if (finish_pending_) {
          finish = finish_status_;
          finish_pending_ = false;
        }
      }
    }
    if (next) StartWrite(next);
    if (finish) Finish(*finish);
  }

  // The dataplane cancelled (it stops or reconnects), its connection broke, or the server stops.
  void OnCancel() override { cancelled_.store(true); }

  void OnDone() override {
    if (ended_after_hello_ && !cancelled_.load()) {
      log::Warn("grpc", "dataplane stream ended without a cancel (half-close or an unparseable message)",
                {{"peer", peer_}});
    }
    hub_->Close(id_);
    delete this;
  }

 private:
  void FinishOnce(grpc::Status status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finishing_) return;
      finishing_ = true;
      if (writing_) {  // finish after the outstanding write completes
        finish_pending_ = true;
        finish_status_ = std::move(status);
        return;
      }
    }
    Finish(status);
  }

  RoutingServer::Impl* hub_;
  std::string peer_;
  StreamId id_ = 0;
  bool got_hello_ = false;  // touched by the reactor's reads only (one at a time)
  bool ended_after_hello_ = false;  // set by the last read, before Finish; read in OnDone
  std::atomic<bool> cancelled_{false};  // OnCancel ran (always before OnDone)
  v1::DataplaneMessage in_;
  std::mutex mu_;
  std::deque<v1::ControllerMessage> queue_;  // front = the write in progress
  bool writing_ = false;
  bool finishing_ = false;
  bool finish_pending_ = false;
  grpc::Status finish_status_;
};

class Service final : public v1::RoutingState::CallbackService {
 public:
  explicit Service(RoutingServer::Impl* hub) : hub_(hub) {}
  grpc::ServerBidiReactor<v1::DataplaneMessage, v1::ControllerMessage>* StreamRoutingState(
      grpc::CallbackServerContext* ctx) override {
    return new StreamReactor(hub_, ctx->peer());
  }

 private:
  RoutingServer::Impl* hub_;
};

}  // namespace

StreamId RoutingServer::Impl::Open(StreamReactor* r) {
  std::lock_guard<std::mutex> lock(mu);
  const StreamId id = publisher.OpenStream(Clock::now());
  reactors[id] = r;
  return id;
}

std::optional<std::string> RoutingServer::Impl::OnMessage(StreamId id, const v1::DataplaneMessage& msg) {
  std::vector<Diagnostic> logs;
  std::optional<std::string> close;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto r = reactors.find(id);
    if (r == reactors.end()) return std::nullopt;
    PublisherOutput out = publisher.OnMessage(id, msg, Clock::now());
    close = out.close_invalid_argument;
    if (msg.kind_case() == v1::DataplaneMessage::kHello) {
      // Where the stream comes from: a dataplane's advertised address goes into status, so an
      // operator can tell a peer that is not a node (docs/operations.md, "Security notes").
      for (auto& d : out.diagnostics) d.fields.emplace_back("peer", r->second->peer());
    }
    logs = Apply(std::move(out));
  }
  EmitAll(logs);
  return close;
}

void RoutingServer::Impl::Close(StreamId id) {
  std::vector<Diagnostic> logs;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!reactors.erase(id)) return;
    logs = publisher.CloseStream(id);
    if (metrics) metrics->SetDataplanesConnected(publisher.connected());
    if (reactors.empty()) streams_gone.notify_all();
  }
  EmitAll(logs);
}

std::vector<Diagnostic> RoutingServer::Impl::Apply(PublisherOutput out) {
  for (auto& p : out.pushes) {
    auto it = reactors.find(p.stream);
    if (it == reactors.end()) continue;
    v1::ControllerMessage msg;
    auto* u = msg.mutable_update();
    u->set_version(p.version);
    u->set_nonce(p.nonce);
    *u->mutable_snapshot() = *p.snapshot;
    it->second->Send(std::move(msg));
  }
  if (metrics) {
    for (double s : out.push_seconds) metrics->ObservePushSeconds(s);
    metrics->SetDataplanesConnected(publisher.connected());
  }
  return std::move(out.diagnostics);
}

RoutingServer::RoutingServer(PublisherOptions options, ControllerMetrics* metrics)
    : impl_(std::make_unique<Impl>(options, metrics)) {}

RoutingServer::~RoutingServer() { Stop(); }

void RoutingServer::UseTls(TlsFiles files) { impl_->tls = std::move(files); }

namespace {

// Why `host`:`port` cannot be listened on, or "". gRPC reports a failed bind as a multi-line
// error dump before the one clear line the controller exits with (API.md §2): tried here first,
// as gRPC binds (SO_REUSEADDR), so the reason is the only line. gRPC still decides: a race with
// another process only brings its dump back.
std::string BindProblem(const std::string& host, uint16_t port) {
  if (port == 0) return "";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // Numeric hosts only: a name may resolve to several addresses, of which gRPC needs one.
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res) != 0 || res == nullptr) {
    return "";  // gRPC resolves it its own way and says what it finds
  }
  std::string problem;
  const int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
  if (fd >= 0) {
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 1) != 0) problem = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return problem;
}

}  // namespace

bool RoutingServer::Start(const std::string& listen, std::string* error) {
  std::string host;
  uint16_t port = 0;
  if (!SplitHostPort(listen, &host, &port)) {
    *error = "invalid listen address \"" + listen + "\" (want host:port)";
    return false;
  }
  const std::string addr = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  if (const std::string problem = BindProblem(host, port); !problem.empty()) {
    *error = "cannot listen on " + addr + ": " + problem;
    return false;
  }
  impl_->service = std::make_unique<Service>(impl_.get());
  grpc::ServerBuilder builder;
  int selected = 0;
  builder.AddListeningPort(addr, MakeServerCredentials(impl_->tls), &selected);
  builder.RegisterService(impl_->service.get());
  // Notice dead dataplanes (a node that vanished) within about a minute.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Not only 2 PINGs per idle stream (gRPC's default), or an idle dataplane that vanished is
  // never noticed.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // A dataplane's --controller-keepalive may be as short as 1 s.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1'000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  // One controller per address: gRPC's default SO_REUSEPORT would let a second one (or any
  // process) share the port silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // A dataplane uses one stream per connection: a peer multiplexing many (each a Hello counted
  // as a dataplane, or a reset flood) is held to a few.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 8);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || selected == 0) {
    *error = "cannot listen on " + addr + " (address in use or not available)";
    impl_->server.reset();
    return false;
  }
  impl_->port = selected;
  return true;
}

int RoutingServer::port() const { return impl_->port; }

void RoutingServer::Stop() {
  if (!impl_->server || impl_->stopped) return;
  impl_->stopped = true;
  // Streams are open-ended, so there is nothing to drain: cancel them now (dataplanes keep
  // serving their state and reconnect to another replica).
  impl_->server->Shutdown(std::chrono::system_clock::now());
  // Reactors are deleted in OnDone, which may run just after Shutdown returns.
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->streams_gone.wait_for(lock, std::chrono::seconds(2), [this] { return impl_->reactors.empty(); });
  lock.unlock();
  impl_->server->Wait();
}

void RoutingServer::NotifyChange(TimePoint now) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->publisher.NotifyChange(now);
}

std::optional<TimePoint> RoutingServer::NextDeadline() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->publisher.NextDeadline();
}

std::optional<TimePoint> RoutingServer::TakeDue(TimePoint now) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->publisher.TakeDue(now);
}

void RoutingServer::Publish(uint64_t version, std::shared_ptr<const v1::Snapshot> snapshot, TimePoint change_seen) {
  std::vector<Diagnostic> logs;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    logs = impl_->Apply(impl_->publisher.Publish(version, std::move(snapshot), change_seen));
    if (impl_->metrics) impl_->metrics->SetSnapshotVersion(impl_->publisher.version());
  }
  EmitAll(logs);
}

uint64_t RoutingServer::version() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->publisher.version();
}

std::vector<DataplaneInfo> RoutingServer::dataplanes() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->publisher.dataplanes();
}

}  // namespace doorman::controller
