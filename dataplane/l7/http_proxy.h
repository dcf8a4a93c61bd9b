// L7 HTTP/1.1 reverse proxy (Boost.Beast). One session per client connection; each request on a
// keep-alive connection is routed against the newest RuntimeConfig. Bodies are streamed in
// both directions through a fixed 16 KiB buffer (never buffered whole); Beast re-frames
// chunked/Content-Length bodies. Upstream connections come from the worker's UpstreamPool.
//
// Answers of its own (text/plain, one line naming the cause):
//   400 malformed request (parse error, bad target, missing/duplicate Host)
//   404 no route matches                  413 request body over kMaxRequestBodyBytes
//   431 request header over kMaxRequestHeaderBytes
//   502 backend connect/write/read failure 503 no ready endpoint / listener removed
//   504 backend connect or response-header timeout
// Deadlines: client header read = listener idle timeout (default 60 s); upstream connect =
// route connect timeout (5 s); response header = route request timeout (60 s); every body read
// or write = route idle timeout, else the listener idle timeout.
#pragma once

#include <cstdint>
#include <string>

#include "dataplane/server/asio_types.h"

namespace doorman::dataplane {

class Worker;

inline constexpr std::size_t kMaxRequestHeaderBytes = 32 * 1024;
inline constexpr std::size_t kMaxResponseHeaderBytes = 64 * 1024;
inline constexpr uint64_t kMaxRequestBodyBytes = uint64_t{1} << 30;  // 1 GiB, streamed

void StartHttpSession(Worker& worker, Socket client, const std::string& listener_name);

}  // namespace doorman::dataplane
