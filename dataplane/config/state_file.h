// --state-dir: the last good StateUpdate, written after every successful apply and loaded at
// start-up so a restarted dataplane serves while the controller is away. The file holds TLS
// private keys when HTTPS listeners exist, so it is created 0600 (write to a temp file, fsync,
// rename: a crash never leaves a torn file). A checksum line precedes the payload: a damaged
// file that still parses is refused, not served. The temp file is always created afresh
// (O_EXCL, no symlink followed), and only a file owned by this user and writable by it alone is
// loaded, so a shared directory cannot be used to read the keys or plant a state.
#pragma once

#include <optional>
#include <string>

namespace doorman::v1 {
class StateUpdate;
}

namespace doorman::dataplane {

inline constexpr const char* kStateFileName = "routing-state.pb";

bool SaveState(const std::string& dir, const doorman::v1::StateUpdate& update, std::string* error);
// nullopt with an empty *error when there is no state file yet.
std::optional<doorman::v1::StateUpdate> LoadState(const std::string& dir, std::string* error);
// Creates `dir` (one level, mode 0700) if missing; false + *error when unusable. *warning (if
// given) is set when every user may write the directory and it is not sticky.
bool EnsureStateDir(const std::string& dir, std::string* error, std::string* warning = nullptr);

}  // namespace doorman::dataplane
