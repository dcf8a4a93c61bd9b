// Process-wide L7 limits and timeouts, from doorman-dataplane flags (see docs/l7.md). Set once in
// main() before any worker starts, read-only afterwards (so no synchronisation is needed).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace doorman::dataplane {

struct L7Options {
  std::size_t max_header_bytes = 32 * 1024;  // request line + fields; over → 431
  std::size_t max_header_count = 100;        // fields; over → 431
  std::size_t max_request_target = 8 * 1024; // request target; over → 414
  uint64_t max_body_bytes = uint64_t{1} << 30;  // streamed request body; over → 413
  // From the first byte of a request to the end of its header (slowloris); over → 408. Waiting
  // for the first byte of the next request on a keep-alive connection uses the idle timeout.
  std::chrono::milliseconds header_timeout{10'000};
  // Each read of a request body must make progress within this; over → 408 (or close when the
  // response has started).
  std::chrono::milliseconds body_timeout{30'000};
  int64_t max_connections_per_listener = 0;  // open client connections per L7 listener, 0 = no cap
  std::string access_log = "off";            // off | stdout | PATH
  // A client that closes (FIN or RST) while the proxy connects to a backend or waits for its
  // response head: the backend connection (or the connect) is dropped and the request logged
  // 499, as nginx and Envoy do. Off: the
  // answer is still read and written to the closed socket (HAProxy's default; a FIN is also what
  // a client that half-closes after its request and still waits for the answer sends).
  bool abort_on_client_close = false;
};

const L7Options& GetL7Options();
void SetL7Options(const L7Options& options);  // before workers start

}  // namespace doorman::dataplane
