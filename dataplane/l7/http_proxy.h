// L7 HTTP/1.1 reverse proxy (Boost.Beast). One session per client connection; each request on a
// keep-alive connection is routed against the newest RuntimeConfig. Bodies are streamed in
// both directions through a fixed 16 KiB buffer (never buffered whole); Beast re-frames
// chunked/Content-Length bodies. Upstream connections come from the worker's UpstreamPool.
//
// Answers of its own (text/plain, one line naming the cause):
//   400 malformed request (parse error, bad target, missing/duplicate Host, smuggling vectors:
//       CL+TE, several Content-Length, Transfer-Encoding other than "chunked", CR/LF/NUL in values)
//   404 no route matches                  408 slow request header / body (L7Options timeouts)
//   413 request body over L7Options::max_body_bytes       414 request target too long
//   431 request header too large or too many fields
//   502 backend connect/write/read failure 503 no ready endpoint / listener removed /
//       the listener's connection cap reached
//   504 backend connect or response-header timeout
// Limits and client timeouts come from L7Options (flags). Deadlines: waiting for the next request
// on a keep-alive connection = listener idle timeout (default 60 s); upstream connect =
// route connect timeout (5 s); response header = route request timeout (60 s); every body read
// or write = route idle timeout, else the listener idle timeout.
#pragma once

#include <cstdint>
#include <string>

#include "dataplane/server/asio_types.h"

namespace doorman::dataplane {

class Worker;
class ConnectionSlot;

inline constexpr std::size_t kMaxResponseHeaderBytes = 64 * 1024;
// Interim (1xx) responses accepted before the final one; more is a broken or hostile backend: 502.
// Room for a long request kept alive by `102 Processing` (RFC 2518 suggests one every ~20 s: 100
// cover half an hour, longer than any request timeout).
inline constexpr unsigned kMaxInterimResponses = 100;

// `slot` counts the connection on `worker` for as long as the session lives.
void StartHttpSession(Worker& worker, Socket client, const std::string& listener_name, ConnectionSlot slot);

}  // namespace doorman::dataplane
