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

std::optional<std::size_t> Maglev::Pick(const PickContext& ctx) { return PickFromTable(table_, ctx.hash, kRehashes); }

}  // namespace doorman::lb
