#!/usr/bin/env python3
"""WebSocket through the L7 proxy: a real client and echo server (Debian python3-websockets),
the Upgrade tunnelled both ways after 101, surviving a snapshot update mid-connection, and the
tunnel closed after its idle timeout.
"""
import os
import signal
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERE, DoormanTestCase, free_port, port_open, read_response, wait_until  # noqa: E402

PEER = os.path.join(HERE, "ws_peer.py")
SYS_PY = "/usr/bin/python3"


def manifest(port, ws, extra_route=""):
    return f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: ws, namespace: default}}
spec:
  listeners: [{{name: web, port: {port}, protocol: HTTP}}]
  routes:
    - name: ws
      listener: web
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {ws}}}]}}]
      policy: {{timeouts: {{idle: 2s}}}}
{extra_route}"""


@unittest.skipUnless(subprocess.run([SYS_PY, "-c", "import websockets"], capture_output=True).returncode == 0,
                     "python3-websockets is not installed (scripts/deps.sh test)")
class L7WebSocket(DoormanTestCase):
    def setUp(self):
        super().setUp()
        self.ws = free_port()
        self.spawn("ws-echo", [SYS_PY, PEER, "server", str(self.ws)])
        wait_until(lambda: port_open(self.ws), what="ws echo server")
        self.port = free_port()
        self.write_manifest("ws.yaml", manifest(self.port, self.ws))
        self.start_controller()
        self.start_dataplane()
        self.version = self.wait_converged()
        wait_until(lambda: port_open(self.port), what="L7 listener")

    def test_echo_through_proxy(self):
        r = subprocess.run([SYS_PY, PEER, "client", "ws://127.0.0.1:%d/chat" % self.port, "20"],
                           capture_output=True, text=True, timeout=40)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ok 20", r.stdout)

    def test_tunnel_survives_snapshot_update(self):
        p = subprocess.Popen([SYS_PY, PEER, "client", "ws://127.0.0.1:%d/" % self.port, "6", "--pause-after", "3"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            self.assertEqual(p.stdout.readline().strip(), "paused")
            other = free_port()
            self.write_manifest("ws.yaml", manifest(self.port, self.ws, f"""\
    - name: other
      listener: web
      match: {{path: {{type: Prefix, value: /other}}}}
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {other}}}]}}]
"""))
            self.wait_version_change(self.version)
            p.stdin.write("go\n")
            p.stdin.flush()
            out, _ = p.communicate(timeout=30)
            self.assertEqual(p.returncode, 0, out)
            self.assertIn("ok 6", out)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

    def open_tunnel(self):
        """A raw WebSocket handshake through the proxy: the socket and the 101 head."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        return s, head

    def test_idle_tunnel_is_closed(self):
        s, head = self.open_tunnel()
        with s:
            self.assertIn(b"upgrade: websocket", head.lower())
            # Nothing sent: the proxy closes the tunnel after the 2 s idle timeout.
            rest = s.recv(4096)
            while rest:
                rest = s.recv(4096)

    def test_drain_closes_idle_keepalive_connections_while_a_tunnel_is_open(self):
        # SIGTERM with a tunnel still open (busy for the drain) and a keep-alive connection idle
        # after one request: the idle one is closed after the 1 s idle-drain step, not kept (and
        # served) until the 5 s grace ends.
        ws, _ = self.open_tunnel()
        self.addCleanup(ws.close)
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as ka:
            ka.sendall(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
            answer, _ = read_response(ka)
            self.assertTrue(answer.startswith(b"HTTP/1.1 "), answer)
            self.assertNotIn(b"Connection: close", answer)
            self.dataplane.p.send_signal(signal.SIGTERM)
            ka.settimeout(4)
            self.assertEqual(ka.recv(1), b"", "the idle connection is closed by the drain")
        # The tunnel is still open (it idles out after 2 s of silence, or at the grace end).
        ws.setblocking(False)
        with self.assertRaises(BlockingIOError):
            ws.recv(1)


if __name__ == "__main__":
    unittest.main()
