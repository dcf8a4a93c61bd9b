// A bounded queue of whole lines in front of a descriptor, emptied by one writer thread, so that
// the threads that log never wait for the output: when the output stalls (a log reader behind a
// pipe that stopped reading: a container runtime's shim, a full disk), lines beyond the bound are
// dropped and counted, and the writer reports the count (a line of the caller's making) once it
// catches up. Used by the process log on stderr (common/log.h) and the L7 access log.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace doorman {

class LineWriter {
 public:
  // `drop_report(n)`: called on the writer thread (no lock held) after `n` lines were dropped;
  // what it returns ("" for nothing) is written before the next batch.
  // `max_queued_bytes` bounds the queue's memory: each line counts its allocation, not only its
  // text (a vector that doubles may hold up to twice that in slots while it grows).
  LineWriter(int fd, std::size_t max_queued_bytes, std::function<std::string(uint64_t)> drop_report);
  LineWriter(const LineWriter&) = delete;
  LineWriter& operator=(const LineWriter&) = delete;
  // Close() must have been called; a writer stuck in write(2) is detached, so this object must
  // then outlive it: keep writers that may stall alive until exit.
  ~LineWriter();

  // Thread-safe, never blocks on the output. False once closed (the caller may write itself).
  bool Write(std::string line);
  uint64_t Dropped();
  // Writes what is queued, waiting at most `max` for a stalled output, and stops the thread
  // (joined, or left behind when stuck in write(2)). Idempotent.
  void Close(std::chrono::milliseconds max);

 private:
  void Loop();

  const int fd_;
  const std::size_t max_bytes_;
  const std::function<std::string(uint64_t)> drop_report_;
  std::mutex mu_;
  std::condition_variable cv_;       // work for the writer
  std::condition_variable idle_cv_;  // the writer emptied the queue (Close)
  std::vector<std::string> queue_;
  std::size_t bytes_ = 0;
  uint64_t dropped_ = 0;        // since the writer last reported
  uint64_t dropped_total_ = 0;  // Dropped()
  bool writing_ = false;
  bool stop_ = false;
  std::thread thread_;
};

// The whole buffer, through short writes and EINTR; an error (EPIPE, ENOSPC) drops the rest.
void WriteAllTo(int fd, const char* data, std::size_t size);

}  // namespace doorman
