// The publisher: when to build a snapshot, and what to send to which dataplane. Pure state
// machine on injected time (no threads, no clock reads, no gRPC): the gRPC layer feeds it
// stream messages and performs the pushes it returns.
//
// * Holdoff: change notifications are batched; a build is due `holdoff` after the latest
//   change, but never later than `max_delay` after the first pending one (a continuous stream of
//   changes still publishes).
// * Versions: Publish() with an unchanged version does nothing.
// * Per stream: the first message must be a Hello; at most one push in flight (nonce); after an
//   ACK/NACK the newest version is sent if it differs from what the dataplane has ACKed or just
//   rejected. A NACKed version is never re-sent. ACK warnings are logged once per version.
// * Bookkeeping: which version each dataplane ACKed (for a later Programmed condition) and the
//   push latency (change seen → ACK) for the doorman_controller_push_seconds histogram.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "controller/model/diagnostic.h"
#include "doorman/v1/routing.pb.h"

namespace doorman::controller {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

struct PublisherOptions {
  std::chrono::milliseconds holdoff{100};     // quiet time after the latest change
  std::chrono::milliseconds max_delay{1000};  // upper bound after the first pending change
};

using StreamId = uint64_t;

struct Push {
  StreamId stream = 0;
  uint64_t version = 0;
  std::string nonce;
  std::shared_ptr<const doorman::v1::Snapshot> snapshot;
};

struct PublisherOutput {
  std::vector<Push> pushes;
  std::vector<Diagnostic> diagnostics;
  std::vector<double> push_seconds;  // one per ACK of a new version
  // Set when the stream must be closed (protocol violation); the gRPC status message.
  std::optional<std::string> close_invalid_argument;
};

struct DataplaneInfo {
  StreamId stream = 0;
  std::string node_name;
  std::string zone;
  std::string advertise_address;
  uint64_t acked_version = 0;      // last version this dataplane ACKed on this stream
  uint64_t in_flight_version = 0;  // 0 = nothing in flight
  uint64_t rejected_version = 0;   // last NACKed version
  std::string last_error;          // its error detail
  std::vector<std::string> unserved_listeners;  // of acked_version: listeners it could not open
};

class Publisher {
 public:
  explicit Publisher(PublisherOptions options = {});

  // ---- holdoff ----
  void NotifyChange(TimePoint now);
  // When the next build is due (nullopt: nothing pending).
  std::optional<TimePoint> NextDeadline() const;
  // If a build is due at `now`: clears the pending state and returns when the first pending
  // change was seen (to be passed to Publish).
  std::optional<TimePoint> TakeDue(TimePoint now);

  // ---- versions ----
  // Makes `version` current and returns pushes for streams that are idle. Does nothing when
  // `version` is already current.
  PublisherOutput Publish(uint64_t version, std::shared_ptr<const doorman::v1::Snapshot> snapshot,
                          TimePoint change_seen);
  uint64_t version() const { return version_; }
  std::shared_ptr<const doorman::v1::Snapshot> snapshot() const { return snapshot_; }

  // ---- streams ----
  StreamId OpenStream(TimePoint now);
  PublisherOutput OnMessage(StreamId id, const doorman::v1::DataplaneMessage& msg, TimePoint now);
  std::vector<Diagnostic> CloseStream(StreamId id);
  // Streams that said Hello.
  size_t connected() const;
  std::vector<DataplaneInfo> dataplanes() const;

 private:
  struct InFlight {
    uint64_t version = 0;
    std::string nonce;
    TimePoint change_seen;
  };
  struct Stream {
    bool hello = false;
    TimePoint opened;
    DataplaneInfo info;
    std::optional<InFlight> in_flight;
    uint64_t next_nonce = 1;
    std::set<std::string> warnings;  // what its latest ACK warned (logged again only when new)
    // Ignored messages (a second Hello, an ACK/NACK with an unknown nonce): the first is logged,
    // then at most one a minute with the count of those not logged, so a peer cannot flood the
    // log (helper-126: 100,000 made-up ACKs were 100,000 lines).
    std::optional<TimePoint> ignored_logged_at;
    uint64_t ignored_unlogged = 0;
  };
  void MaybePush(StreamId id, Stream& s, PublisherOutput& out);

  PublisherOptions options_;
  std::optional<TimePoint> first_pending_;
  std::optional<TimePoint> last_pending_;
  uint64_t version_ = 0;
  std::shared_ptr<const doorman::v1::Snapshot> snapshot_;
  TimePoint change_seen_{};
  StreamId next_stream_ = 1;
  std::map<StreamId, Stream> streams_;
  std::set<std::pair<uint64_t, std::string>> warned_;  // (version, warning) already logged
};

}  // namespace doorman::controller
