// The seam between the controller's Kubernetes logic and HTTP: a tiny blocking client interface.
// The one implementation (cpprest_http.cc) is the only code that includes cpprestsdk; no cpprest
// type appears here, so everything else compiles fast and can be tested with a fake.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "controller/kube/config.h"
#include "controller/kube/reflector.h"

namespace doorman::controller::kube {

struct HttpResponse {
  int status = 0;  // 0 = transport error (connect, TLS, reset, timeout, cancelled)
  std::string body;
  std::optional<std::chrono::seconds> retry_after;
  std::string error;  // transport error text (never contains credentials)

  bool ok() const { return status >= 200 && status < 300; }
  // For the reflector / logs: the code plus the Status message (or the transport error).
  ApiError ToApiError() const;
};

class KubeHttp {
 public:
  virtual ~KubeHttp() = default;

  // One request, bounded by the client's request timeout. `body` is sent with `content_type`
  // when non-empty. Idempotent requests that find a pooled connection closed are retried once.
  virtual HttpResponse Request(const std::string& method, const std::string& path_and_query,
                               const std::string& body = "", const std::string& content_type = "") = 0;

  // A streaming GET (watch): calls `on_line` for each newline-terminated line of a 200 body as it
  // arrives (lines are split by newline, whatever the chunking), until the body ends (*clean =
  // true), on_line returns false, the connection breaks or stalls past the idle timeout, or
  // Cancel(). A non-200 answer is returned with its body.
  virtual HttpResponse Stream(const std::string& path_and_query,
                              const std::function<bool(std::string_view line)>& on_line, bool* clean) = 0;

  // Aborts every request and stream in flight; later calls fail at once (shutdown).
  virtual void Cancel() = 0;

  // The first step of shutdown (SIGTERM): aborts every request and stream in flight now (status
  // writes, lists, watches, a lease renewal), so nothing waits on an API server that does not
  // answer. Requests made afterwards (lease release, view delete) are each bounded by
  // `request_deadline`; streams fail at once. After `budget`, Cancel() ends everything, so
  // shutdown is bounded whatever the API server does. The default (fakes) does nothing.
  virtual void BeginShutdown(std::chrono::milliseconds request_deadline, std::chrono::milliseconds budget) {
    (void)request_deadline;
    (void)budget;
  }
};
using KubeHttpPtr = std::unique_ptr<KubeHttp>;

struct HttpOptions {
  std::string user_agent = "doorman-controller";
  std::chrono::seconds request_timeout{30};
  // A watch with no bytes for this long is considered dead (bookmarks keep healthy ones busy).
  std::chrono::seconds watch_idle_timeout{420};
};

// The cpprestsdk client: TLS per the config (CA bundle, insecure-skip-tls-verify, client
// certificate), bearer token re-read from token_file when that file changes, keep-alive pool.
KubeHttpPtr MakeKubeHttp(const KubeConfig& config, HttpOptions options);

}  // namespace doorman::controller::kube
