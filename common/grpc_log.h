// Routes gRPC's own log lines (handshake failures, transport errors) through doorman::log, so
// they carry the process's format (text or JSON) instead of gRPC's "E1126 16:27:38..." lines.
#pragma once

#include <string>

namespace doorman {

// Call once at start-up, after log::Configure and before any gRPC object exists. gRPC's errors
// become warn lines of component "grpc"; its own verbosity (GRPC_VERBOSITY) still filters first.
// The same line repeated within a minute is logged once (then with repeated=N).
void RouteGrpcLogs();

// Why gRPC's server stopped accepting connections for good, or "" while it accepts. gRPC 1.51
// (Debian 12) closes a listening port after an accept4(2) failure other than EAGAIN/ECONNABORTED
// (EMFILE: out of file descriptors) and never reopens it; it says so only in one log line, which
// RouteGrpcLogs watches for. The process must then be restarted (the controller's /healthz fails).
std::string GrpcListenerFailure();

}  // namespace doorman
