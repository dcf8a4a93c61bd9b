#!/usr/bin/env python3
"""Walking skeleton, end to end: manifests -> controller -> gRPC -> dataplane -> real backends.

Real processes on 127.0.0.1: doorman-controller, doorman-dataplane, Python HTTP/1.1 backends,
redis-server, and the real curl and redis-cli as clients.
"""
import http.server
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
from harness import (DoormanTestCase, backend_of, curl, free_port, http_get, metric_value,  # noqa: E402
                     port_open, read_response, redis_cmd, wait_until)


def lb_manifest(http_port, tcp_port, a, b, redis, host="app.local", extra_routes=""):
    """The test LoadBalancer: /api -> b; catch-all -> a and b (just b when a == b); TCP -> redis."""
    catch_all = "".join("            - {address: 127.0.0.1, port: %d}\n" % p for p in dict.fromkeys((a, b)))
    return f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata:
  name: shop
  namespace: default
spec:
  listeners:
    - name: web
      port: {http_port}
      protocol: HTTP
    - name: cache
      port: {tcp_port}
      protocol: TCP
  routes:
    - name: api
      listener: web
      match:
        hosts: [{host}]
        path: {{type: Prefix, value: /api}}
      backends:
        - endpoints: [{{address: 127.0.0.1, port: {b}}}]
    - name: app
      listener: web
      match:
        hosts: [{host}]
      backends:
        - endpoints:
{catch_all}{extra_routes}    - name: redis
      listener: cache
      backends:
        - endpoints: [{{address: 127.0.0.1, port: {redis}}}]
"""


class EndToEnd(DoormanTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.start_backend("a")
        self.b = self.start_backend("b")
        self.redis = self.start_redis()
        self.http_port = free_port()
        self.tcp_port = free_port()
        self.lb_path = self.write_manifest(
            "shop.yaml", lb_manifest(self.http_port, self.tcp_port, self.a, self.b, self.redis))
        self.start_controller()
        self.start_dataplane()
        self.version = self.wait_converged()
        wait_until(lambda: port_open(self.http_port) and port_open(self.tcp_port), what="listeners")

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def test_http_round_robin_reaches_both_backends_in_turn(self):
        seen = []
        for _ in range(6):
            st, _, body = http_get(self.url("/"), headers={"Host": "app.local"})
            self.assertEqual(st, 200, body)
            seen.append(backend_of(body))
        self.assertEqual(set(seen), {"a", "b"}, seen)
        # Round-robin alternates: no two consecutive picks are the same backend.
        for x, y in zip(seen, seen[1:]):
            self.assertNotEqual(x, y, seen)

    def test_host_and_path_rule_picks_the_right_backend(self):
        for _ in range(4):
            st, _, body = http_get(self.url("/api/orders"), headers={"Host": "app.local"})
            self.assertEqual(st, 200)
            self.assertEqual(backend_of(body), "b")
        # Prefix is segment-wise: /apiary is not under /api, so it falls to the catch-all route.
        seen = {backend_of(http_get(self.url("/apiary"), headers={"Host": "app.local"})[2]) for _ in range(4)}
        self.assertEqual(seen, {"a", "b"})
        # Host matching ignores the port and case.
        st, _, _ = http_get(self.url("/"), headers={"Host": "APP.local:%d" % self.http_port})
        self.assertEqual(st, 200)
        # Nothing matches another host: 404 with a clear body.
        st, _, body = http_get(self.url("/"), headers={"Host": "other.local"})
        self.assertEqual(st, 404)
        self.assertTrue(body, "404 must carry a body saying why")

    def test_curl_keep_alive_and_forwarded_headers(self):
        r = curl(["-v", "-H", "Host: app.local", self.url("/x"), self.url("/y")])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Re-using existing connection", r.stderr)
        bodies = [l for l in r.stdout.splitlines() if l.startswith("{")]
        self.assertEqual(len(bodies), 2)
        import json
        h = json.loads(bodies[0])["headers"]
        self.assertEqual(h.get("x-forwarded-for"), "127.0.0.1")
        self.assertEqual(h.get("x-forwarded-proto"), "http")

    def test_upstream_connections_are_reused(self):
        # 20 requests on one client connection: the proxy must reuse its upstream connections,
        # so each backend sees far fewer distinct peer ports than requests.
        urls = [self.url("/r%d" % i) for i in range(20)]
        r = curl(["-H", "Host: app.local"] + urls)
        self.assertEqual(r.returncode, 0, r.stderr)
        import json
        peers = [json.loads(l)["peer"] for l in r.stdout.splitlines() if l.startswith("{")]
        self.assertEqual(len(peers), 20)
        self.assertLessEqual(len(set(peers)), 4, peers)

    def test_idle_keep_alive_clients_do_not_pin_upstream_connections(self):
        # 12 clients one after another, each one GET and then idle on its keep-alive connection:
        # the upstream connection of a waiting client goes back to the pool, so the next client
        # reuses it (helper-130: each idle client pinned its own, past the pool's caps, and a
        # backend with 20 workers answered nobody else; nginx and HAProxy share them).
        peers, socks = [], []
        try:
            for _ in range(12):
                s = socket.create_connection(("127.0.0.1", self.http_port), timeout=5)
                socks.append(s)
                s.sendall(b"GET / HTTP/1.1\r\nHost: app.local\r\n\r\n")
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += s.recv(65536)
                head, _, body = buf.partition(b"\r\n\r\n")
                length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
                while len(body) < length:
                    body += s.recv(65536)
                peers.append(json.loads(body)["peer"])
        finally:
            for s in socks:
                s.close()
        # Two backends, at most one pooled connection each per worker (2 workers).
        self.assertLessEqual(len(set(peers)), 4, peers)

    def test_tcp_listener_carries_redis(self):
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.tcp_port), "PING"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.stdout.strip(), "PONG", r.stderr)
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.tcp_port), "SET", "k", "v1"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.stdout.strip(), "OK")
        # The value landed in the real backend.
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.redis), "GET", "k"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.stdout.strip(), "v1")

    def test_manifest_edit_reroutes_while_open_tcp_connection_keeps_working(self):
        held = socket.create_connection(("127.0.0.1", self.tcp_port), timeout=5)
        self.addCleanup(held.close)
        self.assertEqual(redis_cmd(held, "PING"), "+PONG")
        # Re-route the catch-all to backend b only, and add a new listener.
        new_http = free_port()
        text = lb_manifest(self.http_port, self.tcp_port, self.b, self.b, self.redis)
        text = text.replace("  routes:\n", "    - name: extra\n      port: %d\n      protocol: HTTP\n  routes:\n" % new_http)
        text += ("    - name: extra\n      listener: extra\n      backends:\n"
                 "        - endpoints: [{address: 127.0.0.1, port: %d}]\n" % self.a)
        self.write_manifest("shop.yaml", text)
        self.wait_version_change(self.version)
        wait_until(lambda: {backend_of(http_get(self.url("/"), headers={"Host": "app.local"})[2])
                            for _ in range(4)} == {"b"}, what="catch-all re-routed to b")
        wait_until(lambda: port_open(new_http), what="new listener")
        st, _, body = http_get("http://127.0.0.1:%d/" % new_http)
        self.assertEqual((st, backend_of(body)), (200, "a"))
        # The TCP connection opened before the change still works.
        self.assertEqual(redis_cmd(held, "PING"), "+PONG")
        self.assertEqual(redis_cmd(held, "SET", "held", "yes"), "+OK")

    def test_removed_listener_stops_accepting_but_open_connection_survives(self):
        held = socket.create_connection(("127.0.0.1", self.tcp_port), timeout=5)
        self.addCleanup(held.close)
        self.assertEqual(redis_cmd(held, "PING"), "+PONG")
        text = lb_manifest(self.http_port, self.tcp_port, self.a, self.b, self.redis)
        # Drop the TCP listener and its route.
        text = text.replace("    - name: cache\n      port: %d\n      protocol: TCP\n" % self.tcp_port, "")
        text = text[:text.index("    - name: redis\n")]
        self.write_manifest("shop.yaml", text)
        self.wait_version_change(self.version)
        wait_until(lambda: not port_open(self.tcp_port), what="TCP listener closed")
        self.assertEqual(redis_cmd(held, "PING"), "+PONG")

    def test_invalid_manifest_keeps_old_routing_and_is_reported(self):
        bad = lb_manifest(self.http_port, self.tcp_port, self.b, self.b, self.redis).replace(
            "type: Prefix", "type: Glob")
        self.write_manifest("shop.yaml", bad)
        wait_until(lambda: "Glob" in self.controller.log(), what="controller to report the invalid object")
        line = next(l for l in self.controller.log().splitlines() if "Glob" in l)
        self.assertIn(self.lb_path, line)        # names the file
        self.assertIn("default/shop", line)      # names the object
        self.assertIn("path.type", line)         # names the field
        self.assertEqual(self.controller_version(), self.version)
        # The old routing still serves (both backends behind the catch-all).
        seen = {backend_of(http_get(self.url("/"), headers={"Host": "app.local"})[2]) for _ in range(4)}
        self.assertEqual(seen, {"a", "b"})
        # A YAML syntax error is also reported and also leaves routing alone.
        def problem_lines():
            return [l for l in self.controller.log().splitlines()
                    if self.lb_path in l and ("WARN" in l or "ERROR" in l)]
        before = len(problem_lines())
        self.write_manifest("shop.yaml", "apiVersion: doorman.dev/v1alpha1\nkind: [unclosed\n")
        wait_until(lambda: len(problem_lines()) > before, what="syntax error report")
        self.assertEqual(self.controller_version(), self.version)
        st, _, _ = http_get(self.url("/api/x"), headers={"Host": "app.local"})
        self.assertEqual(st, 200)
        # A file that is not UTF-8 (a Latin-1 "é" in a name) is refused with the bad byte's
        # position; /debug/status, which used to abort the controller on it, still answers.
        before = len(problem_lines())
        latin1 = lb_manifest(self.http_port, self.tcp_port, self.b, self.b, self.redis).replace(
            "name: shop", "name: sh\xe9p").encode("latin-1")
        self.assertIn(b"\xe9", latin1)
        self.write_manifest("shop.yaml", latin1)
        wait_until(lambda: len(problem_lines()) > before, what="UTF-8 error report")
        self.assertIn("not valid UTF-8 (byte 0xE9", problem_lines()[-1])
        st, _, body = http_get("http://127.0.0.1:%d/debug/status" % self.ctl_metrics_port)
        self.assertEqual(st, 200)
        self.assertIn("not valid UTF-8", json.loads(body)["manifestErrors"][0])
        self.assertEqual(self.controller_version(), self.version)
        # Fixing the file brings a new snapshot.
        self.write_manifest("shop.yaml", lb_manifest(self.http_port, self.tcp_port, self.b, self.b, self.redis))
        self.wait_version_change(self.version)

    def test_debug_status_shows_the_status_a_cluster_would_hold(self):
        """--manifests has no API server to write .status to: /debug/status shows it per object,
        computed as the status writer does (API.md §1.3: Accepted, Programmed, listeners)."""
        def status():
            objs = json.loads(http_get("http://127.0.0.1:%d/debug/status" % self.ctl_metrics_port)[2])["objects"]
            return next(o for o in objs if o["kind"] == "LoadBalancer" and o["name"] == "shop")["status"]
        def programmed():
            st = status()
            conds = {c["type"]: c for c in st["conditions"]}
            return st if conds.get("Programmed", {}).get("status") == "True" else None
        st = wait_until(programmed, what="Programmed=True in /debug/status")
        conds = {c["type"]: c for c in st["conditions"]}
        self.assertEqual(conds["Accepted"]["status"], "True")
        self.assertEqual(sorted((l["name"], l["attachedRoutes"]) for l in st["listeners"]), [("cache", 1), ("web", 2)])
        self.assertEqual(st["dataplanes"], {"ready": 1, "programmed": 1})
        # A dataplane that stops ACKing is no longer counted: with none connected, not Programmed.
        self.dataplane.stop()
        wait_until(lambda: programmed() is None, what="Programmed to drop with no dataplane")

    def test_metrics_and_health(self):
        for port in (self.ctl_metrics_port, self.dp_metrics_port):
            self.assertEqual(http_get("http://127.0.0.1:%d/healthz" % port)[0], 200)
            self.assertEqual(http_get("http://127.0.0.1:%d/readyz" % port)[0], 200)
            # Other methods: 405 with the Allow header RFC 9110 §15.5.6 requires.
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-D", "-", "-X", "POST", "--max-time", "5",
                                "http://127.0.0.1:%d/metrics" % port], capture_output=True, text=True, timeout=10)
            self.assertIn(" 405 ", r.stdout.splitlines()[0] if r.stdout else "", r.stdout)
            self.assertIn("allow: get, head", r.stdout.lower())
        http_get(self.url("/"), headers={"Host": "app.local"})
        m = self.dataplane_metrics()
        self.assertEqual(metric_value(m, "doorman_config_version"), self.version)
        self.assertGreaterEqual(metric_value(m, "doorman_config_updates_total", {"result": "applied"}), 1)
        # The proxy records a request after its last byte is written: poll, don't race it.
        wait_until(lambda: (metric_value(self.dataplane_metrics(), "doorman_l7_requests_total", {"code": "200"}) or 0) >= 1,
                   what="doorman_l7_requests_total{code=200} >= 1")
        cm = self.controller_metrics()
        self.assertEqual(metric_value(cm, "doorman_controller_dataplanes_connected"), 1)


class NtlmBackend(http.server.BaseHTTPRequestHandler):
    """Authenticates the TCP connection, as IIS does with NTLM: a request without a login gets
    401 WWW-Authenticate: NTLM; one with `Authorization: NTLM <user>` logs the connection in, and
    every later request on that connection is served as that user."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        auth = self.headers.get("Authorization", "")
        if auth.startswith("NTLM "):
            self.user = auth[5:]
        user = getattr(self, "user", None)
        body = json.dumps({"user": user}).encode()
        self.send_response(200 if user else 401)
        if not user:
            self.send_header("WWW-Authenticate", "NTLM")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ConnectionBoundAuth(DoormanTestCase):
    def test_an_ntlm_connection_serves_only_its_client(self):
        # A backend connection that offered NTLM/Negotiate is never pooled: once logged in, it
        # would serve another client as the first (helper-134: after idle connections went back
        # to the pool, client B got client A's login).
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NtlmBackend)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        port = free_port()
        self.write_manifest("lb.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: ntlm, namespace: default}}
spec:
  listeners: [{{name: web, port: {port}, protocol: HTTP}}]
  routes: [{{name: r, listener: web, backends: [{{endpoints: [{{address: 127.0.0.1, port: {server.server_address[1]}}}]}}]}}]
""")
        self.start_controller()
        self.start_dataplane(["--workers", "1"])
        self.wait_converged()
        wait_until(lambda: port_open(port), what="listener")

        def get(sock, auth=None):
            sock.sendall(("GET / HTTP/1.1\r\nHost: a\r\n" + ("Authorization: NTLM %s\r\n" % auth if auth else "") +
                          "\r\n").encode())
            head, body = read_response(sock)
            return int(head.split()[1]), json.loads(body)["user"]

        with socket.create_connection(("127.0.0.1", port), timeout=5) as a:
            self.assertEqual(get(a), (401, None))
            self.assertEqual(get(a, "alice"), (200, "alice"))
            self.assertEqual(get(a), (200, "alice"), "A's own connection stays logged in")
            with socket.create_connection(("127.0.0.1", port), timeout=5) as b:
                self.assertEqual(get(b), (401, None), "B must not get A's login")
            self.assertEqual(get(a), (200, "alice"))


class ControllerKeepalive(DoormanTestCase):
    def test_an_idle_stream_notices_a_frozen_controller(self):
        # gRPC's default stops keepalive PINGs after two without data, so a stream idle since
        # then never noticed a controller that froze (or a partition without a reset) and
        # served its last state for good, never reconnecting (helper-126).
        backend = self.start_backend("a")
        port = free_port()
        self.write_manifest("lb.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: ka, namespace: default}}
spec:
  listeners: [{{name: web, port: {port}, protocol: HTTP}}]
  routes: [{{name: r, listener: web, backends: [{{endpoints: [{{address: 127.0.0.1, port: {backend}}}]}}]}}]
""")
        self.start_controller()
        self.start_dataplane(["--controller-keepalive", "1s"])
        self.wait_converged()
        wait_until(lambda: port_open(port), what="listener")
        # Idle well past two PINGs (the condition under test is elapsed idle time: nothing to poll).
        time.sleep(4)
        self.assertNotIn("controller stream ended", self.dataplane.log())
        os.killpg(self.controller.p.pid, signal.SIGSTOP)
        self.addCleanup(lambda: os.killpg(self.controller.p.pid, signal.SIGCONT))
        wait_until(lambda: "controller stream ended; reconnecting" in self.dataplane.log(), timeout=20,
                   what="the dataplane to drop the stream to the frozen controller")
        self.assertIn("keepalive", self.dataplane.log())
        self.assertEqual(http_get("http://127.0.0.1:%d/" % port)[0], 200, "the last state is still served")
        os.killpg(self.controller.p.pid, signal.SIGCONT)
        wait_until(lambda: metric_value(self.controller_metrics(), "doorman_controller_dataplanes_connected") == 1,
                   what="the dataplane to reconnect")


if __name__ == "__main__":
    unittest.main(verbosity=2)
