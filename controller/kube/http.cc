#include "controller/kube/http.h"

#include <nlohmann/json.hpp>

namespace doorman::controller::kube {

ApiError HttpResponse::ToApiError() const {
  ApiError e;
  e.code = status;
  e.retry_after = retry_after;
  if (status == 0) {
    e.message = error;
    return e;
  }
  auto parsed = nlohmann::json::parse(body, nullptr, false);
  if (parsed.is_object() && parsed.contains("message") && parsed["message"].is_string()) {
    e.message = parsed["message"].get<std::string>();
  } else {
    e.message = "HTTP " + std::to_string(status);
  }
  if (parsed.is_object() && parsed.value("kind", "") == "Status" && parsed.contains("reason") && parsed["reason"].is_string()) {
    e.reason = parsed["reason"].get<std::string>();
  }
  return e;
}

}  // namespace doorman::controller::kube
