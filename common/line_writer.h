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
  // Writes what is queued and joins the thread, however long the output takes: a writer that
  // may stall is kept alive until exit instead (both users leak theirs on purpose).
  ~LineWriter();

  // Thread-safe, never blocks on the output. Takes `line` (moved from) and returns true, or
  // returns false once closed and leaves `line` alone (the caller may write it itself).
  bool Write(std::string&& line);
  uint64_t Dropped();
  // Writes what is queued, waiting at most `max` for a stalled output, and stops the thread
  // (joined, or left behind when stuck in write(2)). Thread-safe; the first call does it, later
  // ones return at once.
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
  bool closing_ = false;  // a Close() has begun
  std::thread thread_;
};

// The whole buffer, through short writes and EINTR; an error (EPIPE, ENOSPC) drops the rest.
void WriteAllTo(int fd, const char* data, std::size_t size);

}  // namespace doorman
