#include "dataplane/config/subscriber.h"

#include "common/grpc_limits.h"

#include <algorithm>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <random>

#include "common/grpc_tls.h"
#include "common/log.h"
#include "dataplane/config/backoff.h"
#include "doorman/v1/routing.grpc.pb.h"

namespace doorman::dataplane {

namespace {
constexpr std::chrono::seconds kHealthyStream{10};
}  // namespace

Subscriber::Subscriber(SubscriberOptions options, ApplyFn apply, VersionFn applied_version, ListenersFn listeners)
    : opts_(std::move(options)),
      apply_(std::move(apply)),
      applied_version_(std::move(applied_version)),
      args_(std::make_unique<grpc::ChannelArguments>()),
      listeners_(std::move(listeners)) {
  args_->SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(opts_.keepalive_ms));
  args_->SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(std::max<int64_t>(1'000, opts_.keepalive_ms / 3)));
  args_->SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // gRPC stops pinging after 2 PINGs with no data in between (its default): a stream idle since
  // then would never notice a controller that froze or a partition without a reset, and would
  // serve the last state for good (helper-126). 0 = no limit; the controller accepts them.
  args_->SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args_->SetMaxReceiveMessageSize(static_cast<int>(kMaxStateUpdateBytes));
  credentials_ = MakeChannelCredentials(opts_.tls, args_.get());
}

Subscriber::~Subscriber() { Stop(); }

void Subscriber::Start() {
  thread_ = std::thread([this] { Loop(); });
  if (listeners_) reporter_ = std::thread([this] { ReporterLoop(); });
}

void Subscriber::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (active_ != nullptr) active_->TryCancel();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (reporter_.joinable()) reporter_.join();  // a write it waited on ended with the cancel
}

void Subscriber::ReportListeners() {
  if (!listeners_) return;
  {
    std::lock_guard lock(mu_);
    report_pending_ = true;
  }
  cv_.notify_all();
}

void Subscriber::ReporterLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || report_pending_; });
    if (stopping_) return;
    report_pending_ = false;
    lock.unlock();
    SendListenerReport();
    lock.lock();
  }
}

void Subscriber::SendListenerReport() {
  std::lock_guard lock(write_mu_);
  if (!write_ || acked_on_stream_ == 0) return;
  const ListenerState now = listeners_();
  if (now.version != acked_on_stream_) return;
  doorman::v1::DataplaneMessage msg;
  auto* report = msg.mutable_listener_report();
  report->set_version(now.version);
  for (const auto& l : now.unserved) report->add_unserved_listeners(l);
  // A failed write ends the stream: the reader sees it, and the reconnect's ACK lists them.
  write_(msg);
}

void Subscriber::Loop() {
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  int failures = 0;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    // Only a stream that stayed up a while resets the backoff: a controller that accepts and
    // drops streams at once must not be hammered with reconnects.
    const auto began = std::chrono::steady_clock::now();
    if (RunStream() && std::chrono::steady_clock::now() - began >= kHealthyStream) failures = 0;
    const auto delay = Backoff::Delay(failures++, unit(rng));
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, delay, [this] { return stopping_; })) return;
  }
}

bool Subscriber::RunStream() {
  auto channel = grpc::CreateCustomChannel(opts_.controller, credentials_, *args_);
  auto stub = doorman::v1::RoutingState::NewStub(channel);
  grpc::ClientContext ctx;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    active_ = &ctx;
  }
  auto stream = stub->StreamRoutingState(&ctx);

  doorman::v1::DataplaneMessage hello;
  auto* h = hello.mutable_hello();
  h->set_node_name(opts_.node_name);
  h->set_zone(opts_.zone);
  h->set_advertise_address(opts_.advertise_address);
  h->set_last_applied_version(applied_version_());
  h->set_build_version(DOORMAN_VERSION);

  bool got_update = false;
  bool write_failed = false;
  {
    std::lock_guard lock(write_mu_);
    write_ = [&stream](const doorman::v1::DataplaneMessage& m) { return stream->Write(m); };
    acked_on_stream_ = 0;
    write_failed = !write_(hello);
  }
  doorman::v1::ControllerMessage msg;
  while (!write_failed && stream->Read(&msg)) {
    if (!msg.has_update()) continue;
    const auto& u = msg.update();
    if (!got_update) {
      log::Info("subscriber", "connected to controller",
                {{"controller", opts_.controller}, {"tls", opts_.tls.enabled() ? "mtls" : "off"}});
      last_failure_.clear();
    }
    got_update = true;
    const ApplyResult r = apply_(u);
    std::lock_guard lock(write_mu_);
    doorman::v1::DataplaneMessage reply;
    if (r.ok) {
      auto* ack = reply.mutable_ack();
      ack->set_version(u.version());
      ack->set_nonce(u.nonce());
      for (const auto& w : r.warnings) ack->add_warnings(w);
      // What is open now: a retry may have opened a listener since `apply` (its report, sent
      // before this ACK, was not for the ACKed version and so was not sent).
      ListenerState now;
      if (listeners_) now = listeners_();
      const auto& unserved = listeners_ && now.version == u.version() ? now.unserved : r.unserved_listeners;
      for (const auto& l : unserved) ack->add_unserved_listeners(l);
    } else {
      auto* nack = reply.mutable_nack();
      nack->set_version(r.serving_version);
      nack->set_nonce(u.nonce());
      nack->set_rejected_version(u.version());
      nack->set_error_detail(r.error);
    }
    write_failed = !write_(reply);
    if (!write_failed && r.ok) acked_on_stream_ = u.version();
  }
  {
    std::lock_guard lock(write_mu_);
    write_ = nullptr;
  }
  if (write_failed) ctx.TryCancel();
  const grpc::Status status = stream->Finish();
  {
    std::lock_guard lock(mu_);
    active_ = nullptr;
    if (stopping_) return got_update;
  }
  if (got_update) {
    log::Warn("subscriber", "controller stream ended; reconnecting",
              {{"controller", opts_.controller}, {"code", std::to_string(status.error_code())}, {"error", status.error_message()}});
  } else {
    // The first failure, and every change of reason, at warn (a refused certificate must be
    // visible at the default level); the same failure again only at debug.
    const std::string failure = std::to_string(status.error_code()) + " " + status.error_message();
    const bool repeat = failure == last_failure_;
    last_failure_ = failure;
    const std::string_view hint = TlsConnectHint(opts_.tls.enabled(), status.error_message());
    const log::Level level = repeat ? log::Level::kDebug : log::Level::kWarn;
    const std::string code = std::to_string(status.error_code());
    if (log::Enabled(level) && hint.empty()) {
      log::Write(level, "subscriber", "cannot reach controller; retrying",
                 {{"controller", opts_.controller}, {"code", code}, {"error", status.error_message()}});
    } else if (log::Enabled(level)) {
      log::Write(level, "subscriber", "cannot reach controller; retrying",
                 {{"controller", opts_.controller}, {"code", code}, {"error", status.error_message()},
                  {"hint", std::string(hint)}});
    }
  }
  return got_update;
}

}  // namespace doorman::dataplane
