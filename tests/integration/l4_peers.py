"""Small real TCP peers for the L4 tests (threads in the test process, real sockets on 127.0.0.1).

EchoServer: echoes every byte back; when the client half-closes (FIN) it answers
"<name>:EOF" and closes; on the message "RST!" it resets the connection (SO_LINGER 0), so a test sees both directions of a half-closed connection. It keeps
every accepted socket in `conns` (so a test can reset one) and records how each one ended in
`endings` ("eof" | "reset" | "error").
"""
import socket
import struct
import threading


class EchoServer:
    def __init__(self, name, port=0):
        self.name = name.encode()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.endings = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        ending = "error"
        try:
            c.sendall(b"hello from " + self.name + b"\n")
            while True:
                data = c.recv(65536)
                if not data:
                    ending = "eof"
                    c.sendall(self.name + b":EOF")
                    break
                if data == b"RST!":  # the test asks this peer to reset the connection
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    ending = "sent-reset"
                    break
                c.sendall(data)
        except ConnectionResetError:
            ending = "reset"
        except OSError:
            ending = "error"
        finally:
            with self.lock:
                self.endings.append(ending)
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass


class SilentServer:
    """Accepts connections and reads them until the peer closes, never writing a byte (a TCP
    server that does not speak the protocol a client expects, and never says so)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._drain, args=(c,), daemon=True).start()

    @staticmethod
    def _drain(c):
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def connect(port, src=None, timeout=5.0):
    """Connects and reads the greeting line; returns (socket, backend name)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    try:
        s.connect(("127.0.0.1", port))
        line = b""
        while not line.endswith(b"\n"):
            chunk = s.recv(1)
            if not chunk:
                raise ConnectionError("closed before the greeting")
            line += chunk
    except BaseException:
        s.close()
        raise
    return s, line.decode().strip().rpartition(" ")[2]


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def recv_until_eof(s, limit=1 << 24):
    buf = b""
    while len(buf) < limit:
        chunk = s.recv(65536)
        if not chunk:
            return buf
        buf += chunk
    return buf


class HealthToggleServer:
    """HTTP/1.1 peer: GET /healthz answers 200 or 503 (set .healthy); anything else answers
    {"backend": name}. Real sockets, served from a thread."""

    def __init__(self, name, port=0):
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        outer = self
        self.healthy = True
        self.checks = 0

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path == "/healthz":
                    outer.checks += 1
                    code, body = (200, b"ok\n") if outer.healthy else (503, b"down\n")
                else:
                    code, body = 200, json.dumps({"backend": name}).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", port), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()
