#include "common/grpc_log.h"

#include <grpc/support/log.h>

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

void ToDoormanLog(gpr_log_func_args* args) {
  std::string_view file = args->file != nullptr ? args->file : "";
  if (const auto slash = file.rfind('/'); slash != std::string_view::npos) file.remove_prefix(slash + 1);
  std::string_view message = args->message != nullptr ? args->message : "";
  while (!message.empty() && (message.back() == '.' || message.back() == '\n')) message.remove_suffix(1);
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

void RouteGrpcLogs() { gpr_set_log_function(ToDoormanLog); }

}  // namespace doorman
