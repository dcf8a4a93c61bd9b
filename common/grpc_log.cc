#include "common/grpc_log.h"

#include <grpc/support/log.h>

#include <string>
#include <string_view>

#include "common/log.h"

namespace doorman {
namespace {

void ToDoormanLog(gpr_log_func_args* args) {
  std::string_view file = args->file != nullptr ? args->file : "";
  if (const auto slash = file.rfind('/'); slash != std::string_view::npos) file.remove_prefix(slash + 1);
  std::string_view message = args->message != nullptr ? args->message : "";
  while (!message.empty() && (message.back() == '.' || message.back() == '\n')) message.remove_suffix(1);
  const log::Level level = args->severity == GPR_LOG_SEVERITY_ERROR  ? log::Level::kWarn
                           : args->severity == GPR_LOG_SEVERITY_INFO ? log::Level::kInfo
                                                                      : log::Level::kDebug;
  if (!log::Enabled(level)) return;
  log::Write(level, "grpc", message, {{"source", std::string(file) + ":" + std::to_string(args->line)}});
}

}  // namespace

void RouteGrpcLogs() { gpr_set_log_function(ToDoormanLog); }

}  // namespace doorman
