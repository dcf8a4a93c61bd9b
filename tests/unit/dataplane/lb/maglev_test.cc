#include "dataplane/lb/maglev.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "tests/unit/dataplane/lb/test_util.h"

namespace doorman::lb {
namespace {

using testing::Candidates;
using testing::ClientHash;

std::vector<std::size_t> SlotCounts(const std::vector<uint32_t>& table, std::size_t n) {
  std::vector<std::size_t> counts(n, 0);
  for (auto e : table) counts.at(e)++;
  return counts;
}

TEST(MaglevTest, TableIsFullAndBalanced) {
  for (std::size_t n : {2u, 3u, 5u, 10u, 33u}) {
    const auto table = BuildMaglevTable(Candidates(std::vector<uint32_t>(n, 1)), kDefaultMaglevTableSize);
    ASSERT_EQ(table.size(), kDefaultMaglevTableSize);
    const auto counts = SlotCounts(table, n);
    const auto [mn, mx] = std::minmax_element(counts.begin(), counts.end());
    const double ideal = static_cast<double>(kDefaultMaglevTableSize) / static_cast<double>(n);
    // Imbalance: every backend within 1% of its fair share (measured: max/min - 1 < 0.2%).
    EXPECT_LE(static_cast<double>(*mx), ideal * 1.01) << n;
    EXPECT_GE(static_cast<double>(*mn), ideal * 0.99) << n;
  }
}

TEST(MaglevTest, WeightsSetTheShare) {
  const auto table = BuildMaglevTable(Candidates({3, 1}), kDefaultMaglevTableSize);
  const auto counts = SlotCounts(table, 2);
  const double share = static_cast<double>(counts[0]) / static_cast<double>(kDefaultMaglevTableSize);
  EXPECT_NEAR(share, 0.75, 0.01);
}

// The property Maglev exists for: when one of N backends leaves, only its own keys must move,
// plus a small reshuffle; at most 1.5/N of all keys change backend. Measured over every slot.
TEST(MaglevTest, RemovingOneOfNBackendsMovesAtMostOneAndAHalfOverN) {
  for (std::size_t n : {5u, 10u, 20u}) {
    auto all = Candidates(std::vector<uint32_t>(n, 1));
    const auto before = BuildMaglevTable(all, kDefaultMaglevTableSize);
    for (std::size_t removed : {std::size_t{0}, n / 2, n - 1}) {
      auto rest = all;
      rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(removed));
      const auto after = BuildMaglevTable(rest, kDefaultMaglevTableSize);
      std::size_t moved = 0;
      std::size_t moved_from_survivors = 0;
      for (std::size_t s = 0; s < before.size(); ++s) {
        const std::string& was = all[before[s]].key;
        const std::string& now = rest[after[s]].key;
        if (was != now) {
          ++moved;
          if (before[s] != removed) ++moved_from_survivors;
        }
      }
      const double frac = static_cast<double>(moved) / static_cast<double>(before.size());
      EXPECT_LE(frac, 1.5 / static_cast<double>(n)) << "n=" << n << " removed=" << removed;
      EXPECT_GE(frac, 0.9 / static_cast<double>(n)) << "n=" << n;  // the removed share must move
      // Survivors' keys: only a small reshuffle.
      EXPECT_LE(static_cast<double>(moved_from_survivors) / static_cast<double>(before.size()),
                0.5 / static_cast<double>(n));
    }
  }
}

TEST(MaglevTest, AddingABackendMovesAboutItsShare) {
  auto all = Candidates(std::vector<uint32_t>(10, 1));
  auto fewer = all;
  fewer.pop_back();
  const auto a = BuildMaglevTable(fewer, kDefaultMaglevTableSize);
  const auto b = BuildMaglevTable(all, kDefaultMaglevTableSize);
  std::size_t moved = 0;
  for (std::size_t s = 0; s < a.size(); ++s) moved += fewer[a[s]].key != all[b[s]].key;
  EXPECT_LE(static_cast<double>(moved) / static_cast<double>(a.size()), 1.5 / 10);
}

TEST(MaglevTest, SameClientSameBackendAndTableIndependentOfOrderOfBuild) {
  Maglev a(Candidates({1, 1, 1, 1}));
  Maglev b(Candidates({1, 1, 1, 1}));
  EXPECT_EQ(a.table(), b.table());
  for (uint64_t i = 0; i < 200; ++i) EXPECT_EQ(*a.Pick(PickContext{ClientHash(i), 0}), *b.Pick(PickContext{ClientHash(i), 0}));
}

TEST(MaglevTest, SmallPrimeTable) {
  Maglev m(Candidates({1, 1, 1}), 251);
  EXPECT_EQ(m.table().size(), 251u);
  const auto counts = SlotCounts(m.table(), 3);
  for (auto c : counts) EXPECT_NEAR(static_cast<double>(c), 251.0 / 3, 3);
}

TEST(MaglevTest, UnhealthyBackendOnlyItsClientsMove) {
  auto c = Candidates({1, 1, 1, 1, 1});
  Maglev m(c);
  std::vector<std::size_t> before;
  for (uint64_t i = 0; i < 2000; ++i) before.push_back(*m.Pick(PickContext{ClientHash(i), 0}));
  c[2].health->healthy = false;
  std::map<std::size_t, int> to;
  for (uint64_t i = 0; i < 2000; ++i) {
    const auto now = *m.Pick(PickContext{ClientHash(i), 0});
    if (before[i] == 2) {
      EXPECT_NE(now, 2u);
      to[now]++;
    } else {
      EXPECT_EQ(now, before[i]);
    }
  }
  EXPECT_GE(to.size(), 3u);  // the down backend's clients spread over several others
}

}  // namespace
}  // namespace doorman::lb
