// The admin HTTP endpoint both binaries expose on --metrics-listen:
//   GET /metrics  Prometheus text format from a prometheus-cpp registry
//   GET /healthz  200 while the process runs and the broken() callback says nothing
//   GET /readyz   200 when the ready() callback says so, else 503
//   plus handlers added with AddHandler (read-only debug pages: routing state, backend addresses),
//   which answer only clients on a loopback address unless AllowRemoteHandlers(true): 403 to the
//   rest (`kubectl port-forward` arrives on loopback; Prometheus needs only /metrics).
// Runs on its own thread and io_context so a slow scrape never touches the data path.
// No Beast/Asio in this header (pimpl): it is included by main.cc files only, but stays cheap.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace prometheus {
class Registry;
}

namespace doorman {

class AdminServer {
 public:
  struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
  };
  using Handler = std::function<Response()>;

  AdminServer(std::shared_ptr<prometheus::Registry> registry, std::function<bool()> ready);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Register before Start(). `path` is matched exactly (query string ignored).
  void AddHandler(std::string path, Handler handler);
  // Before Start(): whether AddHandler's pages answer clients that are not on a loopback address
  // (--debug-remote). Default false.
  void AllowRemoteHandlers(bool allow);
  // Before Start(): a non-empty answer means the process cannot recover by itself (restart it):
  // /healthz and /readyz answer 503 with it.
  void SetBroken(std::function<std::string()> broken);
  // Called on the admin thread before each /metrics answer is collected (gauges computed on
  // demand). Set before Start().
  void SetBeforeMetrics(std::function<void()> before);

  // Binds `listen` ("host:port", ":port"; port 0 picks a free one) and starts serving.
  // Returns false and sets *error when the address is bad or cannot be bound.
  bool Start(const std::string& listen, std::string* error);
  uint16_t port() const;
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace doorman
