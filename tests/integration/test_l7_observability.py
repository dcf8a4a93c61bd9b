#!/usr/bin/env python3
"""L7 access log (--access-log PATH: one JSON line per request, no secrets) and metrics."""
import http.client
import json
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DoormanTestCase, curl, free_port, http_get, metric_value, port_open, wait_until  # noqa: E402


class L7Base(DoormanTestCase):
    """One HTTP listener with one route, and a dataplane writing its access log to access_log_path()."""

    dataplane_flags = ()

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend("b")
        self.port = free_port()
        self.write_manifest("lb.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: obs, namespace: default}}
spec:
  listeners: [{{name: web, port: {self.port}, protocol: HTTP}}]
  routes:
    - name: app
      listener: web
      match: {{hosts: [obs.local]}}
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {self.backend}}}]}}]
  forwardedHeaders: {{xForwardedFor: Append, trustedProxies: [127.0.0.2/32]}}
""")
        self.log_path = self.access_log_path()
        for name, text in self.extra_manifests().items():
            self.write_manifest(name, text)
        self.start_controller()
        self.start_dataplane(["--access-log", self.log_path] + list(self.dataplane_flags))
        self.wait_converged()
        wait_until(lambda: port_open(self.port), what="L7 listener")

    def access_log_path(self):
        return os.path.join(self.tmp, "access.log")

    def extra_manifests(self):
        return {}

    def lines(self):
        with open(self.log_path) as f:
            return [json.loads(l) for l in f if l.strip()]


class L7ClientAbort(L7Base):
    """--l7-abort-on-client-close: a client that closes while its response head is awaited ends
    the backend request at once and is logged 499 (nginx, Envoy). A request whose successor the
    client already sent is answered even when a FIN follows; the last one is not (nginx too)."""

    dataplane_flags = ("--l7-abort-on-client-close",)

    def extra_manifests(self):
        # A backend whose connect never completes: a listener with a full backlog that never
        # accepts (SYNs are dropped: the proxy's connect stays in SYN-SENT until its timeout).
        self.stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.stuck.bind(("127.0.0.1", 0))
        self.stuck.listen(0)
        self.addCleanup(self.stuck.close)
        for _ in range(3):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            c.connect_ex(self.stuck.getsockname())
            self.addCleanup(c.close)
        self.stuck_port = free_port()
        return {"stuck.yaml": f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: stuck, namespace: default}}
spec:
  listeners: [{{name: web, port: {self.stuck_port}, protocol: HTTP}}]
  routes:
    - name: app
      listener: web
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {self.stuck.getsockname()[1]}}}]}}]
      policy: {{timeouts: {{connect: 4s}}, retries: {{attempts: 2, on: [connect-failure]}}}}
"""}

    def syn_sent_to(self, port):
        """Connections of this machine in SYN-SENT towards 127.0.0.1:port (/proc/net/tcp)."""
        with open("/proc/net/tcp") as f:
            rows = [l.split() for l in f.readlines()[1:]]
        return [r for r in rows if r[2] == "0100007F:%04X" % port and r[3] == "02"]

    def test_a_client_that_closes_while_the_backend_thinks_is_a_499(self):
        req = b"GET /slow/8000 HTTP/1.1\r\nHost: obs.local\r\n\r\n"
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(req)
        start = time.monotonic()
        s.close()
        line = wait_until(lambda: self.lines(), timeout=6, what="the access log line of the aborted request")[0]
        took = time.monotonic() - start
        self.assertEqual(line["status"], 499, line)
        self.assertLess(line["duration_ms"], 8000)  # not the backend's answer, 8 s later
        self.assertLess(took, 6)
        self.assertEqual(metric_value(self.dataplane_metrics(), "doorman_l7_requests_total", {"code": "499"}), 1)
        # A half-close is the same on the wire (documented): also a 499.
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(req)
        s.shutdown(socket.SHUT_WR)
        wait_until(lambda: len(self.lines()) == 2, timeout=6, what="the second 499")
        self.assertEqual(self.lines()[1]["status"], 499)
        self.assertEqual(s.recv(100), b"")  # closed without an answer
        s.close()

    def test_a_client_that_closes_during_the_connect_is_a_499_without_failover(self):
        wait_until(lambda: port_open(self.stuck_port), what="the stuck listener")
        stuck = self.stuck.getsockname()[1]
        before = len(self.syn_sent_to(stuck))
        s = socket.create_connection(("127.0.0.1", self.stuck_port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: stuck.local\r\n\r\n")
        wait_until(lambda: len(self.syn_sent_to(stuck)) > before, what="the proxy's connect in SYN-SENT")
        start = time.monotonic()
        s.close()
        line = wait_until(lambda: self.lines(), timeout=3, what="the access log line")[0]
        # Not the 504 of the 4 s connect timeout, nor a second try after it.
        self.assertEqual((line["status"], line["retries"]), (499, 0), line)
        self.assertLess(time.monotonic() - start, 3)
        wait_until(lambda: len(self.syn_sent_to(stuck)) == before, timeout=3, what="the connect abandoned")

    def test_a_pipelined_request_before_a_half_close_is_answered_and_the_last_is_not(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        # The last one is slow, so that the FIN is seen while its answer is awaited (a quick answer
        # may come first: either outcome is right for a client that closes as it is answered).
        s.sendall(b"GET /slow/300 HTTP/1.1\r\nHost: obs.local\r\n\r\nGET /slow/3000 HTTP/1.1\r\nHost: obs.local\r\n"
                  b"Connection: close\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        self.assertEqual(data.count(b"HTTP/1.1 200 "), 1, data)
        self.assertIn(b'"path": "/slow/300"', data)
        self.assertEqual([(l["path"], l["status"]) for l in wait_until(lambda: len(self.lines()) == 2 and self.lines(),
                                                                       what="two log lines")],
                         [("/slow/300", 200), ("/slow/3000", 499)])


class L7Observability(L7Base):
    def test_access_log_lines_carry_no_secrets(self):
        r = curl(["-H", "Host: obs.local", "-H", "Authorization: Bearer SECRET-TOKEN", "-H", "Cookie: session=SECRET-COOKIE",
                  "http://127.0.0.1:%d/orders/7?api_key=SECRET-QUERY" % self.port])
        self.assertEqual(r.returncode, 0, r.stderr)
        curl(["-H", "Host: nowhere.local", "http://127.0.0.1:%d/x" % self.port])
        curl(["-H", "Host: obs.local", "http://127.0.0.1:%d/orders;jsessionid=SECRET-PARAM/7;v=SECRET-V2" % self.port])
        # From a trusted proxy: the client its X-Forwarded-For names, and the proxy as the peer.
        curl(["-H", "Host: obs.local", "-H", "X-Forwarded-For: 203.0.113.9", "--interface", "127.0.0.2",
              "http://127.0.0.1:%d/via-proxy" % self.port])
        # An absolute-form target is routed on its authority, and logged with it (helper-92).
        curl(["-H", "Host: elsewhere.local", "--request-target", "http://obs.local/abs", "http://127.0.0.1:%d/" % self.port])
        # A userinfo part ("user:password@") in the authority or in Host is refused (400) and is a
        # credential: logged as "***@" (helper-99).
        for target, host in (("http://user:SECRET-URL-PW@obs.local/ok", "obs.local"), ("/", "admin:SECRET-HOST-PW@obs.local")):
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (target.encode(), host.encode()))
                self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 400 "))
        lines = wait_until(lambda: len(self.lines()) >= 7 and self.lines(), what="seven access log lines")
        ok, missing, params, proxied, absolute = lines[0], lines[1], lines[2], lines[3], lines[4]
        self.assertEqual([(l["host"], l["status"]) for l in lines[5:7]], [("***@obs.local", 400)] * 2)
        self.assertEqual((absolute["host"], absolute["route"], absolute["status"]), ("obs.local", "default/obs/app", 200))
        self.assertEqual((proxied["client"], proxied["peer"]), ("203.0.113.9", "127.0.0.2"), proxied)
        self.assertEqual(params["path"], "/orders/7")  # ";" path parameters are not logged
        self.assertEqual(ok["status"], 200)
        self.assertEqual(ok["route"], "default/obs/app")
        self.assertEqual(ok["backend"], "127.0.0.1:%d" % self.backend)
        self.assertEqual(ok["method"], "GET")
        self.assertEqual(ok["path"], "/orders/7")
        self.assertEqual((ok["client"], ok["peer"]), ("127.0.0.1", "127.0.0.1"))
        self.assertRegex(ok["request_id"], r"^[0-9a-f]{32}$")
        self.assertGreaterEqual(ok["duration_ms"], 0)
        self.assertEqual(missing["status"], 404)
        text = open(self.log_path).read()
        for secret in ("SECRET-TOKEN", "SECRET-COOKIE", "SECRET-QUERY", "SECRET-PARAM", "SECRET-V2", "SECRET-URL-PW",
                       "SECRET-HOST-PW"):
            self.assertNotIn(secret, text)

    def test_sigusr1_reopens_the_access_log_and_sighup_is_ignored(self):
        def get(path):
            r = curl(["-H", "Host: obs.local", "http://127.0.0.1:%d%s" % (self.port, path)])
            self.assertEqual(r.returncode, 0, r.stderr)
        get("/before")
        wait_until(lambda: len(self.lines()) == 1, what="the first access log line")
        rotated = self.log_path + ".1"
        os.rename(self.log_path, rotated)  # what logrotate does
        get("/moved")  # still written to the moved file: the dataplane holds it open
        wait_until(lambda: sum(1 for _ in open(rotated)) == 2, what="a line in the moved file")
        self.assertFalse(os.path.exists(self.log_path))
        os.kill(self.dataplane.p.pid, signal.SIGUSR1)
        # The reopen is asynchronous to this test: requests until one lands in the new file.
        wait_until(lambda: get("/after") or (os.path.exists(self.log_path) and self.lines()),
                   what="a line in the reopened access log")
        self.assertTrue(all(l["path"] == "/after" for l in self.lines()), self.lines())
        with open(rotated) as f:
            self.assertEqual([json.loads(l)["path"] for l in f][:2], ["/before", "/moved"])
        # SIGHUP (a closed terminal) neither stops the dataplane nor drains it.
        os.kill(self.dataplane.p.pid, signal.SIGHUP)
        wait_until(lambda: "SIGHUP ignored" in self.dataplane.log(), what="the SIGHUP log line")
        self.assertTrue(self.dataplane.alive())
        get("/still-serving")
        self.assertEqual(http_get("http://127.0.0.1:%d/readyz" % self.dp_metrics_port)[0], 200)

    def test_metrics(self):
        for _ in range(3):
            curl(["-H", "Host: obs.local", "http://127.0.0.1:%d/" % self.port])
        labels = {"listener": "http-%d" % self.port, "route": "default/obs/app",
                  "backend": "127.0.0.1:%d" % self.backend, "code": "200"}
        wait_until(lambda: metric_value(self.dataplane_metrics(), "doorman_l7_requests_total", labels) == 3,
                   what="3 requests counted")
        m = self.dataplane_metrics()
        self.assertEqual(metric_value(m, "doorman_l7_request_duration_seconds_count",
                                      {"listener": "http-%d" % self.port, "route": "default/obs/app"}), 3)
        # connect failures, retries, rate-limited and ejections: asserted in test_l7_policy.py.

    def test_series_of_an_endpoint_that_left_are_removed(self):
        # Pods come and go: a departed endpoint's series must not stay exported forever.
        other = self.start_backend("c")
        old = {"backend": "127.0.0.1:%d" % self.backend}
        new = {"backend": "127.0.0.1:%d" % other}
        curl(["-H", "Host: obs.local", "http://127.0.0.1:%d/" % self.port])
        wait_until(lambda: metric_value(self.dataplane_metrics(), "doorman_l7_requests_total", old) == 1,
                   what="the request counted")
        version = self.wait_converged()
        self.write_manifest("lb.yaml", open(os.path.join(self.manifests, "lb.yaml")).read().replace(
            "port: %d}" % self.backend, "port: %d}" % other))
        self.wait_version_change(version)
        wait_until(lambda: metric_value(self.dataplane_metrics(), "doorman_l7_requests_total", old) is None,
                   what="the departed endpoint's series removed")
        for _ in range(2):
            curl(["-H", "Host: obs.local", "http://127.0.0.1:%d/" % self.port])
        # Counted after the last byte is written: poll, don't race it.
        m = wait_until(lambda: (lambda t: t if metric_value(t, "doorman_l7_requests_total", new) == 2 else None)(
            self.dataplane_metrics()), what="both requests counted on the new endpoint")
        self.assertIsNone(metric_value(m, "doorman_l7_requests_total", old))



class AccessLogStalled(L7Base):
    """The access log is a FIFO whose reader never reads (a container runtime's log shim that
    stalls): once the pipe is full, requests must still be served, not wait for the log."""

    def access_log_path(self):
        path = os.path.join(self.tmp, "access.fifo")
        os.mkfifo(path)
        self.reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # open, never read (until the end)
        self.addCleanup(os.close, self.reader)
        return path

    def test_a_stalled_access_log_reader_does_not_stop_traffic(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        for i in range(600):  # ~250 bytes a line: 150 KB, more than the pipe's 64 KiB
            conn.request("GET", "/r%d" % i, headers={"Host": "obs.local"})
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 200, i)
        conn.close()
        wait_until(lambda: metric_value(self.dataplane_metrics(), "doorman_l7_requests_total",
                                        {"route": "default/obs/app", "code": "200"}) == 600, what="600 requests counted")
        # Once read, the lines that were written are whole JSON objects, in order.
        data = b""
        deadline = time.monotonic() + 10
        while data.count(b"\n") < 600 and time.monotonic() < deadline:
            try:
                chunk = os.read(self.reader, 65536)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            data += chunk
        paths = [json.loads(line)["path"] for line in data.decode().splitlines()]
        self.assertEqual(paths, ["/r%d" % i for i in range(600)])

class HeldPortUnderSignals(DoormanTestCase):
    """A listener whose port was busy is tried again every 2 s, however often SIGHUP or SIGUSR1
    wake the dataplane (each used to restart the 2 s wait, so a steady stream of them postponed
    the retry for ever)."""

    def test_a_busy_port_is_retried_while_signals_keep_coming(self):
        backend = self.start_backend("b")
        port = free_port()
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        self.write_single_route_lb("held", port, backend)
        self.start_controller()
        self.start_dataplane()
        self.wait_converged()

        def status():
            objs = json.loads(http_get("http://127.0.0.1:%d/debug/status" % self.ctl_metrics_port)[2])["objects"]
            st = next(o for o in objs if o["name"] == "held")["status"]
            return {c["type"]: c for c in st["conditions"]}["Programmed"], st["dataplanes"]
        # The dataplane runs the object's generation but could not open its port: not counted as
        # programmed (helper-84: the count said 1 beside Programmed=False).
        cond, dataplanes = wait_until(lambda: status()[0]["reason"] == "ListenerNotServed" and status(),
                                      what="ListenerNotServed")
        self.assertEqual(dataplanes, {"ready": 1, "programmed": 0})
        holder.close()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not port_open(port):
            os.kill(self.dataplane.p.pid, signal.SIGHUP)
            time.sleep(0.3)
        self.assertTrue(port_open(port), "the listener was not retried while SIGHUPs kept coming")
        r = curl(["http://127.0.0.1:%d/" % port])
        self.assertEqual(r.returncode, 0, r.stderr)
        cond, dataplanes = wait_until(lambda: status()[0]["status"] == "True" and status(), what="Programmed")
        self.assertEqual(dataplanes, {"ready": 1, "programmed": 1})


if __name__ == "__main__":
    unittest.main()
