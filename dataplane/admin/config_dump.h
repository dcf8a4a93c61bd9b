// /debug/config: a read-only JSON view of the applied routing state (version, listeners with
// their socket status, routes, backends, warnings). Never includes certificates or keys
// (RuntimeConfig does not even hold them).
#pragma once

#include <string>
#include <vector>

#include "dataplane/config/runtime_config.h"
#include "dataplane/server/listener_manager.h"

namespace doorman::dataplane {

std::string ConfigToJson(const RuntimeConfig* config, const std::vector<ListenerStatus>& sockets,
                         const std::vector<std::string>& warnings);

}  // namespace doorman::dataplane
