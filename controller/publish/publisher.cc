#include "controller/publish/publisher.h"

#include "common/address.h"
#include "common/grpc_limits.h"
#include "common/utf8.h"

#include <algorithm>

namespace doorman::controller {
namespace {

std::string V(uint64_t v) { return std::to_string(v); }

// Strings a dataplane sends are logged and shown on /debug: bounded, so a peer (a broken build,
// a snapshot error quoting a whole certificate) cannot put megabytes into one log line.
constexpr size_t kMaxPeerName = 256;      // node name, zone, address, build, listener
constexpr size_t kMaxPeerDetail = 4096;   // a NACK's error, an ACK warning
std::string Clip(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  return std::string(Utf8Prefix(s, max)) + "... (" + std::to_string(s.size()) + " bytes, truncated)";
}

Diagnostic D(log::Level level, std::string message, std::vector<std::pair<std::string, std::string>> fields) {
  return Diagnostic{level, "publish", std::move(message), std::move(fields)};
}

}  // namespace

Publisher::Publisher(PublisherOptions options) : options_(options) {}

void Publisher::NotifyChange(TimePoint now) {
  if (!first_pending_) first_pending_ = now;
  last_pending_ = now;
}

std::optional<TimePoint> Publisher::NextDeadline() const {
  if (!first_pending_) return std::nullopt;
  return std::min(*last_pending_ + options_.holdoff, *first_pending_ + options_.max_delay);
}

std::optional<TimePoint> Publisher::TakeDue(TimePoint now) {
  auto deadline = NextDeadline();
  if (!deadline || now < *deadline) return std::nullopt;
  const TimePoint first = *first_pending_;
  first_pending_.reset();
  last_pending_.reset();
  return first;
}

PublisherOutput Publisher::Publish(uint64_t version, std::shared_ptr<const doorman::v1::Snapshot> snapshot,
                                   TimePoint change_seen) {
  PublisherOutput out;
  if (version == version_ || version == 0 || !snapshot) return out;
  const uint64_t previous = version_;
  version_ = version;
  snapshot_ = std::move(snapshot);
  change_seen_ = change_seen;
  // Keep warnings of the versions still in play only.
  for (auto it = warned_.begin(); it != warned_.end();) {
    it = (it->first == version_ || it->first == previous) ? std::next(it) : warned_.erase(it);
  }
  if (const std::size_t bytes = snapshot_->ByteSizeLong(); bytes > kMaxStateUpdateBytes) {
    out.diagnostics.push_back(D(log::Level::kError, "snapshot larger than a dataplane accepts; dataplanes will keep their last state",
                                {{"version", V(version_)}, {"bytes", std::to_string(bytes)},
                                 {"limit", std::to_string(kMaxStateUpdateBytes)}}));
  }
  out.diagnostics.push_back(D(log::Level::kInfo, "publishing snapshot",
                              {{"version", V(version_)}, {"previous", V(previous)},
                               {"dataplanes", std::to_string(connected())}}));
  for (auto& [id, s] : streams_) MaybePush(id, s, out);
  return out;
}

StreamId Publisher::OpenStream(TimePoint now) {
  const StreamId id = next_stream_++;
  Stream& s = streams_[id];
  s.opened = now;
  s.info.stream = id;
  return id;
}

void Publisher::MaybePush(StreamId id, Stream& s, PublisherOutput& out) {
  if (!s.hello || s.in_flight || !snapshot_) return;
  if (version_ == s.info.acked_version || version_ == s.info.rejected_version) return;
  InFlight f{version_, V(id) + "-" + V(s.next_nonce++), std::max(change_seen_, s.opened)};
  out.pushes.push_back({id, version_, f.nonce, snapshot_});
  s.info.in_flight_version = version_;
  s.in_flight = std::move(f);
}

PublisherOutput Publisher::OnMessage(StreamId id, const doorman::v1::DataplaneMessage& msg, TimePoint now) {
  PublisherOutput out;
  auto it = streams_.find(id);
  if (it == streams_.end()) return out;
  Stream& s = it->second;
  const std::string node = s.info.node_name.empty() ? "stream-" + V(id) : s.info.node_name;

  if (!s.hello) {
    if (msg.kind_case() != doorman::v1::DataplaneMessage::kHello) {
      out.close_invalid_argument = "the first message on the stream must be a Hello";
      out.diagnostics.push_back(D(log::Level::kWarn, "closing stream: first message is not a Hello",
                                  {{"stream", V(id)}, {"kind", std::to_string(msg.kind_case())}}));
      return out;
    }
    const auto& h = msg.hello();
    s.hello = true;
    s.info.node_name = Clip(h.node_name(), kMaxPeerName);
    s.info.zone = Clip(h.zone(), kMaxPeerName);
    s.info.advertise_address = Clip(h.advertise_address(), kMaxPeerName);
    if (!s.info.advertise_address.empty() && !IsValidStatusAddress(s.info.advertise_address)) {
      // Written into status.loadBalancer.ingress it would make the API server refuse every
      // status write (422): the dataplane is served, its address is not published.
      out.diagnostics.push_back(D(log::Level::kWarn,
                                  "dataplane advertise address is neither an IP address nor a DNS name; not written into status",
                                  {{"node", Clip(h.node_name(), kMaxPeerName)}, {"address", s.info.advertise_address}}));
      s.info.advertise_address.clear();
    }
    if (!s.info.node_name.empty()) {
      for (const auto& [other_id, other] : streams_) {
        if (other_id == id || !other.hello || other.info.node_name != s.info.node_name) continue;
        // Status counts dataplanes per node name (and keeps one view per node): two under one name
        // hide each other's versions and addresses. A restarted dataplane whose old stream has
        // not closed yet looks the same for a moment; a lasting pair is a misconfiguration (or a
        // client that is not a dataplane).
        out.diagnostics.push_back(D(log::Level::kWarn,
                                    "two dataplanes connected with one node name; give each its own --node-name",
                                    {{"node", s.info.node_name}, {"stream", V(id)}, {"other_stream", V(other_id)},
                                     {"address", s.info.advertise_address},
                                     {"other_address", other.info.advertise_address}}));
        break;
      }
    }
    Diagnostic connected = D(log::Level::kInfo, "dataplane connected",
                             {{"node", s.info.node_name},
                              {"stream", V(id)},
                              {"last_applied_version", V(h.last_applied_version())},
                              {"build", Clip(h.build_version(), kMaxPeerName)},
                              {"address", s.info.advertise_address}});
    if (s.info.advertise_address.empty()) {
      // It serves, counts as ready, and adds no address: status.addresses and a Service's
      // EXTERNAL-IP would say <pending> with nothing else to tell why (helper-104).
      connected.fields.push_back({"hint", "no --advertise-address: status addresses do not list this dataplane"});
    }
    out.diagnostics.push_back(std::move(connected));
    // Sent even when last_applied_version == version_: the dataplane needs a nonce to ACK.
    MaybePush(id, s, out);
    return out;
  }

  auto ignored = [&](std::string message, std::vector<std::pair<std::string, std::string>> fields) {
    if (s.ignored_logged_at && now - *s.ignored_logged_at < std::chrono::minutes(1)) {
      ++s.ignored_unlogged;
      return;
    }
    if (s.ignored_unlogged > 0) fields.push_back({"not_logged_since_last", V(s.ignored_unlogged)});
    s.ignored_unlogged = 0;
    s.ignored_logged_at = now;
    out.diagnostics.push_back(D(log::Level::kWarn, std::move(message), std::move(fields)));
  };
  switch (msg.kind_case()) {
    case doorman::v1::DataplaneMessage::kHello:
      ignored("ignoring a second Hello on the stream", {{"node", node}, {"stream", V(id)}});
      break;
    case doorman::v1::DataplaneMessage::kAck: {
      const auto& a = msg.ack();
      if (!s.in_flight || a.nonce() != s.in_flight->nonce) {
        ignored("ignoring ACK with unknown nonce",
                {{"node", node}, {"nonce", Clip(a.nonce(), kMaxPeerName)}, {"version", V(a.version())}});
        break;
      }
      const InFlight f = *s.in_flight;
      s.in_flight.reset();
      s.info.in_flight_version = 0;
      if (a.version() != f.version) {
        // Garbage: treat like a rejection so the same version is not pushed again in a loop.
        out.diagnostics.push_back(D(log::Level::kWarn, "ACK names another version than the one sent; not re-sending it",
                                    {{"node", node}, {"nonce", a.nonce()}, {"version", V(a.version())},
                                     {"sent_version", V(f.version)}}));
        s.info.rejected_version = f.version;
        s.info.last_error = "ACK for version " + V(a.version()) + " with the nonce of version " + V(f.version);
      } else {
        s.info.acked_version = a.version();
        s.info.unserved_listeners.clear();
        for (const auto& l : a.unserved_listeners()) s.info.unserved_listeners.push_back(Clip(l, kMaxPeerName));
        out.push_seconds.push_back(std::chrono::duration<double>(now - f.change_seen).count());
        // A warning is logged when a dataplane first reports it (not again while its next ACKs
        // repeat it: helper-111 saw a listener that could not bind logged once per version), and
        // once per version however many dataplanes report it.
        std::set<std::string> reported;
        for (const auto& raw : a.warnings()) {
          std::string w = Clip(raw, kMaxPeerDetail);
          const bool is_new = !s.warnings.count(w);
          reported.insert(w);
          if (is_new && warned_.emplace(a.version(), w).second) {
            out.diagnostics.push_back(
                D(log::Level::kWarn, "dataplane warning", {{"node", node}, {"version", V(a.version())}, {"warning", std::move(w)}}));
          }
        }
        s.warnings = std::move(reported);
        out.diagnostics.push_back(
            D(log::Level::kDebug, "dataplane ACKed", {{"node", node}, {"version", V(a.version())}}));
      }
      MaybePush(id, s, out);
      break;
    }
    case doorman::v1::DataplaneMessage::kNack: {
      const auto& n = msg.nack();
      if (!s.in_flight || n.nonce() != s.in_flight->nonce) {
        ignored("ignoring NACK with unknown nonce", {{"node", node}, {"nonce", Clip(n.nonce(), kMaxPeerName)},
                                                       {"error", Clip(n.error_detail(), kMaxPeerDetail)}});
        break;
      }
      const InFlight f = *s.in_flight;
      s.in_flight.reset();
      s.info.in_flight_version = 0;
      s.info.rejected_version = f.version;
      s.info.last_error = Clip(n.error_detail(), kMaxPeerDetail);
      s.info.acked_version = n.version();  // what it still serves
      out.diagnostics.push_back(D(log::Level::kError, "dataplane rejected snapshot, it keeps its last good state",
                                  {{"node", node},
                                   {"rejected_version", V(f.version)},
                                   {"serving_version", V(n.version())},
                                   {"error", s.info.last_error}}));
      MaybePush(id, s, out);
      break;
    }
    case doorman::v1::DataplaneMessage::kListenerReport: {
      const auto& rep = msg.listener_report();
      if (rep.version() == 0 || rep.version() != s.info.acked_version) {
        // Another version (its ACK is still on the way, or it was refused): that ACK's list holds.
        out.diagnostics.push_back(D(log::Level::kDebug, "ignoring a listener report for a version not ACKed on the stream",
                                    {{"node", node}, {"version", V(rep.version())}, {"acked_version", V(s.info.acked_version)}}));
        break;
      }
      std::vector<std::string> unserved;
      std::string listed;
      for (const auto& l : rep.unserved_listeners()) {
        unserved.push_back(Clip(l, kMaxPeerName));
        listed += (listed.empty() ? "" : ",") + unserved.back();
      }
      if (unserved != s.info.unserved_listeners) {
        out.diagnostics.push_back(D(log::Level::kInfo, "dataplane listeners changed",
                                    {{"node", node}, {"version", V(rep.version())},
                                     {"unserved_listeners", listed.empty() ? "none" : listed}}));
        s.info.unserved_listeners = std::move(unserved);
      }
      break;
    }
    case doorman::v1::DataplaneMessage::KIND_NOT_SET:
      ignored("ignoring an empty message", {{"node", node}});
      break;
  }
  return out;
}

std::vector<Diagnostic> Publisher::CloseStream(StreamId id) {
  std::vector<Diagnostic> out;
  auto it = streams_.find(id);
  if (it == streams_.end()) return out;
  if (it->second.hello) {
    out.push_back(D(log::Level::kInfo, "dataplane disconnected",
                    {{"node", it->second.info.node_name}, {"stream", V(id)},
                     {"acked_version", V(it->second.info.acked_version)}}));
  }
  streams_.erase(it);
  return out;
}

size_t Publisher::connected() const {
  return static_cast<size_t>(std::count_if(streams_.begin(), streams_.end(), [](const auto& kv) { return kv.second.hello; }));
}

std::vector<DataplaneInfo> Publisher::dataplanes() const {
  std::vector<DataplaneInfo> out;
  for (const auto& [_, s] : streams_) {
    if (s.hello) out.push_back(s.info);
  }
  return out;
}

}  // namespace doorman::controller
