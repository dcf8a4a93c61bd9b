// What applying one StateUpdate produced: the subscriber turns it into an ACK or a NACK.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace doorman::dataplane {

struct ApplyResult {
  bool ok = false;
  uint64_t serving_version = 0;        // after the attempt (the old one after a rejection)
  std::string error;                   // rejection reason, naming the object and field
  std::vector<std::string> warnings;   // accepted but not programmed, one line each
  std::vector<std::string> unserved_listeners;  // listeners that could not be opened (port in use)
};

}  // namespace doorman::dataplane
