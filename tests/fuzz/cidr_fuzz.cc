// libFuzzer target: CIDR parsing (allowedSourceRanges, loadBalancerSourceRanges, trustedProxies
// reach the dataplane as text) and matching. Properties: never crashes; a parsed prefix is in
// range for its family; an address always lies in its own /32 or /128.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "dataplane/l4/cidr.h"

using namespace doorman::l4;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto c = ParseCidr(text);
  if (c) {
    if (c->prefix < 0 || c->prefix > (c->v6 ? 128 : 32)) std::abort();
    if (!CidrContains(*c, c->addr.data(), c->v6 ? 16 : 4)) std::abort();  // its own network address
    const std::vector<Cidr> ranges{*c};
    (void)AnyContains(ranges, text);
    (void)AnyContains(ranges, "::ffff:10.1.2.3");
    uint8_t any[16] = {};
    (void)SourceAllowed(ranges, any, 4);
    (void)SourceAllowed(ranges, any, 16);
  }
  return 0;
}
