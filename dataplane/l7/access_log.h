// L7 access log: one JSON object per line per request (docs/l7.md). The line never carries a
// secret: no header values at all except Host, the path without its query string, and the
// request id. Formatting is pure; the sink writes each line with one write(2) on an O_APPEND
// descriptor (atomic per line, no lock, no buffering to lose at exit).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace doorman::dataplane {

struct AccessLogEntry {
  std::string_view listener, route, backend;
  std::string_view client_ip, method, host, path, request_id;
  bool tls = false;
  unsigned status = 0;
  double duration_s = 0;
  unsigned retries = 0;
};

// {"ts":"2026-11-26T14:40:06.123Z","listener":...,"status":200,"duration_ms":1.234,...}\n
std::string FormatAccessLog(const AccessLogEntry& e, std::chrono::system_clock::time_point now);

// --access-log: "off" (default), "stdout", or a file path (opened for append, created 0640).
// Returns false with *error when the file cannot be opened. Call before workers start.
bool OpenAccessLog(const std::string& spec, std::string* error);
bool AccessLogEnabled();
void WriteAccessLog(const std::string& line);

}  // namespace doorman::dataplane
