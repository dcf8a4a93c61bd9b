#include "controller/kube/status_writer.h"

#include <memory>
#include <random>

#include "common/log.h"
#include "controller/kube/resources.h"

namespace doorman::controller::kube {
namespace {

using nlohmann::json;

// A request body. Strings reach here from API objects (valid UTF-8) and from our own messages
// (clipped at character boundaries); replace rather than throw if one ever is not.
std::string Body(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

constexpr const char* kMergePatch = "application/merge-patch+json";
constexpr int kMaxTries = 3;

std::string Rv(const json& o) {
  if (!o.is_object() || !o.contains("metadata") || !o["metadata"].is_object()) return "";
  return o["metadata"].value("resourceVersion", "");
}

json StatusOf(const json& o) { return o.is_object() && o.contains("status") ? o["status"] : json(nullptr); }

// What a desired status means, for the backoff: without lastTransitionTime, which is "now" for
// every condition that differs from the object's (so it changes each second while writes fail).
json WithoutTransitionTimes(json v) {
  if (v.is_object()) {
    v.erase("lastTransitionTime");
    for (auto& [k, x] : v.items()) x = WithoutTransitionTimes(std::move(x));
  } else if (v.is_array()) {
    for (auto& x : v) x = WithoutTransitionTimes(std::move(x));
  }
  return v;
}

std::string StatusKey(const ObjectKey& k) { return "status " + k.ToString(); }
std::string EventKey(const ObjectKey& k) { return "event " + k.ToString(); }

std::function<double()> DefaultRandom() {
  auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
  return [rng] { return std::uniform_real_distribution<double>(0.0, 1.0)(*rng); };
}

}  // namespace

StatusWriter::StatusWriter(KubeHttp* http, Getter get, std::string reporting_instance, StatusWriterOptions options)
    : http_(http),
      get_(std::move(get)),
      instance_(std::move(reporting_instance)),
      options_(std::move(options)),
      backoff_(options_.backoff, options_.rand01 ? options_.rand01 : DefaultRandom()) {
  if (!options_.now) options_.now = [] { return std::chrono::steady_clock::now(); };
  if (!options_.wall_now) options_.wall_now = [] { return std::chrono::system_clock::now(); };
}

void StatusWriter::Reset() {
  written_.clear();
  claimed_.clear();
  ip_mode_ = true;  // the API server may have been upgraded meanwhile
  // evented_ is kept: an Event this replica already sent is not sent again when it regains the
  // Lease (its count would grow with every API slowdown); a changed problem is still an Event.
  backoff_.Clear();
}

void StatusWriter::Failed(const std::string& key, const std::string& desired, const ObjectKey& object,
                          const char* what, const HttpResponse& r) {
  ++stats_.failures;
  const std::string error = (r.status ? std::to_string(r.status) + " " : std::string()) + r.ToApiError().message;
  auto line = backoff_.Failed(key, desired, error, options_.now());
  if (!line) return;  // the same error as last logged: counted, reported with the next line
  const std::string message = std::string("writing ") + what + " failed, will retry with backoff";
  const std::string retry_in = std::to_string(line->retry_in.count()) + "ms";
  if (line->previous.empty()) {
    log::Warn("status", message, {{"object", object.ToString()}, {"error", error}, {"retry_in", retry_in}});
  } else {  // the error changed: say how often the previous one repeated unlogged
    log::Warn("status", message,
              {{"object", object.ToString()},
               {"error", error},
               {"retry_in", retry_in},
               {"previous_error", line->previous},
               {"previous_repeats", std::to_string(line->repeats)}});
  }
}

void StatusWriter::Succeeded(const std::string& key, const ObjectKey& object, const char* what) {
  auto line = backoff_.Succeeded(key);
  if (!line) return;
  log::Info("status", std::string("writing ") + what + " succeeded after failures",
            {{"object", object.ToString()},
             {"failures", std::to_string(line->failures)},
             {"last_error", line->previous}});
}

void StatusWriter::Throttled(const HttpResponse& r) {
  const auto wait = r.retry_after.value_or(std::chrono::seconds(1));
  retry_until_ = options_.now() + wait;
  log::Info("status", "API server asked to slow down", {{"retry_after", std::to_string(wait.count()) + "s"}});
}

bool StatusWriter::Sync(const StatusInputs& in) {
  if (options_.now() < retry_until_) return false;
  std::set<ObjectKey> seen;
  std::set<std::string> keys;
  for (const auto& st : in.statuses) {
    keys.insert(StatusKey(st.key));
    keys.insert(EventKey(st.key));
  }
  for (const auto& k : claimed_) keys.insert(StatusKey(k));  // a Release() that fails backs off too
  backoff_.Retain(keys);
  // Healthy objects first: one whose writes fail (or hang) is tried after the others.
  std::vector<const ObjectStatus*> order;
  for (const auto& st : in.statuses) {
    if (!backoff_.Failing(StatusKey(st.key)) && !backoff_.Failing(EventKey(st.key))) order.push_back(&st);
  }
  for (const auto& st : in.statuses) {
    if (backoff_.Failing(StatusKey(st.key)) || backoff_.Failing(EventKey(st.key))) order.push_back(&st);
  }
  for (const ObjectStatus* p : order) {
    const ObjectStatus& st = *p;
    if (in.may_write && !in.may_write()) return false;
    seen.insert(st.key);
    if (st.key.kind == kKindService || st.key.kind == kKindIngress || st.key.kind == kKindLoadBalancer) {
      claimed_.insert(st.key);
    }
    auto object = get_(st.key);
    if (!object) continue;  // not (yet) in the informer cache
    // A Service or Ingress has no condition to say that a dataplane could not open one of its
    // listeners (a LoadBalancer says Programmed=False, ListenerNotServed): it is a warning of its
    // Event, once every dataplane runs its generation (so the report is about this version).
    ObjectStatus with_unserved;
    const ObjectStatus* ev = &st;
    // While a new generation rolls out, the last report stands: dropping it until every
    // dataplane runs the new one would send the same Event again (a count bump per rollout).
    if ((st.key.kind == kKindService || st.key.kind == kKindIngress) && st.accepted && in.served != nullptr) {
      const status::ProgrammedCount pc = status::CountProgrammed(st, in.dataplanes, *in.served);
      if (pc.ready > 0 && pc.acked == pc.ready) {
        if (std::string now = status::UnservedListeners(st, in.dataplanes); !now.empty()) {
          unserved_[st.key] = std::move(now);
        } else {
          unserved_.erase(st.key);
        }
      }
      if (auto u = unserved_.find(st.key); u != unserved_.end()) {
        with_unserved = st;
        with_unserved.warnings.push_back({"ListenerNotServed", "spec", u->second});
        ev = &with_unserved;
      }
    } else {
      unserved_.erase(st.key);
    }
    if (!st.accepted) {
      if (!EmitEvent(st, *object, in)) return false;
    } else if (!ev->warnings.empty()) {
      if (!EmitEvent(status::WarningsAsProblem(*ev), *object, in)) return false;
    } else {
      evented_.erase(st.key);
    }
    if (!WriteStatus(st, in, std::move(*object))) return false;
  }
  for (auto it = claimed_.begin(); it != claimed_.end();) {
    if (seen.count(*it)) {
      ++it;
      continue;
    }
    if (in.may_write && !in.may_write()) return false;
    const ObjectKey key = *it;
    if (!Release(key, in)) return false;
    it = claimed_.upper_bound(key);
  }
  // Kept while a release is pending: it is what the release compares the stored status with.
  for (auto it = written_.begin(); it != written_.end();) {
    it = seen.count(it->first) || claimed_.count(it->first) ? std::next(it) : written_.erase(it);
  }
  for (auto it = evented_.begin(); it != evented_.end();) it = seen.count(it->first) ? std::next(it) : evented_.erase(it);
  for (auto it = unserved_.begin(); it != unserved_.end();) it = seen.count(it->first) ? std::next(it) : unserved_.erase(it);
  for (auto it = pending_event_.begin(); it != pending_event_.end();) {
    it = seen.count(it->first) ? std::next(it) : pending_event_.erase(it);
  }
  return true;
}

bool StatusWriter::Release(const ObjectKey& key, const StatusInputs& in) {
  const Resource* res = ResourceForKind(key.kind);
  auto object = get_(key);
  if (res && !object && key.kind == kKindLoadBalancer) {
    // Not in the cache: deleted, or no longer selected by --loadbalancer-selector (the API
    // server filters the watch, so a relabelled object looks deleted). Asked directly.
    const std::string skey = StatusKey(key);
    if (!backoff_.Ready(skey, "release", options_.now())) {
      ++stats_.deferred;
      return true;
    }
    HttpResponse g = http_->Request("GET", res->object_path(key.ns, key.name));
    if (g.status == 429) {
      Throttled(g);
      return false;
    }
    auto fresh = json::parse(g.body, nullptr, false);
    if (g.ok() && fresh.is_object()) {
      object = std::move(fresh);
    } else if (g.status != 404) {
      Failed(skey, "release", key, "status", g);
      return true;
    }
  }
  if (!res || !object) {  // deleted
    claimed_.erase(key);
    return true;
  }
  if (key.kind == kKindLoadBalancer) return ReleaseLoadBalancer(key, *res, *object);
  if (in.dataplanes.empty()) return true;  // our addresses are unknown for now: retried later
  const json current = StatusOf(*object);
  const json* points = nullptr;
  if (current.is_object() && current.contains("loadBalancer") && current["loadBalancer"].is_object() &&
      current["loadBalancer"].contains("ingress") && current["loadBalancer"]["ingress"].is_array()) {
    points = &current["loadBalancer"]["ingress"];
  }
  // Only our own addresses are taken away: another controller that claimed the object meanwhile
  // may have written its own already.
  std::set<std::string> ours;
  for (const auto& d : in.dataplanes) {
    if (!d.advertise_address.empty()) ours.insert(d.advertise_address);
  }
  bool only_ours = points != nullptr && !points->empty();
  for (size_t i = 0; only_ours && i < points->size(); ++i) {
    const json& p = (*points)[i];
    const std::string a = p.is_object() ? p.value("ip", p.value("hostname", "")) : "";
    only_ours = ours.count(a) > 0;
  }
  // And when this process wrote them, exactly what it wrote (another controller publishing the
  // same node addresses may have written since).
  if (auto w = written_.find(key); only_ours && w != written_.end()) {
    const json& mine = w->second.status;
    // ipMode aside: an API server that drops it stores the points without it.
    only_ours = mine.is_object() && mine.contains("loadBalancer") && mine["loadBalancer"].is_object() &&
                status::WithoutIpMode(mine)["loadBalancer"].value("ingress", json()) ==
                    status::WithoutIpMode(current)["loadBalancer"]["ingress"];
  }
  if (!only_ours) {
    claimed_.erase(key);
    return true;
  }
  return SendRelease(key, *res, {{"status", {{"loadBalancer", {{"ingress", nullptr}}}}}, {"metadata", {{"resourceVersion", Rv(*object)}}}},
                     "no longer served: status.loadBalancer cleared");
}

bool StatusWriter::SendRelease(const ObjectKey& key, const Resource& res, const json& patch, const char* done) {
  const std::string skey = StatusKey(key);
  if (!backoff_.Ready(skey, "release", options_.now())) {
    ++stats_.deferred;
    return true;
  }
  HttpResponse r = http_->Request("PATCH", res.object_path(key.ns, key.name, "status"), Body(patch), kMergePatch);
  if (r.status == 429) {
    Throttled(r);
    return false;
  }
  if (r.ok() || r.status == 404) {
    ++stats_.status_writes;
    Succeeded(skey, key, "status");
    log::Info("status", done, {{"object", key.ToString()}});
    claimed_.erase(key);
    written_.erase(key);
  } else if (r.status != 409) {  // 409: the informer has a newer version; the next pass retries
    Failed(skey, "release", key, "status", r);
  }
  return true;
}

// A LoadBalancer this install claims no more (its labels changed under --loadbalancer-selector):
// a status saying Accepted and Programmed with our addresses would mislead `kubectl wait` and
// external-dns, so it is removed when it is what this replica wrote, or found as it would have
// written it (written_), not another install's, which may carry the same node addresses. A
// replica that never served it (after a restart or failover) leaves it.
bool StatusWriter::ReleaseLoadBalancer(const ObjectKey& key, const Resource& res, const json& object) {
  const json current = StatusOf(object);
  if (!current.is_object() || current.empty()) {
    claimed_.erase(key);
    return true;
  }
  // Not by the addresses: two installs whose dataplanes advertise the same node addresses would
  // take each other's status for their own (helper-128).
  const auto w = written_.find(key);
  if (w == written_.end() || WithoutTransitionTimes(w->second.status) != WithoutTransitionTimes(current)) {
    claimed_.erase(key);
    return true;
  }
  return SendRelease(key, res, {{"status", nullptr}, {"metadata", {{"resourceVersion", Rv(object)}}}},
                     "no longer claimed: status removed");
}

bool StatusWriter::WriteStatus(const ObjectStatus& st, const StatusInputs& in, json object) {
  const Resource* res = ResourceForKind(st.key.kind);
  if (!res) return true;
  static const status::ServedGenerations kNone;
  const status::ServedGenerations& served = in.served ? *in.served : kNone;
  for (int attempt = 0; attempt < kMaxTries; ++attempt) {
    // Leadership is asked again after each re-read (a GET can take up to the request bound): a
    // replica that lost the Lease meanwhile must not write its stale view over the new
    // leader's (helper-123). Sync asked before the first attempt.
    if (attempt > 0 && in.may_write && !in.may_write()) return false;
    const json current = StatusOf(object);
    // ipMode unless this API server was seen to drop it; never taken away from a stored status that
    // has it (the server keeps it, whatever another object's write showed).
    const bool ip_mode = ip_mode_ || status::HasIpMode(current);
    auto desired = status::DesiredStatus(st, in.dataplanes, served, current, FormatTime(options_.wall_now()), ip_mode);
    if (!desired) return true;
    const json current_cmp = current.is_null() ? json::object() : current;
    if (*desired == current_cmp) {
      // Already as this replica would write it (a previous leader of this install wrote it):
      // this replica now answers for it, so it may release it later (helper-133).
      written_[st.key] = {Rv(object), *desired};
      return true;
    }
    const std::string rv = Rv(object);
    // We wrote this already and the informer has not caught up yet. Compared without
    // lastTransitionTime: a condition that changes is stamped "now", which moves on each second.
    if (auto w = written_.find(st.key); w != written_.end() && w->second.from_rv == rv &&
                                        WithoutTransitionTimes(w->second.status) == WithoutTransitionTimes(*desired)) {
      return true;
    }
    const std::string key = StatusKey(st.key);
    const std::string fingerprint = Body(WithoutTransitionTimes(*desired));
    if (!backoff_.Ready(key, fingerprint, options_.now())) {
      ++stats_.deferred;
      return true;
    }
    const std::string path = res->object_path(st.key.ns, st.key.name, "status");
    HttpResponse r = http_->Request("PATCH", path, Body(status::StatusPatch(current, *desired, rv)), kMergePatch);
    if (r.ok()) {
      ++stats_.status_writes;
      written_[st.key] = {rv, *desired};
      if (st.key.kind == kKindService && status::HasIpMode(*desired)) {
        // The object as stored, in the answer to our own write: without the ipMode we sent, this
        // API server drops the field (Kubernetes before 1.30, or the LoadBalancerIPMode gate off).
        // Asking for it again would never settle; it is tried again after a leadership change.
        const json stored = json::parse(r.body, nullptr, false);
        if (stored.is_object() && stored.contains("status") && !status::HasIpMode(stored["status"]) &&
            status::WithoutIpMode(*desired) == stored["status"]) {
          if (ip_mode_) {
            log::Warn("status",
                      "the API server does not keep status.loadBalancer.ingress[].ipMode (Kubernetes >= 1.30 "
                      "does): Services are written without it, and kube-proxy routes their load-balancer IPs "
                      "itself on every node, so connections to a node's own address can bypass doorman",
                      {{"object", st.key.ToString()}});
          }
          ip_mode_ = false;
          written_[st.key].status = stored["status"];
        }
      }
      Succeeded(key, st.key, "status");
      log::Debug("status", "status written", {{"object", st.key.ToString()}});
      return true;
    }
    if (r.status == 429) {
      Throttled(r);
      return false;
    }
    if (r.status == 409) {  // stale: re-read and recompute against the object as it is now
      HttpResponse g = http_->Request("GET", res->object_path(st.key.ns, st.key.name));
      if (g.status == 404) {
        backoff_.Succeeded(key);
        return true;
      }
      auto fresh = json::parse(g.body, nullptr, false);
      if (g.ok() && fresh.is_object()) {
        object = std::move(fresh);
        continue;
      }
      r = g;
    }
    if (r.status == 404) {  // deleted meanwhile
      backoff_.Succeeded(key);
      return true;
    }
    Failed(key, fingerprint, st.key, "status", r);
    return true;
  }
  return true;
}

bool StatusWriter::EmitEvent(const ObjectStatus& st, const json& object, const StatusInputs& in) {
  const std::string what = st.reason + "\n" + st.message;
  if (auto it = evented_.find(st.key); it != evented_.end() && it->second == what) return true;
  const std::string key = EventKey(st.key);
  if (!backoff_.Ready(key, what, options_.now())) {
    ++stats_.deferred;
    return true;
  }
  const Resource* res = ResourceForKind(st.key.kind);
  const std::string api_version = res ? res->api_version() : "v1";
  const std::string now = FormatTime(options_.wall_now());
  json event = status::WarningEvent(st, object, api_version, instance_, now);
  const std::string ns = event["metadata"]["namespace"].get<std::string>();
  const std::string name = event["metadata"]["name"].get<std::string>();
  const std::string path = EventResource().object_path(ns, name);
  const std::string collection = EventResource().namespaced_collection_path(ns);
  PendingEvent sent{name, 1, now};
  bool wrote = false;  // a create or a count bump was sent (not only a read)
  bool lost_lease = false;
  HttpResponse r;
  // Bumps the count of an Event that exists (reported before, by us or a previous leader).
  auto bump = [&](const json& existing) {
    // After a read: still the leader? (as WriteStatus after a re-read)
    if (in.may_write && !in.may_write()) {
      lost_lease = true;
      return HttpResponse{};
    }
    json patch = status::EventRepeatPatch(existing, now);
    sent.count = patch["count"].get<int64_t>();
    wrote = true;
    return http_->Request("PATCH", path, Body(patch), kMergePatch);
  };
  auto pending = pending_event_.find(st.key);
  if (pending != pending_event_.end() && pending->second.name == name) {
    // The previous write's answer was lost: read before writing again.
    HttpResponse g = http_->Request("GET", path);
    auto existing = json::parse(g.body, nullptr, false);
    if (g.ok() && existing.is_object()) {
      const bool applied = existing.value("count", int64_t{1}) == pending->second.count &&
                           existing.value("lastTimestamp", "") == pending->second.last_timestamp;
      r = applied ? g : bump(existing);
    } else if (g.status == 404) {  // it was not applied
      if (in.may_write && !in.may_write()) return false;
      wrote = true;
      r = http_->Request("POST", collection, Body(event));
    } else {
      r = g;
    }
  } else {
    wrote = true;
    r = http_->Request("POST", collection, Body(event));
    if (r.status == 409) {
      // The same problem was reported before (by us, or by a previous leader): count the repeat.
      HttpResponse g = http_->Request("GET", path);
      auto existing = json::parse(g.body, nullptr, false);
      r = g.ok() ? bump(existing) : g;
    }
  }
  if (lost_lease) return false;
  if (r.ok()) {
    pending_event_.erase(st.key);
  } else if (wrote && (r.status == 0 || r.status >= 500)) {
    pending_event_[st.key] = sent;  // the outcome of what was sent is unknown
  }
  if (r.status == 429) {
    Throttled(r);
    return false;
  }
  if (!r.ok()) {
    Failed(key, what, st.key, "an Event", r);
    return true;
  }
  Succeeded(key, st.key, "an Event");
  ++stats_.event_writes;
  evented_[st.key] = what;
  log::Info("status", "Warning event", {{"object", st.key.ToString()}, {"reason", st.reason}});
  return true;
}

}  // namespace doorman::controller::kube
