#!/usr/bin/env python3
"""Controller cost per change at scale (not a test): writes N L4 Services of type LoadBalancer,
each with one EndpointSlice, into a temporary --manifests directory (one namespace), starts the
controller on 127.0.0.1, then changes one Service's slice EDITS times and reports, for each
change, the time until the controller serves a new snapshot version, and the controller's CPU
time over the edits (idle rescans included).

usage: bench/controller/scale.py [N=1000] [EDITS=6] [--controller PATH] [--port P]
"""
import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def service(i, port):
    return f"""apiVersion: v1
kind: Service
metadata: {{name: svc{i}, namespace: default}}
spec:
  type: LoadBalancer
  loadBalancerClass: doorman.dev/lb
  ports: [{{name: web, port: {20000 + i}, targetPort: 8080, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: svc{i}-1, namespace: default, labels: {{kubernetes.io/service-name: svc{i}}}}}
addressType: IPv4
ports: [{{name: web, port: {port}, protocol: TCP}}]
endpoints: [{{addresses: [127.0.0.1]}}, {{addresses: [127.0.0.2]}}, {{addresses: [127.0.0.3]}}]
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=1000)
    ap.add_argument("edits", nargs="?", type=int, default=6)
    ap.add_argument("--controller", default=os.path.join(HERE, "..", "..", "build", "controller", "doorman-controller"))
    ap.add_argument("--port", type=int, default=32711, help="gRPC port; metrics on the next one")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="doorman-scale-")
    try:
        for i in range(a.n):
            with open(os.path.join(tmp, "svc%05d.yaml" % i), "w") as f:
                f.write(service(i, 8080))
        p = subprocess.Popen([a.controller, "--manifests", tmp, "--grpc-listen", "127.0.0.1:%d" % a.port,
                              "--metrics-listen", "127.0.0.1:%d" % (a.port + 1)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def version():
            try:
                text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % (a.port + 1), timeout=5).read().decode()
            except OSError:
                return None
            m = re.search(r"^doorman_controller_snapshot_version (\S+)", text, re.M)
            return m.group(1) if m and m.group(1) != "0" else None

        def cpu():
            fields = open("/proc/%d/stat" % p.pid).read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        try:
            started = time.monotonic()
            while version() is None:
                if p.poll() is not None or time.monotonic() - started > 300:
                    raise SystemExit("the controller did not publish a snapshot")
                time.sleep(0.2)
            print("first snapshot of %d Services after %.1f s" % (a.n, time.monotonic() - started))
            time.sleep(2)
            cpu0, v, lat = cpu(), version(), []
            path = os.path.join(tmp, "svc%05d.yaml" % (a.n // 2))
            for k in range(a.edits):
                with open(path + ".tmp", "w") as f:
                    f.write(service(a.n // 2, 8081 + k % 2))
                os.replace(path + ".tmp", path)
                t = time.monotonic()
                while version() == v:
                    if time.monotonic() - t > 120:
                        raise SystemExit("no new snapshot after a change")
                    time.sleep(0.02)
                lat.append(time.monotonic() - t)
                v = version()
                time.sleep(1.5)
            print("change -> new snapshot: %s s; controller CPU %.2f s over %d changes in %.0f s"
                  % (" ".join("%.2f" % x for x in lat), cpu() - cpu0, a.edits, a.edits * 1.5 + sum(lat)))
        finally:
            p.terminate()
            p.wait(timeout=10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
