#include "controller/source/file_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/hash.h"
#include "common/log.h"

namespace doorman::controller {
namespace fs = std::filesystem;

namespace {

bool IsManifestName(const std::string& name) {
  if (name.empty() || name[0] == '.') return false;  // hidden and editor temp files
  auto ends = [&name](const char* suffix) {
    const size_t n = std::char_traits<char>::length(suffix);
    return name.size() > n && name.compare(name.size() - n, n, suffix) == 0;
  };
  return ends(".yaml") || ends(".yml");
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return ss.str();
}

constexpr auto kMaxWriteWait = std::chrono::seconds(2);

}  // namespace

FileWatcher::FileWatcher(std::string path, std::chrono::milliseconds rescan_interval, Callback on_change)
    : path_(std::move(path)), rescan_(rescan_interval), on_change_(std::move(on_change)) {
  std::error_code ec;
  is_dir_ = fs::is_directory(path_, ec);
  watch_dir_ = is_dir_ ? path_ : fs::path(path_).parent_path().string();
  if (watch_dir_.empty()) watch_dir_ = ".";
}

FileWatcher::~FileWatcher() { Stop(); }

bool FileWatcher::Scan(std::vector<FileChange>* changes, std::string* error) {
  std::error_code ec;
  std::vector<std::string> files;
  if (is_dir_) {
    if (!fs::is_directory(path_, ec)) {
      *error = "manifest directory " + path_ + " does not exist (keeping the objects read before)";
      return false;
    }
    std::set<std::string> skipped;
    for (fs::directory_iterator it(path_, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!IsManifestName(name)) continue;
      std::error_code fec;
      if (fs::is_regular_file(it->path(), fec)) {
        files.push_back(it->path().string());
        continue;
      }
      const std::string p = it->path().string();
      skipped.insert(p);
      if (!skipped_.count(p)) {
        log::Warn("manifest", "not a readable file, skipped (a directory, a dangling symlink or a symlink loop?)",
                  {{"file", p}, {"error", fec ? fec.message() : std::string("not a regular file")}});
      }
    }
    skipped_ = std::move(skipped);
    if (ec) {
      *error = "cannot list " + path_ + ": " + ec.message();
      return false;
    }
  } else {
    if (!fs::is_regular_file(path_, ec)) {
      *error = "manifest file " + path_ + " does not exist (keeping the objects read before)";
      return false;
    }
    files.push_back(path_);
  }
  std::sort(files.begin(), files.end());
  std::map<std::string, uint64_t> next;
  for (const auto& f : files) {
    if (writing_.count(fs::path(f).filename().string())) {
      // Being written: what was read before stands until the writer closes it.
      if (auto it = hashes_.find(f); it != hashes_.end()) next[f] = it->second;
      continue;
    }
    auto content = ReadFile(f);
    if (!content) {  // e.g. no permission: keep what was read before, say so once per scan
      log::Warn("manifest", "cannot read file, keeping the objects read before", {{"file", f}});
      if (auto it = hashes_.find(f); it != hashes_.end()) next[f] = it->second;
      continue;
    }
    const uint64_t h = Fnv1a64(*content);
    next[f] = h;
    auto it = hashes_.find(f);
    if (it == hashes_.end() || it->second != h) changes->push_back({f, std::move(content)});
  }
  for (const auto& [f, _] : hashes_) {
    if (!next.count(f)) changes->push_back({f, std::nullopt});
  }
  hashes_ = std::move(next);
  return true;
}

void FileWatcher::NoteWrite(const std::string& name, uint32_t mask) {
  if (is_dir_ ? !IsManifestName(name) : name != fs::path(path_).filename().string()) return;
  if (mask & (IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) {
    writing_.erase(name);  // closed, gone, or replaced whole (write-to-temp-then-rename)
  } else if (mask & (IN_MODIFY | IN_CREATE)) {
    writing_.emplace(name, std::chrono::steady_clock::now());  // the first time counts
  }
}

void FileWatcher::AddWatch() {
  if (inotify_fd_ < 0 || watch_ >= 0) return;
  watch_ = inotify_add_watch(inotify_fd_, watch_dir_.c_str(),
                             IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_MODIFY |
                                 IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
}

bool FileWatcher::Start(std::string* error) {
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) {
    log::Warn("manifest", "inotify unavailable, falling back to periodic rescans",
              {{"interval_ms", std::to_string(rescan_.count())}});
  }
  AddWatch();
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    *error = "eventfd failed";
    return false;
  }
  thread_ = std::thread([this] { Run(); });
  return true;
}

void FileWatcher::Stop() {
  if (!thread_.joinable()) return;
  stop_ = true;
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
  thread_.join();
  if (inotify_fd_ >= 0) close(inotify_fd_);
  close(wake_fd_);
  inotify_fd_ = wake_fd_ = -1;
}

void FileWatcher::DrainEvents() {
  if (inotify_fd_ < 0) return;
  alignas(inotify_event) char buf[16384];
  ssize_t len;
  while ((len = read(inotify_fd_, buf, sizeof buf)) > 0) {
    for (char* p = buf; p < buf + len;) {
      auto* ev = reinterpret_cast<inotify_event*>(p);
      if (ev->mask & IN_IGNORED) watch_ = -1;  // directory removed or moved: re-add later
      if (ev->len > 0) NoteWrite(ev->name, ev->mask);
      p += sizeof(inotify_event) + ev->len;
    }
  }
}

void FileWatcher::Run() {
  constexpr auto kSettle = std::chrono::milliseconds(20);  // let a burst of events finish
  while (!stop_) {
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    // A file being written is read once it is closed (an inotify event) or its wait ran out;
    // one whose wait ran out is read at once, as it is (`overdue`).
    std::set<std::string> overdue;
    auto timeout = rescan_;
    const auto now = std::chrono::steady_clock::now();
    for (auto it = writing_.begin(); it != writing_.end();) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(it->second + kMaxWriteWait - now);
      if (left.count() <= 0) {
        overdue.insert(it->first);
        it = writing_.erase(it);
        timeout = std::chrono::milliseconds(0);
        continue;
      }
      timeout = std::min(timeout, left);
      ++it;
    }
    const int n = poll(fds, inotify_fd_ >= 0 ? 2 : 1, static_cast<int>(timeout.count()));
    if (stop_) break;
    if (n > 0 && (fds[1].revents & POLLIN)) {
      DrainEvents();  // then wait for the burst to settle
      poll(fds, 1, static_cast<int>(kSettle.count()));
      if (stop_) return;
    }
    DrainEvents();  // also on a timed rescan: what is being written now is not read
    AddWatch();
    std::vector<FileChange> changes;
    std::string error;
    const auto before = hashes_;
    if (!Scan(&changes, &error)) {
      if (error != last_error_) log::Warn("manifest", error, {{"path", path_}});
      last_error_ = error;
      continue;
    }
    last_error_.clear();
    // A file written to while it was read (a truncate between the drain and the read) may have
    // been read empty or cut: its read is dropped, and it is read again once written.
    DrainEvents();
    std::vector<FileChange> settled;
    for (auto& c : changes) {
      const std::string name = fs::path(c.path).filename().string();
      if (writing_.count(name) && !overdue.count(name)) {
        if (auto it = before.find(c.path); it != before.end()) {
          hashes_[c.path] = it->second;
        } else {
          hashes_.erase(c.path);
        }
        continue;
      }
      settled.push_back(std::move(c));
    }
    if (!settled.empty()) on_change_(std::move(settled));
  }
}

}  // namespace doorman::controller
