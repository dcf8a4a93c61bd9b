// TLS passthrough: find the server_name (SNI) in a ClientHello without decrypting anything.
// Pure and incremental: feed the bytes received so far from the client; the ClientHello may be
// split across TCP reads and across TLS records (fragmented handshake), up to
// kMaxClientHelloBytes of records in total. The bytes themselves are forwarded untouched by the
// caller once a route is chosen.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace doorman::l4 {

inline constexpr std::size_t kMaxClientHelloBytes = 16 * 1024;

struct SniResult {
  enum Status { kNeedMore, kDone, kInvalid } status = kNeedMore;
  std::string server_name;  // kDone: lower-cased host name; empty when the client sent no SNI
  const char* error = "";   // kInvalid: why
};

SniResult ParseClientHelloSni(std::string_view data);

// Route selection for TLS passthrough: exact names and "*.suffix" wildcards (a wildcard matches
// any name ending in ".suffix", not the bare suffix), case-insensitive. Names are stored lower-case.
struct SniMatcher {
  std::vector<std::string> exact;
  std::vector<std::string> suffixes;  // ".example.com" for "*.example.com"
  bool empty() const { return exact.empty() && suffixes.empty(); }
  bool Matches(std::string_view lower_name) const;
  // How specifically `lower_name` matches, lower = more specific: {0, -length} for an exact
  // name, {1, -length of the suffix} for the longest matching wildcard; nullopt if none does.
  std::optional<std::pair<int, int64_t>> MatchRank(std::string_view lower_name) const;
};

}  // namespace doorman::l4
