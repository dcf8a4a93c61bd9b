// The RoutingState gRPC server: one bidirectional stream per dataplane, driven by the pure
// Publisher. Thread-safe. No gRPC headers here (pimpl): main.cc stays cheap to compile.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/tls_flags.h"
#include "controller/publish/publisher.h"

namespace doorman::controller {

class ControllerMetrics;

class RoutingServer {
 public:
  RoutingServer(PublisherOptions options, ControllerMetrics* metrics);
  ~RoutingServer();
  RoutingServer(const RoutingServer&) = delete;
  RoutingServer& operator=(const RoutingServer&) = delete;

  // Before Start: serve mTLS with these files (checked by CheckTlsFiles) instead of plaintext;
  // every dataplane must then present a certificate signed by files.ca.
  void UseTls(TlsFiles files);
  // Binds `listen` ("host:port", ":port", "[v6]:port"; port 0 picks one) and serves.
  bool Start(const std::string& listen, std::string* error);
  int port() const;
  // Cancels every stream and stops serving (idempotent).
  void Stop();

  // The publisher, under the server's lock.
  void NotifyChange(TimePoint now);
  std::optional<TimePoint> NextDeadline();
  std::optional<TimePoint> TakeDue(TimePoint now);
  void Publish(uint64_t version, std::shared_ptr<const doorman::v1::Snapshot> snapshot, TimePoint change_seen);
  uint64_t version();
  std::vector<DataplaneInfo> dataplanes();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace doorman::controller
