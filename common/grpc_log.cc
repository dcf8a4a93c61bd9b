#include "common/grpc_log.h"

#include <grpc/support/log.h>

#include <strings.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>

#include "common/log.h"
#include "common/log_throttle.h"

namespace doorman {
namespace {

// gRPC repeats a failure on every reconnect (a refused dataplane retries every few seconds): the
// same line is logged at most once a minute, with the count of repeats it stands for.
constexpr std::chrono::minutes kRepeatWindow{1};

std::mutex& FailureMu() {
  static auto* mu = new std::mutex;  // never destroyed (see below)
  return *mu;
}
std::string& Failure() {
  static auto* s = new std::string;
  return *s;
}

// gRPC 1.51's tcp_server_posix.cc logs "Failed accept4: <strerror>" and then shuts the listener.
void NoteListenerFailure(std::string_view message) {
  {
    std::lock_guard lock(FailureMu());
    if (!Failure().empty()) return;
    Failure() = std::string(message);
  }
  log::Error("grpc",
             "the gRPC server stopped accepting connections (gRPC 1.51 closes its listener after a failed accept "
             "and never reopens it); /healthz now fails so that the process is restarted",
             {{"error", std::string(message)},
              {"hint", "out of file descriptors? raise the open-files limit (LimitNOFILE, ulimit -n)"}});
}

void ToDoormanLog(gpr_log_func_args* args) {
  std::string_view file = args->file != nullptr ? args->file : "";
  if (const auto slash = file.rfind('/'); slash != std::string_view::npos) file.remove_prefix(slash + 1);
  std::string_view message = args->message != nullptr ? args->message : "";
  while (!message.empty() && (message.back() == '.' || message.back() == '\n')) message.remove_suffix(1);
  if (file == "tcp_server_posix.cc" && message.rfind("Failed accept4", 0) == 0) NoteListenerFailure(message);
  const log::Level level = args->severity == GPR_LOG_SEVERITY_ERROR  ? log::Level::kWarn
                           : args->severity == GPR_LOG_SEVERITY_INFO ? log::Level::kInfo
                                                                      : log::Level::kDebug;
  if (!log::Enabled(level)) return;
  // Never destroyed: gRPC threads may still log while static destructors run at exit.
  static auto* mu = new std::mutex;
  static auto* throttle = new log::Throttle(kRepeatWindow);
  uint64_t repeated = 0;
  {
    std::lock_guard lock(*mu);
    if (!throttle->Allow(message, log::Throttle::Clock::now(), &repeated)) return;
  }
  const std::string source = std::string(file) + ":" + std::to_string(args->line);
  if (repeated == 0) {
    log::Write(level, "grpc", message, {{"source", source}});
  } else {
    log::Write(level, "grpc", message, {{"source", source}, {"repeated", std::to_string(repeated)}});
  }
}

}  // namespace

void RouteGrpcLogs() {
  // GRPC_VERBOSITY=NONE would also hide the one line that says the listener is lost
  // (GrpcListenerFailure): errors stay on. gRPC reads the variable when it initialises, after
  // this (it is called before any gRPC object exists, with no other thread running).
  if (const char* v = std::getenv("GRPC_VERBOSITY"); v != nullptr && strcasecmp(v, "NONE") == 0) {
    ::setenv("GRPC_VERBOSITY", "ERROR", 1);
  }
  gpr_set_log_function(ToDoormanLog);
}

std::string GrpcListenerFailure() {
  std::lock_guard lock(FailureMu());
  return Failure();
}

}  // namespace doorman
