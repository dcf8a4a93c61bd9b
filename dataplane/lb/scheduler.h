// The seam between a route and its balancing algorithm (HAProxy-style: one small ops table, one
// file per algorithm). A Scheduler is built once per compiled route from the candidates' weights
// and is then shared, immutable apart from its own lock-free cursor, by every worker thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

namespace doorman::lb {

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // Returns the index of the next candidate, or nullopt when no candidate may receive traffic
  // (none at all, or every weight is 0). Thread-safe; never blocks.
  virtual std::optional<std::size_t> Pick() = 0;

  // Number of candidates that can be returned by Pick() (weight > 0).
  virtual std::size_t eligible() const = 0;
};

using SchedulerPtr = std::unique_ptr<Scheduler>;

}  // namespace doorman::lb
