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
      break;
    case ForwardedForMode::kReplace:
      h.set("X-Forwarded-For", info.client_ip);
      break;
    case ForwardedForMode::kAppend: {
      std::string value;
      for (const auto& f : h) {
        if (!IEquals(f.name_string(), "x-forwarded-for")) continue;
        if (!value.empty()) value += ", ";
        value.append(f.value().data(), f.value().size());
      }
      if (!value.empty()) value += ", ";
      value.append(info.client_ip);
      h.set("X-Forwarded-For", value);
      break;
    }
  }
  h.set("X-Forwarded-Proto", info.proto);
  if (!info.host.empty()) h.set("X-Forwarded-Host", info.host);
  return expect_continue;
}

}  // namespace doorman::dataplane
