#include "dataplane/l7/l7_options.h"

namespace doorman::dataplane {
namespace {
L7Options& Options() {
  static L7Options options;
  return options;
}
}  // namespace

const L7Options& GetL7Options() { return Options(); }
void SetL7Options(const L7Options& options) { Options() = options; }

}  // namespace doorman::dataplane
