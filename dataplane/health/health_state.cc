#include "dataplane/health/health_state.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/fd_limit.h"
#include "common/http_head_end.h"

namespace doorman::health {

std::string_view CheckProtocolName(CheckProtocol p) {
  switch (p) {
    case CheckProtocol::kTcp:
      return "tcp";
    case CheckProtocol::kHttp:
      return "http";
    case CheckProtocol::kGrpc:
      return "grpc";
    case CheckProtocol::kNone:
      break;
  }
  return "none";
}

std::string_view ProbeResultName(ProbeResult r) {
  switch (r) {
    case ProbeResult::kPassed:
      return "passed";
    case ProbeResult::kFailed:
      return "failed";
    case ProbeResult::kSkipped:
      break;
  }
  return "skipped";
}

bool GrpcCheckPassed(int rpc_status_code, int serving_status) {
  return rpc_status_code == kGrpcStatusOk && serving_status == kGrpcServing;
}

bool GrpcFailureIsLocal(std::string_view error_message) {
  for (const int err : kLocalResourceErrnos) {
    // gRPC words socket errors with strerror(3): "Too many open files", ...
    if (error_message.find(std::strerror(err)) != std::string_view::npos) return true;
  }
  return false;
}

std::string GrpcTarget(std::string_view ip_literal, uint16_t port) {
  const bool v6 = ip_literal.find(':') != std::string_view::npos;
  std::string out = v6 ? "ipv6:[" : "ipv4:";
  out += ip_literal;
  if (v6) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

bool ValidGrpcServiceName(std::string_view name) {
  if (name.size() > 256) return false;
  for (const char c : name) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

bool CheckSpec::StatusOk(uint32_t status) const {
  if (expected_statuses.empty()) return status >= 200 && status < 400;
  for (auto s : expected_statuses) {
    if (s == status) return true;
  }
  return false;
}

std::optional<bool> HealthState::OnResult(bool success) {
  if (success) {
    failures_ = 0;
    ++successes_;
    if (!healthy_ && successes_ >= std::max<uint32_t>(1, spec_.healthy_threshold)) {
      healthy_ = true;
      return true;
    }
  } else {
    successes_ = 0;
    ++failures_;
    if (healthy_ && failures_ >= std::max<uint32_t>(1, spec_.unhealthy_threshold)) {
      healthy_ = false;
      return false;
    }
  }
  return std::nullopt;
}

Millis HealthState::NextProbeAt(Millis now, uint64_t random) const {
  const auto jitter_span = static_cast<uint64_t>(spec_.interval.count()) * kJitterPercent / 100;
  const auto jitter = jitter_span == 0 ? 0 : random % (jitter_span + 1);
  return now + spec_.interval + Millis(static_cast<int64_t>(jitter));
}

std::optional<uint32_t> ParseHttpStatus(std::string_view head) {
  const auto eol = head.find('\n');
  if (eol == std::string_view::npos) return std::nullopt;
  auto line = head.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // "HTTP/1.x SP DDD [SP reason]"
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ') return std::nullopt;
  if (line[7] != '0' && line[7] != '1') return std::nullopt;
  uint32_t code = 0;
  for (int i = 9; i < 12; ++i) {
    const char c = line[static_cast<std::size_t>(i)];
    if (c < '0' || c > '9') return std::nullopt;
    code = code * 10 + static_cast<uint32_t>(c - '0');
  }
  if (line.size() > 12 && line[12] != ' ') return std::nullopt;
  if (code < 100) return std::nullopt;
  return code;
}

ReplyStatus FinalReplyStatus(std::string_view reply) {
  for (;;) {
    const std::size_t end = HttpHeadEnd(reply);
    if (end == std::string_view::npos) return {};
    const auto code = ParseHttpStatus(reply.substr(0, end));
    if (!code) return {ReplyStatus::kInvalid, 0};
    if (*code >= 200 || *code == 101) return {ReplyStatus::kFinal, *code};
    reply.remove_prefix(end);  // 100, 102, 103...: the final answer follows
  }
}

}  // namespace doorman::health
