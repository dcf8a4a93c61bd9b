// Coarse per-worker deadlines for socket operations: arming one is two stores (no timer object,
// no timer-queue insertion, no timerfd update per operation), and one sweep per worker every
// kDeadlineTick cancels the sockets whose armed deadline has passed. The cancelled operation
// completes with operation_aborted and the owner sees fired() == true, which it reports as a
// timeout. Precision is one tick (documented in docs/l7.md), which is what HAProxy's and nginx's
// idle/header timeouts give too. PERFORMANCE-NOTES.md: a timer per operation was the largest
// user-space cost after Beast's serializer.
//
// Single-threaded: a DeadlineList and its Deadlines belong to one worker's thread.
#pragma once

#include <time.h>

#include <chrono>

#include "dataplane/server/asio_types.h"

namespace doorman::dataplane {

inline constexpr std::chrono::milliseconds kDeadlineTick{50};

// CLOCK_MONOTONIC_COARSE: the time of the last kernel tick (≤ 4 ms old at HZ=250), read in ~3 ns
// against ~22 ns for steady_clock here: deadlines are armed several times per request and only
// need the sweep's precision. A std::chrono clock, so it cannot be mixed up with steady_clock.
struct CoarseClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<CoarseClock>;
  static constexpr bool is_steady = true;
  static time_point now() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
  }
};

class Deadline;

class DeadlineList {
 public:
  DeadlineList() { head_.prev_ = head_.next_ = &head_; }
  DeadlineList(const DeadlineList&) = delete;
  DeadlineList& operator=(const DeadlineList&) = delete;
  // Fires every armed deadline at or before `now`.
  void Sweep(CoarseClock::time_point now);
  // Fires every armed idle wait (ArmIdle) now: a draining worker closes its keep-alive
  // connections that wait for a next request, whatever else is still in flight.
  void FireIdle();
  std::size_t size() const { return size_; }  // armed deadlines (only those are linked)

 private:
  friend class Deadline;
  struct Node {
    Node* prev_ = nullptr;
    Node* next_ = nullptr;
  };
  Node head_;
  std::size_t size_ = 0;
};

class Deadline : private DeadlineList::Node {
 public:
  using Clock = CoarseClock;
  // `a` (and `b`, for a tunnel: both sides end together) are cancelled when the deadline fires.
  // Only armed deadlines are in the list, so a sweep visits what can fire, not every connection.
  explicit Deadline(DeadlineList& list, Socket* a = nullptr, Socket* b = nullptr) : list_(list), a_(a), b_(b) {}
  ~Deadline() { Unlink(); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void Bind(Socket* a, Socket* b = nullptr) {
    a_ = a;
    b_ = b;
  }
  void Arm(std::chrono::milliseconds d) {
    at_ = Clock::now() + d;
    fired_ = false;
    idle_ = false;
    if (!armed_) {
      armed_ = true;
      prev_ = &list_.head_;
      next_ = list_.head_.next_;
      next_->prev_ = this;
      list_.head_.next_ = this;
      ++list_.size_;
    }
  }
  // Arm, for a wait between requests (FireIdle ends it early).
  void ArmIdle(std::chrono::milliseconds d) {
    Arm(d);
    idle_ = true;
  }
  void Disarm() { Unlink(); }
  // Brings an armed deadline forward to at most `d` from now (no-op when disarmed or sooner).
  void Tighten(std::chrono::milliseconds d) {
    if (!armed_) return;
    const auto t = Clock::now() + d;
    if (t < at_) at_ = t;
  }
  // Whether the last armed deadline passed (the socket operation was cancelled by it).
  bool fired() const { return fired_; }

 private:
  friend class DeadlineList;
  void Unlink() {
    if (!armed_) return;
    armed_ = false;
    prev_->next_ = next_;
    next_->prev_ = prev_;
    --list_.size_;
  }
  void Fire() {
    Unlink();
    fired_ = true;
    boost::system::error_code ignored;
    if (a_ != nullptr && a_->is_open()) a_->cancel(ignored);
    if (b_ != nullptr && b_->is_open()) b_->cancel(ignored);
  }

  DeadlineList& list_;
  Socket* a_;
  Socket* b_;
  Clock::time_point at_{};
  bool armed_ = false;
  bool fired_ = false;
  bool idle_ = false;
};

inline void DeadlineList::FireIdle() {
  for (Node* n = head_.next_; n != &head_;) {
    Node* next = n->next_;
    auto* d = static_cast<Deadline*>(n);
    if (d->idle_) d->Fire();
    n = next;
  }
}

inline void DeadlineList::Sweep(CoarseClock::time_point now) {
  for (Node* n = head_.next_; n != &head_;) {
    Node* next = n->next_;  // Fire() unlinks n
    auto* d = static_cast<Deadline*>(n);
    if (d->at_ <= now) d->Fire();
    n = next;
  }
}

}  // namespace doorman::dataplane
