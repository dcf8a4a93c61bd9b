// Small non-cryptographic hashes for deterministic versions and consistent hashing.
#pragma once

#include <cstdint>
#include <string_view>

namespace doorman {

// 64-bit FNV-1a. Stable across processes, platforms and releases (it is part of the wire
// contract: snapshot versions are derived from it).
constexpr uint64_t Fnv1a64(std::string_view data, uint64_t seed = 0xcbf29ce484222325ULL) {
  uint64_t h = seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// Content version: FNV-1a folded to 53 bits (exact as a double, so a Prometheus gauge can carry
// it). Never 0: 0 means "no state".
constexpr uint64_t ContentVersion(std::string_view bytes) {
  const uint64_t h = Fnv1a64(bytes);
  const uint64_t v = (h ^ (h >> 53)) & ((uint64_t{1} << 53) - 1);
  return v == 0 ? 1 : v;
}

}  // namespace doorman
