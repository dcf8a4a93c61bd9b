// The dataplane side of the routing-state stream (api/doorman/v1/routing.proto). Runs on its own
// thread with gRPC's synchronous API: connect, send Hello (node name, last applied version),
// then for every StateUpdate call `apply` and answer ACK (with warnings) or NACK (with the still
// served version and the error). ReportListeners sends a ListenerReport when a listener of the
// ACKed version opened later (main's retry). On any stream end it reconnects with exponential backoff and
// jitter (Backoff, capped at 5 s). It never looks inside snapshots: compiling and swapping is
// the apply callback's job (Envoy's Subscription/SubscriptionCallbacks split).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/tls_flags.h"
#include "dataplane/config/apply_result.h"

namespace doorman::v1 {
class DataplaneMessage;
class StateUpdate;
}
namespace grpc {
class ChannelArguments;
class ChannelCredentials;
class ClientContext;
}  // namespace grpc

namespace doorman::dataplane {

struct SubscriberOptions {
  std::string controller;  // host:port
  std::string node_name;
  std::string zone;
  std::string advertise_address;
  TlsFiles tls;  // mTLS to the controller when tls.enabled() (files checked by CheckTlsFiles)
  // --controller-keepalive: an HTTP/2 PING this often, idle or not; a stream whose PING is not
  // answered within a third of it (at least 1 s) is dropped and reconnected.
  int64_t keepalive_ms = 30'000;
};

class Subscriber {
 public:
  using ApplyFn = std::function<ApplyResult(const doorman::v1::StateUpdate&)>;
  using VersionFn = std::function<uint64_t()>;
  // The applied version and its listeners that are not open now, read together (one lock).
  struct ListenerState {
    uint64_t version = 0;
    std::vector<std::string> unserved;
  };
  using ListenersFn = std::function<ListenerState()>;

  // `listeners` (optional) is read when an ACK is written, so the ACK lists what is open then
  // (a retry may have opened one since `apply`), and by ReportListeners.
  Subscriber(SubscriberOptions options, ApplyFn apply, VersionFn applied_version, ListenersFn listeners = nullptr);
  ~Subscriber();
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  void Start();
  void Stop();  // cancels the stream and joins the thread
  // Thread-safe, never waits for the stream: asks the subscriber's reporter thread to tell the
  // controller, on the open stream, which listeners of the version ACKed on it are not open now.
  // Nothing without a stream, before its first ACK, or when a newer version is applied but not
  // ACKed yet (its ACK will list them). Needs `listeners`.
  void ReportListeners();

 private:
  void Loop();
  void ReporterLoop();
  void SendListenerReport();  // on the reporter thread: may wait for the stream's flow control
  bool RunStream();  // one connection; true when at least one update was received

  SubscriberOptions opts_;
  ApplyFn apply_;
  VersionFn applied_version_;
  std::unique_ptr<grpc::ChannelArguments> args_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;  // one certificate watcher for all streams
  std::string last_failure_;  // the last connect failure logged at warn (repeats go to debug)
  std::thread thread_;
  std::thread reporter_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool report_pending_ = false;  // guarded by mu_
  grpc::ClientContext* active_ = nullptr;  // guarded by mu_
  ListenersFn listeners_;
  // Every write on the stream, and what was ACKed on it (gRPC allows one writer at a time).
  std::mutex write_mu_;
  std::function<bool(const doorman::v1::DataplaneMessage&)> write_;  // guarded by write_mu_; empty = no stream
  uint64_t acked_on_stream_ = 0;                                     // guarded by write_mu_
};

}  // namespace doorman::dataplane
