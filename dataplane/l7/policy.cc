#include "dataplane/l7/policy.h"

#include <cstdio>

#include <algorithm>
#include <cmath>

#include "common/cookie_prefix.h"
#include "common/hash.h"

namespace doorman::dataplane {

std::optional<bool> CanaryByRequest(const CanaryPolicy& c, std::optional<std::string_view> header_value,
                                    std::optional<std::string_view> cookie_value) {
  if (!c.enabled) return false;
  if (!c.header_lower.empty() && header_value) {
    if (c.header_values.empty()) {
      if (*header_value == "always") return true;
    } else if (std::find(c.header_values.begin(), c.header_values.end(), *header_value) != c.header_values.end()) {
      return true;
    }
    // ingress-nginx: "never" (without listed values) → main; any other value is ignored and the
    // cookie, then the weight, decide.
    if (*header_value == "never" && c.header_values.empty()) return false;
  }
  if (!c.cookie.empty() && cookie_value) {
    if (*cookie_value == "always") return true;
    if (*cookie_value == "never") return false;
  }
  return std::nullopt;
}

bool UseCanary(const CanaryPolicy& c, std::optional<std::string_view> header_value,
               std::optional<std::string_view> cookie_value, uint32_t dice) {
  if (auto forced = CanaryByRequest(c, header_value, cookie_value)) return *forced;
  return dice < c.weight_percent;
}

uint64_t StickyHash(std::string_view endpoint_key) { return Fnv1a64(endpoint_key, Fnv1a64("doorman-sticky-v2")); }

std::string StickyCookieValue(uint64_t hash) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = kHex[hash & 0xf];
    hash >>= 4;
  }
  return out;
}

std::optional<uint64_t> ParseStickyCookieValue(std::string_view v) {
  if (v.size() != 16) return std::nullopt;
  uint64_t h = 0;
  for (char c : v) {
    uint64_t d;
    if (c >= '0' && c <= '9') {
      d = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return std::nullopt;
    }
    h = (h << 4) | d;
  }
  return h;
}

std::string StickySetCookie(std::string_view name, std::string_view value, std::chrono::milliseconds ttl, bool secure,
                            std::string_view path) {
  // Behind a TLS front the proxy's own listener may be plain HTTP, so the name's prefix
  // (common/cookie_prefix.h), not the listener, decides.
  const bool host_prefix = IsHostPrefixedCookie(name);
  if (host_prefix || IsSecurePrefixedCookie(name)) secure = true;
  if (host_prefix) path = "/";
  std::string out(name);
  out += "=";
  out += value;
  out += "; Path=";
  out += path.empty() ? std::string_view("/") : path;
  out += "; HttpOnly";
  if (ttl.count() > 0) out += "; Max-Age=" + std::to_string(std::max<int64_t>(1, ttl.count() / 1000));
  if (secure) out += "; Secure";
  return out;
}

void TokenBucket::Refill(SteadyTime now) {
  if (now > last_) {
    tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
    last_ = now;
  }
}

bool TokenBucket::Take(SteadyTime now, uint32_t* retry_after_s) {
  Refill(now);
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return true;
  }
  const double wait = rate_ > 0 ? (1.0 - tokens_) / rate_ : 1.0;
  *retry_after_s = static_cast<uint32_t>(std::max(1.0, std::ceil(wait)));
  return false;
}

bool TokenBucket::Full(SteadyTime now) const {
  const double t = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
  return t >= burst_;
}

namespace {
double BurstOf(uint32_t rps, uint32_t burst) { return std::max<double>(1.0, burst == 0 ? rps : burst); }
}  // namespace

RateLimiter::RateLimiter(uint32_t rps, uint32_t burst, std::size_t max_keys)
    : rate_(rps), burst_(BurstOf(rps, burst)), max_keys_(max_keys) {}

bool RateLimiter::SameLimits(uint32_t rps, uint32_t burst) const {
  return rate_ == static_cast<double>(rps) && burst_ == BurstOf(rps, burst);
}

bool RateLimiter::Allow(std::string_view key, SteadyTime now, uint32_t* retry_after_s) {
  std::string long_key;
  if (key.size() > kMaxRateLimitKeyBytes) {
    char tail[24];
    std::snprintf(tail, sizeof tail, "#%016zx", std::hash<std::string_view>{}(key));
    long_key.assign(key.substr(0, kMaxRateLimitKeyBytes - 17));
    long_key += tail;
    key = long_key;
  }
  std::lock_guard lock(mu_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_keys_) {
      std::erase_if(buckets_, [&](const auto& kv) { return kv.second.Full(now); });
      if (buckets_.size() >= max_keys_) {
        std::size_t n = 0;
        std::erase_if(buckets_, [&](const auto&) { return n++ % 16 == 0; });
      }
    }
    it = buckets_.emplace(std::string(key), TokenBucket(rate_, burst_, now)).first;
  }
  return it->second.Take(now, retry_after_s);
}

std::size_t RateLimiter::keys() const {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

bool IsIdempotentMethod(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE" || m == "TRACE";
}

namespace {
int64_t Ms(SteadyTime t) { return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count(); }
}  // namespace

const OutlierDetector& OutlierDetector::Default() {
  static const OutlierDetector detector;
  return detector;
}

void OutlierDetector::OnSuccess(lb::EndpointState& e) const {
  // Read first: the common case (no failures) stores nothing to a line other workers read.
  if (e.consecutive_failures.load(std::memory_order_relaxed) != 0) e.consecutive_failures.store(0, std::memory_order_relaxed);
}

bool OutlierDetector::OnFailure(lb::EndpointState& e, SteadyTime now) const {
  const int64_t now_ms = Ms(now);
  int64_t until = e.ejected_until_ms.load(std::memory_order_acquire);
  if (until > now_ms) return false;  // already ejected
  if (e.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1 < config_.consecutive_failures) return false;
  uint32_t ejections = e.ejections.load(std::memory_order_relaxed);
  if (ejections > 0 && now_ms - until > config_.max_ejection.count()) ejections = 0;  // healthy long enough
  const uint32_t shift = std::min<uint32_t>(ejections, 20);
  const int64_t duration = std::min<int64_t>(config_.base_ejection.count() * (int64_t{1} << shift), config_.max_ejection.count());
  // One worker wins the ejection; another that crossed the threshold at the same time sees it done.
  if (!e.ejected_until_ms.compare_exchange_strong(until, now_ms + duration, std::memory_order_acq_rel)) return false;
  e.ejections.store(ejections + 1, std::memory_order_relaxed);
  e.consecutive_failures.store(0, std::memory_order_relaxed);
  return true;
}

bool OutlierDetector::Ejected(const lb::EndpointState& e, SteadyTime now) const {
  return e.ejected_until_ms.load(std::memory_order_acquire) > Ms(now);
}

}  // namespace doorman::dataplane
