#!/usr/bin/env python3
"""Active health checks end to end (BackendSet.health_check from LoadBalancer spec.healthCheck):
a killed backend is marked down (doorman_backend_up 0) within one check period and gets no new
connections; an HTTP check that answers 503 takes a live backend out; both come back.

Real processes: doorman-controller (--manifests), doorman-dataplane; real peers (threads with
real sockets, l4_peers.py).
"""
import collections
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DoormanTestCase, free_port, http_over_tcp, metric_value, port_open, wait_until  # noqa: E402
from l4_peers import EchoServer, HealthToggleServer, connect  # noqa: E402

INTERVAL_MS = 300
UNHEALTHY = 2
HEALTHY = 2


def manifest(port, backends, check):
    eps = "".join("            - {address: 127.0.0.1, port: %d}\n" % b for b in backends)
    return f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: hc, namespace: default}}
spec:
  listeners:
    - {{name: tcp, port: {port}, protocol: TCP}}
  routes:
    - name: r
      listener: tcp
      backends:
        - endpoints:
{eps}  healthCheck:
{check}
    interval: {INTERVAL_MS}ms
    timeout: 250ms
    healthyThreshold: {HEALTHY}
    unhealthyThreshold: {UNHEALTHY}
"""


class HealthChecks(DoormanTestCase):
    def name_of_new_connection(self):
        s, name = connect(self.port)
        s.close()
        return name

    def up(self, backend_port):
        return metric_value(self.dataplane_metrics(), "doorman_backend_up", {"backend": "127.0.0.1:%d" % backend_port})

    def test_killed_backend_is_out_within_one_check_period_and_comes_back(self):
        a, b = EchoServer("a"), EchoServer("b")
        self.addCleanup(a.close)
        b_port = b.port
        self.port = free_port()
        self.start_dataplane_with(manifest(self.port, [a.port, b_port], "    protocol: TCP"))
        self.assertEqual(self.up(b_port), 1)
        b.close()  # killed: connections to its port are refused from now on
        t0 = time.monotonic()
        # One check period = unhealthy_threshold probes at the interval (+10% jitter each).
        period = UNHEALTHY * INTERVAL_MS * 1.1 / 1000 + 0.25
        wait_until(lambda: self.up(b_port) == 0, timeout=5, interval=0.02, what="backend b marked down")
        took = time.monotonic() - t0
        self.assertLessEqual(took, period + 0.5, "took %.2fs, period %.2fs" % (took, period))
        names = collections.Counter(self.name_of_new_connection() for _ in range(20))
        self.assertEqual(names, {"a": 20})
        # b restarts on the same port: healthy again after HEALTHY good probes, traffic returns.
        b2 = EchoServer("b", port=b_port)
        self.addCleanup(b2.close)
        wait_until(lambda: self.up(b_port) == 1, timeout=5, what="backend b healthy again")
        names = collections.Counter(self.name_of_new_connection() for _ in range(20))
        self.assertEqual(names, {"a": 10, "b": 10})

    def test_http_check_takes_a_live_backend_out(self):
        a, b = HealthToggleServer("a"), HealthToggleServer("b")
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        self.port = free_port()
        self.start_dataplane_with(manifest(self.port, [a.port, b.port],
                                           "    protocol: HTTP\n    path: /healthz\n    expectedStatuses: [200]"))
        wait_until(lambda: b.checks >= 1, what="HTTP probes reach the backend")
        b.healthy = False  # still serving traffic, but its health endpoint says 503
        wait_until(lambda: self.up(b.port) == 0, timeout=5, what="backend b marked down by HTTP check")
        names = collections.Counter(http_over_tcp(self.port)[0] for _ in range(20))
        self.assertEqual(names, {"a": 20})
        b.healthy = True
        wait_until(lambda: self.up(b.port) == 1, timeout=5, what="backend b healthy again")
        names = collections.Counter(http_over_tcp(self.port)[0] for _ in range(20))
        self.assertEqual(names, {"a": 10, "b": 10})

    def test_all_down_fails_open(self):
        a = HealthToggleServer("a")
        self.addCleanup(a.close)
        self.port = free_port()
        self.start_dataplane_with(manifest(self.port, [a.port], "    protocol: HTTP\n    path: /healthz"))
        a.healthy = False
        wait_until(lambda: self.up(a.port) == 0, timeout=5, what="backend a marked down")
        # Panic mode: with every endpoint down, traffic still goes to them (fail open).
        self.assertEqual(http_over_tcp(self.port)[0], "a")

    def start_dataplane_with(self, text):
        self.write_manifest("hc.yaml", text)
        self.start_controller()
        self.start_dataplane(["--workers", "2"])
        self.wait_converged()
        wait_until(lambda: port_open(self.port), what="tcp listener")
        # The readiness probe was a real connection: let it finish so RR counts are whole cycles.
        wait_until(lambda: (metric_value(self.dataplane_metrics(), "doorman_l4_connections_active") or 0) == 0,
                   what="probe connection closed")


if __name__ == "__main__":
    unittest.main(verbosity=2)
