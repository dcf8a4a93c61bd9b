// libFuzzer target: the PROXY protocol v1/v2 parser (a listener with proxyProtocol reads it from
// untrusted peers). Properties: never crashes; `consumed` is within the input and the bounds;
// a prefix never decides differently from the whole; a parsed header with addresses encodes and
// parses back to the same addresses.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dataplane/l4/proxy_protocol.h"

using namespace doorman::l4;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const ProxyParseResult r = ParseProxyHeader(all);
  if (r.status == ProxyParseResult::kDone) {
    if (r.consumed == 0 || r.consumed > size) std::abort();
    if (r.consumed > (r.header.version == 1 ? kMaxV1Length : kMaxV2Length)) std::abort();
    // Bytes after the header are payload: appending more never changes the header.
    const ProxyParseResult again = ParseProxyHeader(std::string(all) + "PAYLOAD");
    if (again.status != ProxyParseResult::kDone || again.consumed != r.consumed) std::abort();
    if (!r.header.local && r.header.source.v6 == r.header.destination.v6) {
      for (int version : {1, 2}) {
        const std::string enc = EncodeProxyHeader(version, r.header.source, r.header.destination);
        const ProxyParseResult back = ParseProxyHeader(enc);
        if (back.status != ProxyParseResult::kDone || back.consumed != enc.size()) std::abort();
        if (back.header.source.ip != r.header.source.ip || back.header.source.port != r.header.source.port ||
            back.header.destination.ip != r.header.destination.ip ||
            back.header.destination.port != r.header.destination.port) {
          std::abort();
        }
      }
    }
  }
  if (size > 1) {
    const ProxyParseResult head = ParseProxyHeader(all.substr(0, size / 2));
    if (head.status == ProxyParseResult::kDone &&
        (r.status != ProxyParseResult::kDone || r.consumed != head.consumed)) {
      std::abort();
    }
    if (head.status == ProxyParseResult::kInvalid && r.status != ProxyParseResult::kInvalid) std::abort();
  }
  return 0;
}
