// Watches --manifests PATH (one file, or the *.yaml / *.yml files directly in a directory) and
// reports which files changed, with their new content. inotify on the directory (so editors'
// and kubectl-like tools' write-to-temp-then-rename is seen, as are ConfigMap symlink swaps)
// plus a periodic rescan that compares content hashes, so nothing is missed if inotify is
// unavailable or a watch is lost. A file inotify saw modified is read once it is closed after
// writing (or after 2 s), so one rewritten in place is never read empty or half-written.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace doorman::controller {

struct FileChange {
  std::string path;
  std::optional<std::string> content;  // nullopt: the file was removed
};

class FileWatcher {
 public:
  using Callback = std::function<void(std::vector<FileChange>)>;

  FileWatcher(std::string path, std::chrono::milliseconds rescan_interval, Callback on_change);
  ~FileWatcher();
  FileWatcher(const FileWatcher&) = delete;
  FileWatcher& operator=(const FileWatcher&) = delete;

  // Reads everything once, synchronously; returns every file found (the first call) or the
  // changes since the previous scan. False (with *error) when PATH does not exist or cannot be
  // listed; the previous state is then kept.
  bool Scan(std::vector<FileChange>* changes, std::string* error);

  // Starts the background thread that calls `on_change` (from that thread) on changes.
  bool Start(std::string* error);
  void Stop();

 private:
  void Run();
  void AddWatch();
  void NoteWrite(const std::string& name, uint32_t mask);  // an inotify event for `name`
  void DrainEvents();  // reads the pending inotify events (non-blocking) into writing_

  std::string path_;
  std::string watch_dir_;
  bool is_dir_ = false;
  // *.yaml/*.yml/*.json entries that are not readable files (a directory, a dangling symlink, a
  // symlink loop): warned once each, while they stay so.
  std::set<std::string> skipped_;
  std::chrono::milliseconds rescan_;
  Callback on_change_;
  std::map<std::string, uint64_t> hashes_;  // file → content hash of the last scan
  // Files (by name in the watched directory) that inotify saw modified and not yet closed
  // after writing, with when that was first seen: a file rewritten in place (truncated, then
  // written) is not read half-written — an empty or cut file would remove its objects and
  // close their connections — until it is closed, or kMaxWriteWait passed (a writer that
  // keeps it open). Touched by the watcher thread only.
  std::map<std::string, std::chrono::steady_clock::time_point> writing_;
  std::string last_error_;
  int inotify_fd_ = -1;
  int watch_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace doorman::controller
