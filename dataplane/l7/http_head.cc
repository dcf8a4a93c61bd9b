#include "dataplane/l7/http_head.h"

#include <time.h>

#include <cstdio>

#include <boost/beast/core/string.hpp>
#include <algorithm>
#include <cstring>
#include <boost/beast/http/status.hpp>

namespace doorman::dataplane {

std::string FormatHttpDate(int64_t t) {
  static constexpr const char* kDays[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};  // day 0 = Thursday
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (t < 0) t = 0;
  int64_t days = t / 86400;
  const int64_t secs = t % 86400;
  const char* wday = kDays[days % 7];
  // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
  days += 719468;
  const int64_t era = days / 146097;
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", wday, static_cast<int>(d), kMonths[m - 1],
                static_cast<int>(y), static_cast<int>(secs / 3600), static_cast<int>(secs / 60 % 60),
                static_cast<int>(secs % 60));
  return buf;
}

std::string_view HttpDateNow() {
  // A fixed buffer: the view stays valid (its bytes change once a second, its storage never).
  thread_local int64_t cached_second = -1;
  thread_local char cached[32];
  thread_local std::size_t cached_len = 0;
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);  // vDSO, no syscall
  if (ts.tv_sec != cached_second) {
    cached_second = ts.tv_sec;
    const std::string d = FormatHttpDate(ts.tv_sec);
    cached_len = std::min(d.size(), sizeof cached);
    std::memcpy(cached, d.data(), cached_len);
  }
  return std::string_view(cached, cached_len);
}


namespace http = boost::beast::http;

namespace {
bool IEq(std::string_view a, std::string_view b) { return boost::beast::iequals(a, b); }
}  // namespace

void HttpHead::Clear() {
  raw_.clear();
  added_.clear();
  fields_.clear();
  method_ = http::verb::unknown;
  method_off_ = method_len_ = target_off_ = target_len_ = reason_off_ = reason_len_ = 0;
  target_override_.reset();
  version_ = 11;
  status_ = 0;
}

void HttpHead::SetRequestLine(http::verb method, std::string_view method_str, std::string_view target,
                              unsigned version) {
  method_ = method;
  method_off_ = Append(raw_, method_str);
  method_len_ = static_cast<uint32_t>(method_str.size());
  target_off_ = Append(raw_, target);
  target_len_ = static_cast<uint32_t>(target.size());
  version_ = version;
}

void HttpHead::SetStatusLine(unsigned status, std::string_view reason, unsigned version) {
  status_ = status;
  reason_off_ = Append(raw_, reason);
  reason_len_ = static_cast<uint32_t>(reason.size());
  version_ = version;
}

void HttpHead::AddField(bool added, http::field id, std::string_view name, std::string_view value) {
  std::string& bytes = added ? added_ : raw_;
  Field f;
  f.id = id;
  f.added = added;
  f.name_off = Append(bytes, name);
  f.name_len = static_cast<uint32_t>(name.size());
  f.value_off = Append(bytes, value);
  f.value_len = static_cast<uint32_t>(value.size());
  fields_.push_back(f);
}

void HttpHead::AddReceived(http::field id, std::string_view name, std::string_view value) {
  AddField(false, id, name, value);
}

std::size_t HttpHead::live_field_count() const {
  std::size_t n = 0;
  for (const auto& f : fields_) n += f.removed ? 0 : 1;
  return n;
}

std::optional<std::string_view> HttpHead::Get(std::string_view n) const {
  for (const auto& f : fields_) {
    if (!f.removed && IEq(name(f), n)) return value(f);
  }
  return std::nullopt;
}

std::optional<std::string_view> HttpHead::Get(http::field id) const {
  if (id == http::field::unknown) return std::nullopt;
  for (const auto& f : fields_) {
    if (!f.removed && f.id == id) return value(f);
  }
  return std::nullopt;
}

std::size_t HttpHead::Count(std::string_view n) const {
  std::size_t c = 0;
  for (const auto& f : fields_) c += (!f.removed && IEq(name(f), n)) ? 1 : 0;
  return c;
}

std::size_t HttpHead::Count(http::field id) const {
  std::size_t c = 0;
  for (const auto& f : fields_) c += (!f.removed && f.id == id && id != http::field::unknown) ? 1 : 0;
  return c;
}

void HttpHead::Erase(std::string_view n) {
  for (auto& f : fields_) {
    if (!f.removed && IEq(name(f), n)) f.removed = true;
  }
}

void HttpHead::Erase(http::field id) {
  if (id == http::field::unknown) return;
  for (auto& f : fields_) {
    if (f.id == id) f.removed = true;
  }
}

void HttpHead::Insert(std::string_view n, std::string_view v) { Insert(http::string_to_field(n), n, v); }

void HttpHead::Set(http::field id, std::string_view n, std::string_view v) {
  if (id == http::field::unknown) {
    Erase(n);
  } else {
    Erase(id);
  }
  Insert(id, n, v);
}

void HttpHead::Insert(http::field id, std::string_view n, std::string_view v) { AddField(true, id, n, v); }

void HttpHead::Set(std::string_view n, std::string_view v) { Set(http::string_to_field(n), n, v); }

void HttpHead::AppendFields(std::string* out) const {
  // One resize and plain copies: measurably cheaper than four appends per field.
  std::size_t total = 2;
  for (const auto& f : fields_) total += f.removed ? 0 : f.name_len + f.value_len + 4;
  const std::size_t base = out->size();
  out->resize(base + total);
  char* p = out->data() + base;
  for (const auto& f : fields_) {
    if (f.removed) continue;
    const std::string& s = f.added ? added_ : raw_;
    std::memcpy(p, s.data() + f.name_off, f.name_len);
    p += f.name_len;
    *p++ = ':';
    *p++ = ' ';
    std::memcpy(p, s.data() + f.value_off, f.value_len);
    p += f.value_len;
    *p++ = '\r';
    *p++ = '\n';
  }
  *p++ = '\r';
  *p = '\n';
}

void HttpHead::SerializeRequest(std::string* out) const {
  out->append(method_string()).append(" ").append(target()).append(" HTTP/1.1\r\n");
  AppendFields(out);
}

void HttpHead::SerializeResponse(std::string* out) const {
  char code[4] = {static_cast<char>('0' + status_ / 100 % 10), static_cast<char>('0' + status_ / 10 % 10),
                  static_cast<char>('0' + status_ % 10), ' '};
  out->append("HTTP/1.1 ").append(code, 4);
  const auto r = reason();
  if (r.empty()) {
    // No reason received: the standard one, or none for a code Beast does not know (103, 299,
    // ...), where Beast would give the text "<unknown-status>". The space stays (RFC 9112 §4).
    const auto dr = http::obsolete_reason(static_cast<http::status>(status_));
    if (dr.empty() || dr.front() != '<') out->append(dr.data(), dr.size());
  } else {
    out->append(r);
  }
  out->append("\r\n");
  AppendFields(out);
}

}  // namespace doorman::dataplane
