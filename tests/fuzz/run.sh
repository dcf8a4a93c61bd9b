#!/usr/bin/env bash
# Fuzzes the dataplane's parsers of untrusted bytes with libFuzzer (clang, ASan + UBSan).
# Not part of ctest (the corpus replay is: tests/fuzz/CMakeLists.txt).
#   bash tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
# Targets: sni proxy_protocol cidr http_head response path compile manifest translate (compile and translate need build/ for the generated
# protobuf code). New crashes are written to
# build-fuzz/crashes/<target>/; copy a fixed one into tests/fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sni proxy_protocol cidr http_head response path compile manifest translate)
command -v clang++ >/dev/null || { echo "clang++ missing: apt-get install clang" >&2; exit 2; }
out=build-fuzz
mkdir -p "$out"
flags=(-std=c++20 -O1 -g -I. -DBOOST_ASIO_NO_DEPRECATED -DBOOST_BEAST_USE_STD_STRING_VIEW -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
for t in "${targets[@]}"; do
  case $t in
    sni) srcs=(dataplane/l4/sni.cc) ;;
    proxy_protocol) srcs=(dataplane/l4/proxy_protocol.cc) ;;
    cidr) srcs=(dataplane/l4/cidr.cc) ;;
    compile)
      [ -f build/api/doorman/v1/routing.pb.cc ] || bash scripts/build.sh build >/dev/null
      srcs=(dataplane/config/compile.cc dataplane/l7/access_log.cc dataplane/l7/filters.cc dataplane/l7/policy.cc
            dataplane/l7/router.cc dataplane/lb/*.cc dataplane/l4/cidr.cc dataplane/l4/proxy_protocol.cc
            dataplane/l4/sni.cc dataplane/health/health_state.cc common/log.cc common/line_writer.cc
            common/log_throttle.cc common/duration.cc common/address.cc build/api/doorman/v1/routing.pb.cc
            -Ibuild/api -lprotobuf -lre2) ;;
    manifest) srcs=(controller/source/manifest.cc controller/source/known_fields.cc common/log.cc common/line_writer.cc -lyaml-cpp) ;;
    translate)
      [ -f build/controller/lb_crd.cc ] || bash scripts/build.sh build >/dev/null
      srcs=(controller/source/manifest.cc controller/source/known_fields.cc controller/translate/*.cc build/controller/lb_crd.cc
            dataplane/config/compile.cc dataplane/l7/access_log.cc dataplane/l7/filters.cc dataplane/l7/policy.cc
            dataplane/l7/router.cc dataplane/lb/*.cc dataplane/l4/cidr.cc dataplane/l4/proxy_protocol.cc
            dataplane/l4/sni.cc dataplane/health/health_state.cc common/log.cc common/line_writer.cc
            common/log_throttle.cc common/duration.cc common/address.cc build/api/doorman/v1/routing.pb.cc
            -Ibuild/api -lprotobuf -lre2 -lyaml-cpp -lcrypto) ;;
    path) srcs=(dataplane/l7/router.cc dataplane/l7/filters.cc -lre2) ;;
    http_head) srcs=(dataplane/l7/http_head.cc dataplane/l7/request_check.cc dataplane/l7/header_rewrite.cc dataplane/l4/cidr.cc) ;;
    response) srcs=(dataplane/l7/http_head.cc dataplane/l7/response_check.cc dataplane/l7/header_rewrite.cc dataplane/l4/cidr.cc) ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
  clang++ "${flags[@]}" "tests/fuzz/${t}_fuzz.cc" "${srcs[@]}" -o "$out/${t}_fuzz"
  mkdir -p "$out/corpus/$t" "$out/crashes/$t"
  echo "== $t: ${secs}s"
  max_len=4096
  [ "$t" = translate ] && max_len=16384  # whole manifests, certificates included
  "$out/${t}_fuzz" -max_total_time="$secs" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$out/crashes/$t/" "$out/corpus/$t" "tests/fuzz/corpus/$t" 2>&1 | tail -n 3
done
