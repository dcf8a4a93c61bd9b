#include "dataplane/l7/header_rewrite.h"

#include <boost/beast/http/rfc7230.hpp>
#include <string>
#include <vector>

namespace doorman::dataplane {

namespace http = boost::beast::http;

namespace {
bool IEquals(std::string_view a, std::string_view b) { return boost::beast::iequals(a, b); }
}  // namespace

template <bool isRequest>
void StripHopByHop(http::header<isRequest, http::fields>& h) {
  std::vector<std::string> named;
  // Walk the whole list: Beast keeps fields in arrival order, repeated names need not be adjacent.
  for (const auto& f : h) {
    if (f.name() != http::field::connection) continue;
    for (const auto token : http::token_list{f.value()}) {
      const std::string_view t(token.data(), token.size());
      if (IEquals(t, "content-length") || IEquals(t, "transfer-encoding") || IEquals(t, "host")) continue;
      named.emplace_back(t);
    }
  }
  for (const auto& n : named) h.erase(n);
  for (const auto f : {http::field::connection, http::field::keep_alive, http::field::proxy_connection, http::field::te,
                       http::field::trailer, http::field::upgrade}) {
    h.erase(f);
  }
}

template void StripHopByHop<true>(http::header<true, http::fields>&);
template void StripHopByHop<false>(http::header<false, http::fields>&);

bool PrepareUpstreamRequest(http::request_header<>& h, const ForwardedInfo& info) {
  bool expect_continue = false;
  if (auto it = h.find(http::field::expect); it != h.end()) {
    expect_continue = IEquals(it->value(), "100-continue");
    h.erase(http::field::expect);
  }
  StripHopByHop(h);
  h.version(11);
  if (!info.authority.empty()) {
    h.set(http::field::host, info.authority);
    h.target(info.origin_target);
  }
  switch (info.forwarded_for) {
    case ForwardedForMode::kOff:
      if (!info.trusted) h.erase("X-Forwarded-For");
      break;
    case ForwardedForMode::kReplace:
      h.set("X-Forwarded-For", info.client_ip);
      break;
    case ForwardedForMode::kAppend: {
      std::string value;
      if (info.trusted) {
        for (const auto& f : h) {
          if (!IEquals(f.name_string(), "x-forwarded-for")) continue;
          if (!value.empty()) value += ", ";
          value.append(f.value().data(), f.value().size());
        }
      }
      if (!value.empty()) value += ", ";
      value.append(info.client_ip);
      h.set("X-Forwarded-For", value);
      break;
    }
  }
  auto set_unless_trusted = [&](std::string_view name, std::string_view value) {
    if (info.trusted && h.find(name) != h.end()) return;
    if (value.empty()) {
      h.erase(name);
    } else {
      h.set(name, value);
    }
  };
  set_unless_trusted("X-Forwarded-Proto", info.proto);
  set_unless_trusted("X-Forwarded-Host", info.host);
  set_unless_trusted("X-Forwarded-Port", info.port);
  if (!info.request_id.empty()) h.set("X-Request-Id", info.request_id);
  return expect_continue;
}

void ApplyHeaderRules(http::fields& f, const HeaderRules& rules) {
  for (const auto& name : rules.remove) f.erase(name);
  for (const auto& [name, value] : rules.set) f.set(name, value);
  for (const auto& [name, value] : rules.add) f.insert(name, value);
}

}  // namespace doorman::dataplane
