#include "dataplane/lb/maglev.h"

#include <algorithm>
#include <string_view>

namespace doorman::lb {

std::vector<uint32_t> BuildMaglevTable(const std::vector<Candidate>& candidates, uint32_t table_size) {
  struct Perm {
    std::size_t index;
    uint64_t offset, skip, next = 0, weight, target = 0;
  };
  std::vector<Perm> perms;
  uint64_t max_weight = 0;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const auto& c = candidates[i];
    if (c.weight == 0) continue;
    Perm p{i, HashKey(c.key, 0xa5a5) % table_size, HashKey(c.key, 0x5a5a) % (table_size - 1) + 1, 0, c.weight, 0};
    perms.push_back(p);
    max_weight = std::max<uint64_t>(max_weight, c.weight);
  }
  if (perms.empty() || table_size < 2) return {};
  constexpr uint32_t kEmpty = UINT32_MAX;
  std::vector<uint32_t> table(table_size, kEmpty);
  uint64_t filled = 0;
  for (uint64_t iteration = 1; filled < table_size; ++iteration) {
    for (auto& p : perms) {
      if (iteration * p.weight < p.target) continue;  // not this candidate's turn yet
      p.target += max_weight;
      uint64_t slot = (p.offset + p.next * p.skip) % table_size;
      while (table[slot] != kEmpty) {
        ++p.next;
        slot = (p.offset + p.next * p.skip) % table_size;
      }
      table[slot] = static_cast<uint32_t>(p.index);
      ++p.next;
      if (++filled == table_size) break;
    }
  }
  return table;
}

Maglev::Maglev(std::vector<Candidate> candidates, uint32_t table_size)
    : CandidateScheduler(std::move(candidates)), table_(BuildMaglevTable(c_, table_size)) {}

std::optional<std::size_t> Maglev::Pick(const PickContext& ctx) {
  if (table_.empty()) return std::nullopt;
  const std::size_t first = table_[ctx.hash % table_.size()];
  if (Usable(first)) return first;
  uint64_t h = ctx.hash;
  for (int k = 1; k <= kRehashes; ++k) {
    h = HashKey(std::string_view(reinterpret_cast<const char*>(&h), sizeof h), static_cast<uint64_t>(k));
    const std::size_t i = table_[h % table_.size()];
    if (Usable(i)) return i;
  }
  for (std::size_t k = 1; k < c_.size(); ++k) {
    const std::size_t i = (first + k) % c_.size();
    if (Usable(i)) return i;
  }
  return first;  // panic mode
}

}  // namespace doorman::lb
