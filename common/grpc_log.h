// Routes gRPC's own log lines (handshake failures, transport errors) through doorman::log, so
// they carry the process's format (text or JSON) instead of gRPC's "E1126 16:27:38..." lines.
#pragma once

namespace doorman {

// Call once at start-up, after log::Configure and before any gRPC object exists. gRPC's errors
// become warn lines of component "grpc"; its own verbosity (GRPC_VERBOSITY) still filters first.
// The same line repeated within a minute is logged once (then with repeated=N).
void RouteGrpcLogs();

}  // namespace doorman
