// Owns the listening sockets: for every served listener, one SO_REUSEPORT acceptor per worker.
// Apply is two-phase so a snapshot switches make-before-break:
//   Prepare(next): close the acceptors of listeners that are gone (so a port can change hands
//                  between protocols), bind + listen the new ones (not accepting yet);
//   (caller stores the new RuntimeConfig)
//   Commit():      start accepting on the newly bound listeners.
// Listeners present in both configs keep their sockets untouched; established connections are
// never closed by an update. A port that cannot be bound is reported as a warning for the ACK
// (the rest of the snapshot is still served) and retried at the next update.
// Prepare/Commit/CloseAll are called by one thread at a time (the apply mutex); Status() from any.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/config/runtime_config.h"
#include "dataplane/l4/udp_proxy.h"
#include "dataplane/server/asio_types.h"

namespace doorman::dataplane {

class Worker;

struct ListenerStatus {
  std::string name;
  uint16_t port = 0;
  bool accepting = false;
};

class ListenerManager {
 public:
  // `balance`: hand accepted connections to the worker serving the fewest (--connection-balance).
  ListenerManager(std::vector<std::unique_ptr<Worker>>& workers, net::ip::address bind_address, bool balance);
  ~ListenerManager();

  // The tail of a listener's bind-failure warning ("listener \"tcp-80\": <error>" + this).
  static constexpr std::string_view kNotServedRetried = "; not served (retried every 2 s and on the next update)";
  // `quiet`: a bind failure is not logged (a periodic retry; the first failure was).
  std::vector<std::string> Prepare(const RuntimeConfig& next, bool quiet = false);
  void Commit();
  void CloseAll();
  std::vector<ListenerStatus> Status() const;
  // Listeners of `config` this build serves that have no socket (their port could not be bound).
  std::vector<std::string> Unbound(const RuntimeConfig& config) const;

 private:
  struct Bound {
    uint16_t port = 0;
    Protocol protocol = Protocol::kTcp;
    std::vector<std::shared_ptr<Acceptor>> acceptors;  // index = worker
    std::vector<std::shared_ptr<UdpSocket>> udp_sockets;  // UDP listeners: index = worker
    bool accepting = false;
  };

  bool Bind(const Listener& l, Bound* out, std::string* error);
  bool BindUdp(const Listener& l, Bound* out, std::string* error);
  void Close(Bound& b);

  std::vector<std::unique_ptr<Worker>>& workers_;
  net::ip::address bind_address_;
  bool balance_;
  mutable std::mutex mu_;
  std::map<std::string, Bound> bound_;
};

}  // namespace doorman::dataplane
