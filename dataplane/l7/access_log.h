// L7 access log: one JSON object per line per request (docs/l7.md). The line never carries a
// secret: no header values at all except Host, the path without its query string, and the
// request id. Formatting is pure. The sink never blocks a worker: lines go to a bounded queue
// (kAccessLogQueueBytes) that one writer thread empties with blocking writes on an O_APPEND
// descriptor (whole lines); when the output does not keep up (a stalled log reader behind a
// pipe: a container runtime's shim, a full disk) lines beyond the bound are dropped, counted, and
// the count is logged when the writer catches up. Traffic never waits for the log.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace doorman::dataplane {

struct AccessLogEntry {
  std::string_view listener, route, backend;
  // client_ip: the client the route's policy used (a trusted proxy's X-Forwarded-For names it);
  // peer_ip: the connection's source address.
  std::string_view client_ip, peer_ip, method, host, path, request_id;
  bool tls = false;
  unsigned status = 0;
  double duration_s = 0;
  unsigned retries = 0;
};

// {"ts":"2026-11-26T14:40:06.123Z","listener":...,"status":200,"duration_ms":1.234,...}\n
std::string FormatAccessLog(const AccessLogEntry& e, std::chrono::system_clock::time_point now);

inline constexpr std::size_t kAccessLogQueueBytes = 8 << 20;

// --access-log: "off" (default), "stdout", or a file path (opened for append, created 0640).
// Returns false with *error when the file cannot be opened. Call before workers start; starts
// the writer thread.
bool OpenAccessLog(const std::string& spec, std::string* error);
// SIGUSR1: a file log is opened again by its path (after logrotate moved it away) and the
// writer goes on in the new file. Nothing for stdout or off. False with *error when it cannot
// be opened (the old file is kept).
bool ReopenAccessLog(std::string* error);
bool AccessLogEnabled();
// Thread-safe, never blocks on the output.
void WriteAccessLog(std::string line);
// Lines dropped so far because the queue was full.
uint64_t AccessLogDropped();
// Writes what is queued, waiting at most `max` (a stalled output is not waited for), and stops
// the writer. At exit.
void CloseAccessLog(std::chrono::milliseconds max);

}  // namespace doorman::dataplane
