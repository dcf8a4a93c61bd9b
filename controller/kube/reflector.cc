#include "controller/kube/reflector.h"

#include <algorithm>
#include <cmath>

namespace doorman::controller::kube {
namespace {

using nlohmann::json;

constexpr int kGoneMinNotFound = 4;  // lists in a run of NotFound before a CRD counts as deleted

std::string MetaString(const json& o, const char* field) {
  auto m = o.find("metadata");
  if (m == o.end() || !m->is_object()) return "";
  auto f = m->find(field);
  return f != m->end() && f->is_string() ? f->get<std::string>() : std::string();
}

}  // namespace

std::string ObjectCacheKey(const json& object) {
  const std::string ns = MetaString(object, "namespace");
  const std::string name = MetaString(object, "name");
  return ns.empty() ? name : ns + "/" + name;
}

Reflector::Reflector(std::string resource, ReflectorOptions options, std::function<double()> rand01)
    : resource_(std::move(resource)), options_(options), rand01_(std::move(rand01)) {}

void Reflector::Log(log::Level level, std::string message, std::vector<std::pair<std::string, std::string>> fields) {
  fields.insert(fields.begin(), {"resource", resource_});
  diagnostics_.push_back({level, "kube", std::move(message), std::move(fields)});
}

std::chrono::milliseconds Reflector::Backoff() {
  // base·2^(n-1), capped; then scaled into [0.5, 1) of that ("equal jitter").
  const int n = std::max(1, failures_);
  double base = static_cast<double>(options_.backoff_initial.count()) * std::pow(2.0, std::min(n - 1, 30));
  base = std::min(base, static_cast<double>(options_.backoff_max.count()));
  const double r = std::clamp(rand01_(), 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<int64_t>(base * (0.5 + 0.5 * r)));
}

ReflectorAction Reflector::Next(TimePoint now) {
  ReflectorAction a;
  if (wait_until_ && *wait_until_ > now) {
    a.kind = ReflectorAction::Kind::kWait;
    a.until = *wait_until_;
    return a;
  }
  wait_until_.reset();
  if (phase_ == Phase::kList) {
    a.kind = ReflectorAction::Kind::kList;
    a.continue_token = continue_;
    a.limit = options_.page_limit;
    return a;
  }
  a.kind = ReflectorAction::Kind::kWatch;
  a.resource_version = rv_;
  const int span = std::max(0, options_.watch_timeout_max_s - options_.watch_timeout_min_s);
  a.timeout_seconds =
      options_.watch_timeout_min_s + static_cast<int>(std::floor(std::clamp(rand01_(), 0.0, 0.999999) * (span + 1)));
  phase_ = Phase::kWatching;
  return a;
}

void Reflector::Fail(const ApiError& error, TimePoint now, const char* what) {
  ++failures_;
  std::chrono::milliseconds wait;
  if (error.retry_after && (error.code == 429 || error.code == 503)) {
    // The server said how long; add up to 10% so a crowd of clients spreads out.
    wait = std::chrono::duration_cast<std::chrono::milliseconds>(*error.retry_after);
    wait += std::chrono::milliseconds(static_cast<int64_t>(static_cast<double>(wait.count()) * 0.1 * rand01_()));
    // "Retry-After: 0" must not become a hot loop: never wait less than the initial backoff.
    wait = std::max(wait, std::chrono::duration_cast<std::chrono::milliseconds>(options_.backoff_initial));
  } else {
    wait = Backoff();
  }
  wait_until_ = now + wait;
  Log(failures_ > 3 ? log::Level::kWarn : log::Level::kInfo, std::string(what) + " failed, retrying",
      {{"code", std::to_string(error.code)},
       {"error", error.message},
       {"retry_in", std::to_string(wait.count()) + "ms"},
       {"failures", std::to_string(failures_)}});
}

void Reflector::Relist(const std::string& why) {
  phase_ = Phase::kList;
  continue_.clear();
  pending_.clear();
  Log(log::Level::kInfo, "relisting", {{"reason", why}, {"resource_version", rv_}});
}

std::vector<ObjectEvent> Reflector::ReplaceAll(std::map<std::string, json> fresh) {
  std::vector<ObjectEvent> events;
  for (auto& [key, obj] : fresh) {
    auto it = items_.find(key);
    if (it == items_.end()) {
      events.push_back({"ADDED", key, obj});
    } else if (MetaString(it->second, "resourceVersion") != MetaString(obj, "resourceVersion") ||
               MetaString(obj, "resourceVersion").empty()) {
      if (it->second != obj) events.push_back({"MODIFIED", key, obj});
    }
  }
  for (auto& [key, obj] : items_) {
    if (!fresh.count(key)) events.push_back({"DELETED", key, obj});
  }
  items_ = std::move(fresh);
  return events;
}

std::vector<ObjectEvent> Reflector::OnListPage(const json& list, TimePoint now) {
  const json empty = json::object();
  const json& meta = list.contains("metadata") && list["metadata"].is_object() ? list["metadata"] : empty;
  if (auto items = list.find("items"); items != list.end() && items->is_array()) {
    for (const auto& item : *items) pending_.push_back(item);
  }
  const std::string cont = meta.value("continue", "");
  if (!cont.empty()) {
    continue_ = cont;
    return {};
  }
  std::map<std::string, json> fresh;
  for (auto& item : pending_) {
    std::string key = ObjectCacheKey(item);
    fresh[std::move(key)] = std::move(item);
  }
  pending_.clear();
  continue_.clear();
  rv_ = meta.value("resourceVersion", "");
  failures_ = 0;
  const bool first = !synced_;
  synced_ = true;
  listed_once_ = true;
  phase_ = Phase::kWatch;
  not_found_logged_ = false;
  not_found_since_.reset();
  not_found_lists_ = 0;
  auto events = ReplaceAll(std::move(fresh));
  Log(first ? log::Level::kInfo : log::Level::kDebug, "listed",
      {{"objects", std::to_string(items_.size())}, {"resource_version", rv_}, {"changes", std::to_string(events.size())}});
  (void)now;
  return events;
}

std::vector<ObjectEvent> Reflector::OnListFailed(const ApiError& error, TimePoint now) {
  if (error.code == 410 && !continue_.empty()) {
    // The snapshot behind the continue token was compacted away: start the list over.
    Relist("continue token expired");
    return {};
  }
  if (error.code == 404 && continue_.empty() && !listed_once_ && options_.may_be_deleted) {
    // A CRD's resource not served (the CRD not installed yet): an empty, synced list; try again
    // later, and say so once. Only before the first successful list: after it, a 404 (e.g. an
    // API server restarting before its CRD handlers are up) is a failure that keeps the cache,
    // never a reason to delete every object. A built-in resource's 404 is a failure like any
    // other: treated as empty, it would publish a state without (say) every endpoint
    // (helper-123).
    if (!not_found_logged_) {
      Log(log::Level::kWarn, "resource not served by the API server (CRD not installed?); treating as empty",
          {{"error", error.message}});
      not_found_logged_ = true;
    }
    return ListedEmpty(now);
  }
  // Only an unbroken run of the API server's own NotFound (a Status body; a proxy's 404 page is
  // not one) means a CRD is gone.
  const bool not_found = error.code == 404 && error.reason == "NotFound";
  if (!not_found) {
    not_found_since_.reset();
    not_found_lists_ = 0;
  }
  if (not_found && listed_once_ && options_.may_be_deleted) {
    if (!not_found_since_) not_found_since_ = now;
    ++not_found_lists_;
    if (now - *not_found_since_ >= options_.not_served_grace && not_found_lists_ >= kGoneMinNotFound) {
      // Not served for the whole grace period: the CRD was deleted (while the watch was down,
      // so no DELETED events came). Its objects go, as they would for a controller started now.
      if (!not_found_logged_) {
        Log(log::Level::kWarn, "resource no longer served by the API server (CRD deleted?); removing its objects",
            {{"objects", std::to_string(items_.size())},
             {"not_found_for", std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - *not_found_since_).count()) + "s"}});
        not_found_logged_ = true;
      }
      continue_.clear();
      return ListedEmpty(now);
    }
  }
  continue_.clear();
  pending_.clear();
  Fail(error, now, "list");
  return {};
}

std::vector<ObjectEvent> Reflector::ListedEmpty(TimePoint now) {
  // The resource is not served: an empty, synced list (objects gone since become DELETED),
  // listed again after the backoff.
  synced_ = true;
  pending_.clear();
  auto events = ReplaceAll({});
  ++failures_;
  wait_until_ = now + Backoff();
  return events;
}

void Reflector::OnWatchStarted(TimePoint now) {
  watch_started_ = now;
  watch_delivered_ = false;
}

std::vector<ObjectEvent> Reflector::OnWatchEvent(const json& event, TimePoint now, bool* stop) {
  *stop = false;
  std::vector<ObjectEvent> out;
  if (!event.is_object()) return out;
  const std::string type = event.value("type", "");
  const json empty = json::object();
  const json& obj = event.contains("object") && event["object"].is_object() ? event["object"] : empty;
  if (type == "ERROR") {
    *stop = true;
    const int code = obj.value("code", 0);
    const std::string message = obj.value("message", "");
    if (code == 410) {
      Relist("watch expired (410): " + message);
      failures_ = 0;
      return out;
    }
    if (code == 404) {
      // Not served any more: a list tells whether it is gone (OnListFailed) or comes back.
      WatchNotFound({code, std::nullopt, message, obj.value("reason", "")}, now);
      return out;
    }
    phase_ = Phase::kWatch;
    Fail({code, std::nullopt, message}, now, "watch");
    return out;
  }
  watch_delivered_ = true;
  failures_ = 0;
  watch_not_found_ = 0;
  const std::string rv = MetaString(obj, "resourceVersion");
  if (type == "BOOKMARK") {
    if (!rv.empty()) rv_ = rv;
    return out;
  }
  const std::string key = ObjectCacheKey(obj);
  if (key.empty()) return out;
  if (!rv.empty()) rv_ = rv;
  auto it = items_.find(key);
  if (type == "ADDED" || type == "MODIFIED") {
    if (it == items_.end()) {
      items_[key] = obj;
      out.push_back({"ADDED", key, obj});
    } else if (it->second != obj) {
      it->second = obj;
      out.push_back({"MODIFIED", key, obj});
    }
  } else if (type == "DELETED") {
    if (it != items_.end()) {
      items_.erase(it);
      out.push_back({"DELETED", key, obj});
    }
  } else {
    Log(log::Level::kWarn, "unknown watch event type ignored", {{"type", type}});
  }
  return out;
}

void Reflector::OnWatchFailed(const ApiError& error, TimePoint now) {
  if (error.code == 410) {
    Relist("watch expired (410): " + error.message);
    return;
  }
  if (error.code == 404) {
    WatchNotFound(error, now);
    return;
  }
  phase_ = Phase::kWatch;
  Fail(error, now, "watch");
}

void Reflector::WatchNotFound(const ApiError& error, TimePoint now) {
  // Relist (after the backoff), where a lasting NotFound means gone. The backoff counts the
  // watches answered 404 in a row: a list that works in between resets failures_, and a
  // server that answers lists but 404s watches must not be relisted in a tight loop.
  Relist("watch answered 404: " + error.message);
  failures_ = std::max(failures_, watch_not_found_);
  ++watch_not_found_;
  Fail(error, now, "watch");
}

void Reflector::OnWatchEnded(bool clean, TimePoint now) {
  if (phase_ != Phase::kWatching) return;  // an ERROR event already decided what is next
  phase_ = Phase::kWatch;
  const bool healthy = watch_delivered_ || now - watch_started_ >= options_.min_healthy_watch;
  if (clean && healthy) {
    watch_not_found_ = 0;
    Log(log::Level::kDebug, "watch ended, resuming", {{"resource_version", rv_}});
    return;
  }
  Fail({0, std::nullopt, clean ? "watch closed immediately" : "watch stream broken"}, now, "watch");
}

}  // namespace doorman::controller::kube
