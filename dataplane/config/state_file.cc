#include "dataplane/config/state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "common/hash.h"
#include "doorman/v1/routing.pb.h"

namespace doorman::dataplane {
namespace {

// "DOORMAN-STATE 1 <FNV-1a 64 of the payload, 16 hex digits>\n" then the serialized StateUpdate.
// A flipped byte that still parses as a StateUpdate would otherwise be served as the last good
// state (FNV-1a detects every single-byte change: each step is a bijection of the running hash).
constexpr std::string_view kMagic = "DOORMAN-STATE 1 ";
constexpr std::size_t kHeaderSize = 16 + 16 + 1;

std::string Header(std::string_view payload) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(Fnv1a64(payload)));
  return std::string(kMagic) + hex + "\n";
}

}  // namespace

bool EnsureStateDir(const std::string& dir, std::string* error, std::string* warning) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      *error = dir + " is not a directory";
      return false;
    }
  } else if (::mkdir(dir.c_str(), 0700) != 0) {
    *error = "cannot create " + dir + ": " + std::strerror(errno);
    return false;
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    *error = dir + " is not writable: " + std::strerror(errno);
    return false;
  }
  // Others who can write the directory can delete the state file (never read or replace it:
  // SaveState and LoadState see to that). A Kubernetes emptyDir is 0777 but private to the pod.
  if (warning != nullptr && ::stat(dir.c_str(), &st) == 0 && (st.st_mode & 002) != 0 && (st.st_mode & S_ISVTX) == 0) {
    *warning = dir + " is writable by every user (mode " + [&] {
      char m[8];
      std::snprintf(m, sizeof m, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return std::string(m);
    }() + "): any of them can delete the saved state; prefer a directory only this user can write";
  }
  return true;
}

bool SaveState(const std::string& dir, const doorman::v1::StateUpdate& update, std::string* error) {
  std::string payload;
  if (!update.SerializeToString(&payload)) {
    *error = "cannot serialize the routing state";
    return false;
  }
  const std::string bytes = Header(payload) + payload;
  const std::string path = dir + "/" + kStateFileName;
  const std::string tmp = path + ".tmp";
  // A fresh file of this process's own: a temp file left (or planted) by someone else who can
  // write the directory is removed, not written into (it would keep its owner and mode, and
  // the state holds private keys), and a symlink there is never followed.
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    *error = "cannot replace " + tmp + ": " + std::strerror(errno);
    return false;
  }
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = "cannot write " + tmp + ": " + std::strerror(errno);
    return false;
  }
  if (::fchmod(fd, 0600) != 0) {  // the umask could only have removed bits; say it exactly
    *error = "cannot chmod " + tmp + ": " + std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  }
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = "cannot write " + tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    *error = "cannot flush " + tmp + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot rename " + tmp + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

std::optional<doorman::v1::StateUpdate> LoadState(const std::string& dir, std::string* error) {
  const std::string path = dir + "/" + kStateFileName;
  // O_NONBLOCK: a FIFO planted there would block the open until a writer came (the dataplane
  // hung at start, SIGTERM unanswered); it is refused below instead. Regular files ignore it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    *error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  // Only a file this process's user wrote and nobody else can change is served: one planted by
  // another user of a shared directory would otherwise be trusted as routing state (the
  // checksum is not a signature).
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 022) != 0) {
    *error = path + " is not loaded: it is not a regular file owned by uid " + std::to_string(::geteuid()) +
             " and writable by it alone";
    ::close(fd);
    return std::nullopt;
  }
  std::string bytes;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = "cannot read " + path + ": " + std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  std::string_view payload = bytes;
  if (payload.substr(0, kMagic.size()) == kMagic) {
    if (payload.size() < kHeaderSize || Header(payload.substr(kHeaderSize)) != payload.substr(0, kHeaderSize)) {
      *error = path + " is damaged (its checksum does not match)";
      return std::nullopt;
    }
    payload.remove_prefix(kHeaderSize);
  }  // else: written by a version without the header; loaded as before
  doorman::v1::StateUpdate u;
  if (!u.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    *error = path + " is not a valid routing state";
    return std::nullopt;
  }
  // Every saved state has a version (the controller's start at 1): version 0 is a file that
  // was emptied or cut to nothing (an empty payload parses as an empty StateUpdate), which would
  // otherwise be served as "route nothing".
  if (u.version() == 0) {
    *error = path + " is not a valid routing state (" + (bytes.empty() ? "the file is empty" : "it has no version") + ")";
    return std::nullopt;
  }
  return u;
}

}  // namespace doorman::dataplane
