#include "controller/kube/informer.h"

#include "common/log.h"

namespace doorman::controller::kube {

Informer::Informer(Resource resource, KubeHttp* http, ReflectorOptions options, Handler handler)
    : resource_(std::move(resource)),
      http_(http),
      handler_(std::move(handler)),
      rng_(std::random_device{}()),
      reflector_(resource_.plural, options, [this] { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }) {}

Informer::~Informer() { Stop(); }

void Informer::Start() { thread_ = std::thread([this] { Run(); }); }

void Informer::RequestStop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
}

void Informer::Stop() {
  RequestStop();
  if (thread_.joinable()) thread_.join();
}

std::optional<nlohmann::json> Informer::Get(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = reflector_.items().find(key);
  if (it == reflector_.items().end()) return std::nullopt;
  return it->second;
}

std::string Informer::ListPath(const ReflectorAction& a) const {
  std::string p = resource_.watch_collection_path() + "?limit=" + std::to_string(a.limit);
  if (!a.continue_token.empty()) p += "&continue=" + QueryEscape(a.continue_token);
  if (!resource_.field_selector.empty()) p += "&fieldSelector=" + QueryEscape(resource_.field_selector);
  if (!resource_.label_selector.empty()) p += "&labelSelector=" + QueryEscape(resource_.label_selector);
  return p;
}

std::string Informer::WatchPath(const ReflectorAction& a) const {
  std::string p = resource_.watch_collection_path() + "?watch=true&allowWatchBookmarks=true&timeoutSeconds=" +
                  std::to_string(a.timeout_seconds);
  if (!a.resource_version.empty()) p += "&resourceVersion=" + QueryEscape(a.resource_version);
  if (!resource_.field_selector.empty()) p += "&fieldSelector=" + QueryEscape(resource_.field_selector);
  if (!resource_.label_selector.empty()) p += "&labelSelector=" + QueryEscape(resource_.label_selector);
  return p;
}

void Informer::Deliver(std::vector<ObjectEvent> events) {
  std::vector<Diagnostic> logs;
  bool synced = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    logs = reflector_.TakeDiagnostics();
    synced = reflector_.synced();
  }
  EmitAll(logs);
  // Hand the events over before announcing the sync: a consumer that sees synced() must already
  // have every listed object queued, or its first snapshot could miss a whole resource type.
  if (!events.empty()) handler_(resource_, std::move(events));
  synced_ = synced;
}

void Informer::Run() {
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(stop_mu_);
      if (stop_) return;
    }
    ReflectorAction action;
    {
      std::lock_guard<std::mutex> lock(mu_);
      action = reflector_.Next(Clock::now());
    }
    switch (action.kind) {
      case ReflectorAction::Kind::kWait: {
        std::unique_lock<std::mutex> lock(stop_mu_);
        stop_cv_.wait_until(lock, action.until, [this] { return stop_; });
        break;
      }
      case ReflectorAction::Kind::kList: {
        HttpResponse r = http_->Request("GET", ListPath(action));
        {
          std::lock_guard<std::mutex> lock(stop_mu_);
          if (stop_) return;
        }
        std::vector<ObjectEvent> events;
        {
          std::lock_guard<std::mutex> lock(mu_);
          nlohmann::json list;
          if (r.status == 200) list = nlohmann::json::parse(r.body, nullptr, false);
          if (r.status == 200 && list.is_object()) {
            events = reflector_.OnListPage(list, Clock::now());
          } else if (r.status == 200) {
            events = reflector_.OnListFailed({0, std::nullopt, "list response is not JSON"}, Clock::now());
          } else {
            events = reflector_.OnListFailed(r.ToApiError(), Clock::now());
          }
        }
        Deliver(std::move(events));
        break;
      }
      case ReflectorAction::Kind::kWatch: {
        {
          std::lock_guard<std::mutex> lock(mu_);
          reflector_.OnWatchStarted(Clock::now());
        }
        bool broken = false;
        auto on_line = [this, &broken](std::string_view line) {
          auto event = nlohmann::json::parse(line, nullptr, false);
          if (event.is_discarded()) {
            log::Warn("kube", "undecodable watch event, restarting the watch", {{"resource", resource_.plural}});
            broken = true;
            return false;
          }
          bool stop = false;
          std::vector<ObjectEvent> events;
          {
            std::lock_guard<std::mutex> lock(mu_);
            events = reflector_.OnWatchEvent(event, Clock::now(), &stop);
          }
          Deliver(std::move(events));
          std::lock_guard<std::mutex> lock(stop_mu_);
          return !stop && !stop_;
        };
        bool clean = false;
        HttpResponse r = http_->Stream(WatchPath(action), on_line, &clean);
        {
          std::lock_guard<std::mutex> lock(stop_mu_);
          if (stop_) return;  // cancelled for shutdown: not a failure worth logging
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (r.status == 200) {
            reflector_.OnWatchEnded(clean && !broken, Clock::now());
          } else {
            reflector_.OnWatchFailed(r.ToApiError(), Clock::now());
          }
        }
        Deliver({});
        break;
      }
    }
  }
}

}  // namespace doorman::controller::kube
