#!/usr/bin/env python3
"""Active health checks end to end (BackendSet.health_check from LoadBalancer spec.healthCheck):
a killed backend is marked down (doorman_backend_up 0) within one check period and gets no new
connections; an HTTP check that answers 503 takes a live backend out; a gRPC server whose
grpc.health.v1 status is NOT_SERVING is taken out, and a TCP server that does not speak gRPC
never counts as healthy; all come back.

Real processes: doorman-controller (--manifests), doorman-dataplane, real gRPC servers and
clients (doorman-test-grpc-health, tests/integration/grpc_health_peer.cc: gRPC's own default
health service); real peers (threads with real sockets, l4_peers.py).
"""
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BUILD_DIR, DoormanTestCase, free_port, http_get, http_over_tcp, metric_value,  # noqa: E402
                     port_open, wait_until)
from l4_peers import EchoServer, HealthToggleServer, SilentServer, connect  # noqa: E402

INTERVAL_MS = 300
UNHEALTHY = 2
HEALTHY = 2
# One check period = unhealthy_threshold probes at the interval (+10% jitter each).
PERIOD = UNHEALTHY * INTERVAL_MS * 1.1 / 1000 + 0.25
GRPC_PEER = os.path.join(BUILD_DIR, "tests", "integration", "doorman-test-grpc-health")


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

    def debug_config(self):
        return json.loads(http_get("http://127.0.0.1:%d/debug/config" % self.dp_metrics_port)[2])

    def test_killed_backend_is_out_within_one_check_period_and_comes_back(self):
        a, b = EchoServer("a"), EchoServer("b")
        self.addCleanup(a.close)
        b_port = b.port
        self.port = free_port()
        self.start_dataplane_with(manifest(self.port, [a.port, b_port], "    protocol: TCP"))
        self.assertEqual(self.up(b_port), 1)
        b.close()  # killed: connections to its port are refused from now on
        t0 = time.monotonic()
        period = PERIOD
        wait_until(lambda: self.up(b_port) == 0, timeout=5, interval=0.02, what="backend b marked down")
        took = time.monotonic() - t0
        self.assertLessEqual(took, period + 1.0, "took %.2fs, period %.2fs" % (took, period))
        names = collections.Counter(self.name_of_new_connection() for _ in range(20))
        self.assertEqual(names, {"a": 20})
        # /debug/config says why b is out of rotation (helper-87: it showed only "eligible").
        eps = {e["address"]: e for r in self.debug_config()["routes"] for bs in r["backends"] for e in bs["endpoints"]}
        b_ep = eps["127.0.0.1:%d" % b_port]
        self.assertEqual({k: b_ep[k] for k in ("eligible", "healthy", "ejected", "in_rotation")},
                         {"eligible": True, "healthy": False, "ejected": False, "in_rotation": False})
        self.assertTrue(eps["127.0.0.1:%d" % a.port]["in_rotation"])
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

    def test_changing_the_check_keeps_the_endpoints_health(self):
        a, b = HealthToggleServer("a"), HealthToggleServer("b")
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        self.port = free_port()
        http = "    protocol: HTTP\n    path: /healthz\n    expectedStatuses: [%s]"
        version = self.start_dataplane_with(manifest(self.port, [a.port, b.port], http % "200"))
        b.healthy = False
        wait_until(lambda: self.up(b.port) == 0, timeout=5, what="backend b marked down by HTTP check")
        # The check is edited (another status list, still failing for b): b's verdict carries over
        # to the new check, so it gets no traffic in the meantime and its metric stays 0.
        self.write_manifest("hc.yaml", manifest(self.port, [a.port, b.port], http % "200, 204"))
        version = self.wait_version_change(version)
        names = collections.Counter(http_over_tcp(self.port)[0] for _ in range(20))
        self.assertEqual(names, {"a": 20})
        self.assertEqual(self.up(b.port), 0)
        # Switched to a TCP check, which b passes (it accepts connections): back after HEALTHY
        # probes, and doorman_backend_up follows the new check's verdict.
        self.write_manifest("hc.yaml", manifest(self.port, [a.port, b.port], "    protocol: TCP"))
        version = self.wait_version_change(version)
        wait_until(lambda: self.up(b.port) == 1, timeout=5, what="backend b healthy under the TCP check")
        names = collections.Counter(http_over_tcp(self.port)[0] for _ in range(20))
        self.assertEqual(names, {"a": 10, "b": 10})
        # And down again when the TCP check fails: the metric keeps following.
        b.close()
        wait_until(lambda: self.up(b.port) == 0, timeout=5, what="backend b down under the TCP check")

    # --- gRPC (grpc.health.v1) ------------------------------------------------------------
    def start_grpc_server(self, name):
        port = free_port()
        p = self.spawn("grpc-" + name, [GRPC_PEER, "serve", "--port", str(port), "--name", name])
        wait_until(lambda: "listening" in p.log(), what="gRPC server %s on :%d" % (name, port))
        return p, port

    def grpc_check(self, port, service):
        """One grpc.health.v1 Check on a new connection to 127.0.0.1:port: SERVING, NOT_FOUND, ..."""
        r = subprocess.run([GRPC_PEER, "check", "--addr", "127.0.0.1:%d" % port, "--service", service,
                            "--timeout", "3s"], capture_output=True, text=True, timeout=10)
        return r.stdout.strip()

    def grpc_server_of_new_connection(self):
        """Which of the gRPC servers a and b a new connection through Doorman reaches: each
        answers SERVING for its own name only (b: NOT_FOUND for "a")."""
        answer = self.grpc_check(self.port, "a")
        return {"SERVING": "a", "NOT_FOUND": "b"}.get(answer, answer)

    def test_grpc_not_serving_backend_is_out_within_one_period_and_comes_back(self):
        a, a_port = self.start_grpc_server("a")
        b, b_port = self.start_grpc_server("b")
        self.port = free_port()
        self.start_dataplane_with(manifest(self.port, [a_port, b_port], "    protocol: GRPC"))
        self.assertNotIn("gRPC health checks are not implemented", self.dataplane.log())
        self.assertEqual(self.up(b_port), 1)
        names = collections.Counter(self.grpc_server_of_new_connection() for _ in range(20))
        self.assertEqual(names, {"a": 10, "b": 10})
        # b keeps serving traffic, but its health service now says NOT_SERVING.
        os.kill(b.p.pid, signal.SIGUSR1)
        t0 = time.monotonic()
        wait_until(lambda: self.up(b_port) == 0, timeout=5, interval=0.02, what="backend b marked down by gRPC check")
        took = time.monotonic() - t0
        self.assertLessEqual(took, PERIOD + 1.0, "took %.2fs, period %.2fs" % (took, PERIOD))
        self.assertEqual(self.up(a_port), 1)
        self.assertEqual(self.grpc_check(b_port, ""), "NOT_SERVING")  # what the probes saw
        names = collections.Counter(self.grpc_server_of_new_connection() for _ in range(20))
        self.assertEqual(names, {"a": 20})
        # SERVING again: healthy after HEALTHY good probes, new connections return.
        os.kill(b.p.pid, signal.SIGUSR2)
        wait_until(lambda: self.up(b_port) == 1, timeout=5, what="backend b healthy again")
        names = collections.Counter(self.grpc_server_of_new_connection() for _ in range(20))
        self.assertEqual(names, {"a": 10, "b": 10})

    def test_grpc_check_fails_servers_that_do_not_speak_grpc(self):
        a, a_port = self.start_grpc_server("a")
        talker = EchoServer("b")  # accepts and writes a greeting: not HTTP/2 → UNAVAILABLE
        self.addCleanup(talker.close)
        silent = SilentServer()  # accepts and reads, never writes → DEADLINE_EXCEEDED
        self.addCleanup(silent.close)
        silent_port = silent.port
        self.port = free_port()
        self.start_dataplane_with(manifest(self.port, [a_port, talker.port, silent_port], "    protocol: GRPC"))
        wait_until(lambda: self.up(talker.port) == 0 and self.up(silent_port) == 0, timeout=5,
                   what="the non-gRPC TCP servers marked down")
        self.assertEqual(self.up(a_port), 1)
        # Every new connection goes to the gRPC server (one that reached the echo server would
        # answer UNAVAILABLE, one that reached the silent one DEADLINE_EXCEEDED).
        answers = collections.Counter(self.grpc_check(self.port, "a") for _ in range(9))
        self.assertEqual(answers, {"SERVING": 9})
        # They stayed down meanwhile: every probe fails, none flips them back.
        self.assertEqual((self.up(talker.port), self.up(silent_port)), (0, 0))

    def test_one_objects_check_does_not_decide_for_another(self):
        # Object "hc" (another namespace) checks a and b with a check they fail (they answer
        # 200, it expects 204); object "victim" routes the same two endpoints without a check.
        # Health is per (endpoint, check), as per Envoy cluster or ALB target group: the victim
        # keeps both, whatever another tenant's check says.
        a, b = HealthToggleServer("a"), HealthToggleServer("b")
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        self.port = free_port()
        victim = free_port()
        other = manifest(self.port, [a.port, b.port], "    protocol: HTTP\n    path: /healthz\n    expectedStatuses: [204]")
        other = other.replace("metadata: {name: hc, namespace: default}", "metadata: {name: hc, namespace: aaa}")
        self.start_dataplane_with(other + "---\n" + f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: victim, namespace: default}}
spec:
  listeners: [{{name: tcp, port: {victim}, protocol: TCP}}]
  routes:
    - {{name: r, listener: tcp, backends: [{{endpoints: [{{address: 127.0.0.1, port: {a.port}}}, {{address: 127.0.0.1, port: {b.port}}}]}}]}}
""")
        wait_until(lambda: (metric_value(self.dataplane_metrics(), "doorman_health_probes_total", {"result": "failed"}) or 0)
                   >= 2 * UNHEALTHY, timeout=5, what="the other object's check failing")
        wait_until(lambda: port_open(victim), what="victim listener")
        self.wait_l4_probes_ended(probes=2)  # hc's listener's readiness probe, then victim's
        names = collections.Counter(http_over_tcp(victim)[0] for _ in range(20))
        self.assertEqual(names, {"a": 10, "b": 10})
        # doorman_backend_up is per address: up while a set routes it unchecked (or passing).
        self.assertEqual(self.up(a.port), 1)

    def test_http_check_reads_the_final_answer_as_the_proxy_does(self):
        # helper-119: a 103 Early Hints before the 200 failed the check (the first status line
        # was judged), as did a bare-LF head and a head over 4 KiB, all of which the proxy
        # itself serves. Each is checked from down (503) to up, so each must pass on its own.
        answers = {
            "down": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
            "interim": b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                       b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
            "large-head": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Policy-%d: %s\r\n" % (i, b"v" * 900) for i in range(22))
                          + b"Content-Length: 2\r\n\r\nok",
        }
        mode = {"now": "down"}
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(64)
        self.addCleanup(lst.close)

        def serve():
            while True:
                try:
                    c, _ = lst.accept()
                except OSError:
                    return
                with c:
                    try:
                        c.settimeout(2)
                        c.recv(65536)  # the probe's GET (one segment)
                        c.sendall(answers[mode["now"]])
                    except OSError:
                        pass
        threading.Thread(target=serve, daemon=True).start()
        port = lst.getsockname()[1]
        self.port = free_port()
        self.start_dataplane_with(manifest(self.port, [port], "    protocol: HTTP\n    path: /healthz"))
        wait_until(lambda: self.up(port) == 0, timeout=5, what="the backend down while it answers 503")
        for m in ("interim", "bare-lf", "large-head"):
            mode["now"] = m
            wait_until(lambda: self.up(port) == 1, timeout=5, what="the backend up when it answers " + m)
            mode["now"] = "down"
            wait_until(lambda: self.up(port) == 0, timeout=5, what="the backend down again after " + m)

    def start_dataplane_with(self, text):
        self.write_manifest("hc.yaml", text)
        self.start_controller()
        self.start_dataplane(["--workers", "2"])
        version = self.wait_converged()
        wait_until(lambda: port_open(self.port), what="tcp listener")
        # The readiness probe was a real connection: let it finish so RR counts are whole cycles.
        self.wait_l4_probes_ended()
        return version


if __name__ == "__main__":
    unittest.main(verbosity=2)
