// One informer: a thread that performs what its Reflector asks (list pages, watches, waits)
// through KubeHttp and hands the resulting events to a handler, in order.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "controller/kube/http.h"
#include "controller/kube/reflector.h"
#include "controller/kube/resources.h"

namespace doorman::controller::kube {

class Informer {
 public:
  // Called from the informer's thread, in API order.
  using Handler = std::function<void(const Resource& resource, std::vector<ObjectEvent> events)>;

  Informer(Resource resource, KubeHttp* http, ReflectorOptions options, Handler handler);
  ~Informer();
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  void Start();
  // Tells the thread to stop without waiting (so that a cancelled request is not taken for a
  // failure); Stop() then joins.
  void RequestStop();
  // Stops the thread. A watch in progress ends when KubeHttp::Cancel() is called (or at its
  // timeout): call Cancel() on the client first for a prompt shutdown.
  void Stop();

  bool synced() const { return synced_.load(); }
  const Resource& resource() const { return resource_; }
  // The object under `key` ("ns/name") as last seen from the API.
  std::optional<nlohmann::json> Get(const std::string& key) const;

 private:
  void Run();
  void Deliver(std::vector<ObjectEvent> events);
  std::string ListPath(const ReflectorAction& a) const;
  std::string WatchPath(const ReflectorAction& a) const;

  Resource resource_;
  KubeHttp* http_;
  Handler handler_;
  mutable std::mutex mu_;  // guards reflector_
  std::mt19937_64 rng_;
  Reflector reflector_;
  std::atomic<bool> synced_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by stop_mu_
  std::thread thread_;
};

}  // namespace doorman::controller::kube
