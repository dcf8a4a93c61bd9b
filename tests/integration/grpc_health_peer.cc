// doorman-test-grpc-health: a real gRPC peer for the gRPC health-check tests (not shipped).
//
//   serve --port P --name N   a gRPC server on 127.0.0.1:P with gRPC's own default health
//                             service (grpc.health.v1): service "" starts SERVING; SIGUSR1 sets
//                             it NOT_SERVING, SIGUSR2 SERVING again (each change printed as one
//                             line). Service N (its name) always answers SERVING: a client
//                             asking for N learns whether it reached this server. SIGTERM/SIGINT
//                             stop it.
//   check --addr H:P --service S [--timeout D]
//                             one Health/Check call on a new connection; prints SERVING,
//                             NOT_SERVING, ... or the gRPC error code name; exits 0 when SERVING,
//                             1 otherwise, 2 on bad flags.
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "common/flags.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace {

namespace hv1 = grpc::health::v1;

[[noreturn]] void Usage(const std::string& message) {
  std::fprintf(stderr, "doorman-test-grpc-health: %s\n", message.c_str());
  std::exit(2);
}

int Serve(int argc, char** argv) {
  int64_t port = 0;
  std::string name;
  doorman::FlagSet flags("doorman-test-grpc-health serve", "gRPC server with a settable health status");
  flags.Int("port", &port, "port on 127.0.0.1 (required)");
  flags.String("name", &name, "this server's name: service NAME always answers SERVING (required)");
  flags.ParseOrExit(argc, argv);
  if (port < 1 || port > 65535) Usage("--port must be between 1 and 65535");
  if (name.empty()) Usage("--name is required");

  // Block the control signals in every thread (gRPC's inherit the mask); this thread waits.
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGUSR1, SIGUSR2, SIGTERM, SIGINT}) sigaddset(&sigs, s);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // Any other method: UNIMPLEMENTED (the base class's reactor). It also makes this a callback
  // server, which gRPC's default (callback) health service needs to run without a polled queue.
  grpc::CallbackGenericService other_methods;
  builder.RegisterCallbackGenericService(&other_methods);
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials());
  auto server = builder.BuildAndStart();
  if (!server) Usage("cannot listen on 127.0.0.1:" + std::to_string(port));
  auto* health = server->GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus(name, true);
  std::printf("listening on 127.0.0.1:%lld as %s\n", static_cast<long long>(port), name.c_str());
  std::fflush(stdout);
  for (;;) {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig == SIGUSR1 || sig == SIGUSR2) {
      health->SetServingStatus("", sig == SIGUSR2);
      std::printf("status %s\n", sig == SIGUSR2 ? "SERVING" : "NOT_SERVING");
      std::fflush(stdout);
      continue;
    }
    break;
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}

int Check(int argc, char** argv) {
  std::string addr, service;
  int64_t timeout_ms = 2000;
  doorman::FlagSet flags("doorman-test-grpc-health check", "one grpc.health.v1 Check call");
  flags.String("addr", &addr, "host:port (required)");
  flags.String("service", &service, "service name to ask about");
  flags.DurationMs("timeout", &timeout_ms, "deadline of the call");
  flags.ParseOrExit(argc, argv);
  if (addr.empty()) Usage("--addr is required");
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  auto stub = hv1::Health::NewStub(grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  hv1::HealthCheckRequest req;
  req.set_service(service);
  hv1::HealthCheckResponse resp;
  const grpc::Status st = stub->Check(&ctx, req, &resp);
  if (!st.ok()) {
    static const char* const kCodes[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                         "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                         "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                         "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
    const int code = static_cast<int>(st.error_code());
    std::printf("%s\n", code >= 0 && code <= 16 ? kCodes[code] : "ERROR");
    return 1;
  }
  std::printf("%s\n", hv1::HealthCheckResponse::ServingStatus_Name(resp.status()).c_str());
  return resp.status() == hv1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "serve") return Serve(argc - 1, argv + 1);
  if (mode == "check") return Check(argc - 1, argv + 1);
  Usage("usage: serve --port P --name N | check --addr H:P --service S [--timeout D]");
}
