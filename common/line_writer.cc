#include "common/line_writer.h"

#include <unistd.h>

#include <cerrno>
#include <utility>

namespace doorman {

void WriteAllTo(int fd, const char* data, std::size_t size) {
  std::size_t off = 0;
  while (off < size) {
    const ssize_t n = ::write(fd, data + off, size - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

LineWriter::LineWriter(int fd, std::size_t max_queued_bytes, std::function<std::string(uint64_t)> drop_report)
    : fd_(fd), max_bytes_(max_queued_bytes), drop_report_(std::move(drop_report)) {
  thread_ = std::thread([this] { Loop(); });
}

LineWriter::~LineWriter() {
  Close(std::chrono::hours(24));
  if (thread_.joinable()) thread_.join();  // the thread uses this object: never left running
}

void LineWriter::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    // Drops while a batch was being written are reported even when no line follows them.
    cv_.wait(lock, [&] { return stop_ || !queue_.empty() || dropped_ != 0; });
    if (queue_.empty() && (dropped_ == 0 || !drop_report_)) {
      if (stop_) return;  // all written
      dropped_ = 0;
      continue;
    }
    std::vector<std::string> batch;
    batch.swap(queue_);
    bytes_ = 0;
    const uint64_t lost = std::exchange(dropped_, 0);
    writing_ = true;
    lock.unlock();
    std::string chunk;  // whole lines, up to 64 KiB a write
    if (lost != 0 && drop_report_) chunk = drop_report_(lost);
    for (auto& line : batch) {
      if (!chunk.empty() && chunk.size() + line.size() > (64 << 10)) {
        WriteAllTo(fd_, chunk.data(), chunk.size());
        chunk.clear();
      }
      chunk += line;
    }
    if (!chunk.empty()) WriteAllTo(fd_, chunk.data(), chunk.size());
    lock.lock();
    writing_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
}

bool LineWriter::Write(std::string&& line) {
  // What the line holds in memory, not only its text: the string's allocation (capacity, plus
  // the allocator's header) and its slot in the queue, so the bound is the queue's real size.
  const std::size_t cost = line.capacity() + 16 + sizeof(std::string);
  std::lock_guard lock(mu_);
  if (stop_) return false;
  if (bytes_ + cost > max_bytes_) {
    ++dropped_;
    ++dropped_total_;
    if (!writing_) cv_.notify_one();  // an idle writer reports it now (a line larger than the bound)
    return true;
  }
  bytes_ += cost;
  queue_.push_back(std::move(line));
  if (queue_.size() == 1 && !writing_) cv_.notify_one();
  return true;
}

uint64_t LineWriter::Dropped() {
  std::lock_guard lock(mu_);
  return dropped_total_;
}

void LineWriter::Close(std::chrono::milliseconds max) {
  std::unique_lock lock(mu_);
  if (std::exchange(closing_, true)) return;  // another Close() stops (or stopped) the thread
  const bool drained =
      idle_cv_.wait_for(lock, max, [&] { return queue_.empty() && !writing_ && (dropped_ == 0 || !drop_report_); });
  stop_ = true;
  cv_.notify_one();
  lock.unlock();
  if (drained) {
    thread_.join();
  } else {
    thread_.detach();  // stuck in write(2) on a stalled output: exit does not wait for it
  }
}

}  // namespace doorman
