# Doorman container image: both binaries (doorman-controller, doorman-dataplane), non-root.
#   docker build -t doorman/doorman:0.1.0 .
# Stage 1 builds with the project's own scripts on Debian 12; stage 2 carries only the runtime
# shared libraries. tests/deploy/test_container.py checks that every COPY source exists and that
# the runtime packages below provide every library the built binaries link (ldd + dpkg -S).

FROM debian:12 AS build
WORKDIR /src
COPY scripts/deps.sh scripts/deps.sh
# python3: CMake's test registration looks for it (tests/ is configured, not built here).
RUN bash scripts/deps.sh build \
 && apt-get install -y -qq --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*
COPY CMakeLists.txt ./
COPY api api
COPY common common
COPY controller controller
COPY dataplane dataplane
COPY tests tests
COPY scripts scripts
RUN DOORMAN_TARGETS="doorman-controller doorman-dataplane" bash scripts/build.sh /src/build -DCMAKE_BUILD_TYPE=Release \
 && strip build/controller/doorman-controller build/dataplane/doorman-dataplane \
 && build/controller/doorman-controller --version && build/dataplane/doorman-dataplane --version

FROM debian:12-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libabsl20220623 libbrotli1 libc-ares2 libc6 libcpprest2.10 libgcc-s1 libgrpc++1.51 libgrpc29 \
      libprometheus-cpp-core1.0 libprotobuf32 libre2-9 libssl3 libstdc++6 libyaml-cpp0.7 zlib1g \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/controller/doorman-controller /usr/local/bin/doorman-controller
COPY --from=build /src/build/dataplane/doorman-dataplane /usr/local/bin/doorman-dataplane
# Ports below 1024 as uid 65532: Kubernetes' capabilities.add (NET_BIND_SERVICE in deploy/ and
# the chart) reaches a non-root process only through the file's own capability (execve keeps no
# added capability for a non-root user without one; there are no ambient capabilities in a pod
# spec), as ingress-nginx sets it on its binaries. With allowPrivilegeEscalation: false the file
# capability is kept because the pod spec put it in the permitted set before exec. Permitted
# only (+p, no effective bit): the dataplane raises it itself at start, and a container without
# the capability (dropping ALL, high ports only) still starts; with +e execve would fail there.
# Set in this stage: a COPY does not always carry the security.capability attribute.
RUN apt-get update && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+p /usr/local/bin/doorman-dataplane \
 && getcap /usr/local/bin/doorman-dataplane | grep -q cap_net_bind_service \
 && apt-get purge -y libcap2-bin && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
# The dataplane's --state-dir default location in deploy/ (an emptyDir is mounted there).
RUN mkdir -p /var/lib/doorman && chown 65532:65532 /var/lib/doorman
USER 65532:65532
EXPOSE 18000 9100 9101
ENTRYPOINT ["/usr/local/bin/doorman-controller"]
