// libFuzzer target: the TLS ClientHello SNI parser (TLS passthrough reads untrusted bytes).
// Properties: never crashes or reads out of bounds; the answer for a prefix is consistent with
// the answer for the whole (incremental feeding); a name found is lower-case and non-empty-safe.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dataplane/l4/sni.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using doorman::l4::ParseClientHelloSni;
  using doorman::l4::SniResult;
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const SniResult whole = ParseClientHelloSni(all);
  for (char c : whole.server_name) {
    if (c >= 'A' && c <= 'Z') std::abort();  // names are lower-cased
  }
  // Fed in two pieces, as from two TCP reads: a prefix never decides differently from the whole
  // (it may only ask for more), and once decided it stays decided.
  if (size > 1) {
    const SniResult head = ParseClientHelloSni(all.substr(0, size / 2));
    if (head.status == SniResult::kDone &&
        (whole.status != SniResult::kDone || whole.server_name != head.server_name)) {
      std::abort();
    }
    if (head.status == SniResult::kInvalid && whole.status != SniResult::kInvalid) std::abort();
  }
  doorman::l4::SniMatcher m;
  m.exact = {"a.example.com"};
  m.suffixes = {".example.com"};
  (void)m.MatchRank(whole.server_name);
  return 0;
}
