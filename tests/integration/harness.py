"""Integration-test harness: real processes on 127.0.0.1, bounded waits, no fixed sleeps.

Every helper that waits takes a deadline and polls a real readiness condition (a port accepts,
an HTTP endpoint answers, a metric reaches a value). Processes are started in their own process
group and killed at tear-down; their output goes to files that are printed when a test fails.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_DIR = os.environ.get("DOORMAN_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
CONTROLLER = os.path.join(BUILD_DIR, "controller", "doorman-controller")
DATAPLANE = os.path.join(BUILD_DIR, "dataplane", "doorman-dataplane")
DEFAULT_TIMEOUT = 15.0


_handed_out = set()


def free_port():
    """A port the kernel just handed out on 127.0.0.1 (closed again; tiny race accepted), never
    one this process was given before: a closed port is soon handed out again, and a test that
    asked for two (a listener and the metrics port) must not get the same one twice."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no fresh port in 100 tries")


def wait_until(predicate, timeout=DEFAULT_TIMEOUT, interval=0.02, what="condition"):
    """Polls predicate() until it returns a truthy value; returns it or raises AssertionError."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = predicate()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_exc = e
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last error: %r)" % (timeout, what, last_exc))


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_get(url, headers=None, timeout=5.0):
    """GET url -> (status, headers dict lower-cased, body bytes). Never raises on HTTP status."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def curl(args, timeout=10):
    """Runs the real curl; returns CompletedProcess (text)."""
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout)] + list(args),
                          capture_output=True, text=True, timeout=timeout + 5)


def burst(urls, *args, each=None):
    """One curl process asks for every URL in turn over one kept connection, so a burst
    lands within milliseconds even on a loaded machine (separate curl processes can take
    longer than a rate limiter's refill). `args` apply to every request, `each[i]` (a list)
    to request i only. Returns ([status, ...], [Retry-After or "", ...], seconds taken)."""
    cmd = []
    for i, url in enumerate(urls):
        if i:
            cmd.append("--next")
        # --next resets options: each request gets its own --max-time.
        cmd += ["-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code} %header{retry-after}\\n"] + list(args)
        cmd += list(each[i]) if each else []
        cmd.append(url)
    start = time.monotonic()
    r = curl(cmd)
    took = time.monotonic() - start
    if r.returncode != 0:
        raise AssertionError("curl failed: " + r.stderr)
    lines = [l.split(" ", 1) for l in r.stdout.splitlines()]
    return [int(l[0]) for l in lines], [l[1].strip() if len(l) > 1 else "" for l in lines], took


def metric_value(text, name, labels=None):
    """Sum of samples of `name` whose labels include `labels` in Prometheus text format."""
    total = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        mname, _, lbl = metric.partition("{")
        if mname != name:
            continue
        if labels:
            ok = all(('%s="%s"' % (k, v)) in lbl for k, v in labels.items())
            if not ok:
                continue
        total = (total or 0.0) + float(value)
    return total


class Proc:
    def __init__(self, name, argv, logdir, env=None, stdin=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(logdir, name + ".log")
        self._log = open(self.log_path, "wb")
        self.p = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                  start_new_session=True, env=env, stdin=stdin)

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(timeout=timeout)
        self._log.close()
        if self.p.stdin is not None:
            self.p.stdin.close()
        return self.p.returncode


class DoormanTestCase(unittest.TestCase):
    """Base class: a temp dir, process bookkeeping, and controller/dataplane/backends starters."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="doorman-it-")
        self.procs = []
        self.manifests = os.path.join(self.tmp, "manifests")
        os.makedirs(self.manifests)
        # A cleanup (not tearDown) also runs when a subclass's setUp fails half-way.
        self.addCleanup(self._stop_all)

    def _stop_all(self):
        failed = self._outcome_failed()
        for p in reversed(self.procs):
            p.stop()
        # With a sanitizer build (DOORMAN_BUILD_DIR=build-asan) a report anywhere in a process's
        # life, shutdown included, fails the test that ran it.
        sanitized = [p for p in self.procs if "ERROR: AddressSanitizer" in p.log() or ": runtime error: " in p.log()]
        if failed or sanitized:
            for p in self.procs:
                sys.stderr.write("\n----- %s log (%s) -----\n%s\n" % (p.name, " ".join(p.argv), p.log()[-6000:]))
        shutil.rmtree(self.tmp, ignore_errors=True)
        if sanitized:
            raise AssertionError("sanitizer report in the log of " + ", ".join(p.name for p in sanitized))

    def _outcome_failed(self):
        """True when this test (not an earlier one in the run) has failed or errored so far."""
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is None:
            return False
        return any(t is self for t, _ in list(result.failures) + list(result.errors))

    def spawn(self, name, argv, env=None, stdin=None):
        p = Proc(name, argv, self.tmp, env=env, stdin=stdin)
        self.procs.append(p)
        return p

    # --- peers ---------------------------------------------------------------------------
    def start_backend(self, name, extra=(), port=None, proc_name=None):
        """`port`: a given one (a backend started again where another was); else a free one."""
        port = port or free_port()
        self.spawn(proc_name or "backend-" + name, [sys.executable, os.path.join(HERE, "backend.py"),
                                                   "--port", str(port), "--name", name] + list(extra))
        wait_until(lambda: port_open(port), what="backend %s on :%d" % (name, port))
        return port

    def start_redis(self):
        port = free_port()
        self.spawn("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--daemonize", "no"])
        wait_until(lambda: port_open(port), what="redis on :%d" % port)
        return port

    # --- doorman -------------------------------------------------------------------------
    def write_single_route_lb(self, name, port, backend_port):
        """lb.yaml: LoadBalancer `name` with one HTTP listener on `port` whose only route sends
        everything to one static endpoint."""
        self.write_manifest("lb.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: {name}, namespace: default}}
spec:
  listeners: [{{name: web, port: {port}, protocol: HTTP}}]
  routes:
    - name: all
      listener: web
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {backend_port}}}]}}]
""")

    def write_manifest(self, filename, text):
        """Atomically replaces a manifest file (as editors and kubectl-like tools do); `text` is
        a str (written as UTF-8) or bytes (written as they are)."""
        path = os.path.join(self.manifests, filename)
        tmp = path + ".tmp~"
        with open(tmp, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode())
        os.replace(tmp, path)
        return path

    def start_controller(self, extra=(), stdin=None):
        self.grpc_port = free_port()
        self.ctl_metrics_port = free_port()
        self.controller = self.spawn("controller", [
            CONTROLLER, "--manifests", self.manifests,
            "--grpc-listen", "127.0.0.1:%d" % self.grpc_port,
            "--metrics-listen", "127.0.0.1:%d" % self.ctl_metrics_port] + list(extra), stdin=stdin)
        wait_until(lambda: http_get("http://127.0.0.1:%d/readyz" % self.ctl_metrics_port)[0] == 200,
                   what="controller /readyz")
        return self.controller

    def start_dataplane(self, extra=(), prefix=()):
        """`prefix`: a command the dataplane runs under (e.g. prlimit)."""
        self.dp_metrics_port = free_port()
        self.dataplane = self.spawn("dataplane", list(prefix) + [
            DATAPLANE, "--controller", "127.0.0.1:%d" % self.grpc_port,
            "--bind-address", "127.0.0.1", "--node-name", "it-node",
            "--metrics-listen", "127.0.0.1:%d" % self.dp_metrics_port] + list(extra))
        wait_until(lambda: http_get("http://127.0.0.1:%d/readyz" % self.dp_metrics_port)[0] == 200,
                   what="dataplane /readyz")
        return self.dataplane

    def controller_metrics(self):
        return http_get("http://127.0.0.1:%d/metrics" % self.ctl_metrics_port)[2].decode()

    def dataplane_metrics(self):
        return http_get("http://127.0.0.1:%d/metrics" % self.dp_metrics_port)[2].decode()

    def controller_version(self):
        return metric_value(self.controller_metrics(), "doorman_controller_snapshot_version")

    def dataplane_version(self):
        return metric_value(self.dataplane_metrics(), "doorman_config_version")

    def wait_converged(self, timeout=DEFAULT_TIMEOUT):
        """Waits until the dataplane has applied the controller's current snapshot version."""
        def same():
            c = self.controller_version()
            return c and c == self.dataplane_version()
        wait_until(same, timeout=timeout, what="dataplane to apply the controller's snapshot")
        return self.controller_version()

    def refused_port(self):
        """A port where every connect is refused, held for the test: bound but not listening, so
        the kernel cannot hand it out as the ephemeral port of a connect to it (a closed
        free_port() can be, and the dataplane's connect then meets itself: a TCP self-connect
        that never ends)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        self.addCleanup(s.close)
        return s.getsockname()[1]

    def silent_port(self):
        """A port that accepts connections (the kernel completes the handshake into the backlog)
        and never answers, held for the test: a backend that hangs."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        self.addCleanup(s.close)
        return s.getsockname()[1]

    def wait_l4_probes_ended(self, probes=1, timeout=DEFAULT_TIMEOUT):
        """port_open() readiness probes of L4 listeners are real connections. Waits until the
        dataplane has accepted and finished `probes` of them (each ends as a backend connection or
        a drop), so none lands late in a test's own counts. `connections_active == 0` alone is not
        enough: it also holds before the dataplane has accepted the probe."""
        def ended():
            text = self.dataplane_metrics()
            seen = ((metric_value(text, "doorman_l4_connections_total") or 0) +
                    (metric_value(text, "doorman_l4_drops_total") or 0))
            return seen >= probes and (metric_value(text, "doorman_l4_connections_active") or 0) == 0
        wait_until(ended, timeout=timeout, what="%d readiness probe connection(s) to end" % probes)

    def wait_version_change(self, old, timeout=DEFAULT_TIMEOUT):
        """Waits until the controller publishes a version != old and the dataplane applied it."""
        def changed():
            c = self.controller_version()
            return c and c != old and c == self.dataplane_version()
        wait_until(changed, timeout=timeout, what="new snapshot applied by the dataplane")
        return self.controller_version()


def one_ingress_yaml(backend, host, annotations="", tls_secret="", name="app", service="web", path="/",
                     ingress_class=True):
    """doorman's IngressClass (unless `ingress_class` is false), a Service `service` whose one
    endpoint is 127.0.0.1:`backend`, and an Ingress `name` routing `host` `path` (Prefix) to it
    (`annotations`: a YAML flow map body; `tls_secret`: a kubernetes.io/tls Secret for the host)."""
    meta = "{name: %s, namespace: default%s}" % (name, ", annotations: {%s}" % annotations if annotations else "")
    tls = "  tls: [{hosts: [%s], secretName: %s}]\n" % (host, tls_secret) if tls_secret else ""
    cls = """\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: doorman}
spec: {controller: doorman.dev/ingress-controller}
---
""" if ingress_class else ""
    return cls + f"""\
apiVersion: v1
kind: Service
metadata: {{name: {service}, namespace: default}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {service}-1, namespace: default, labels: {{kubernetes.io/service-name: {service}}}}}
addressType: IPv4
ports: [{{name: http, port: {backend}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {meta}
spec:
  ingressClassName: doorman
{tls}  rules: [{{host: {host}, http: {{paths: [{{path: {path}, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}]}}}}]
"""


def raw_exchange(port, data, timeout=5.0, host="127.0.0.1"):
    """Sends raw bytes on a fresh connection, half-closes, returns everything read until EOF."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
        return out


def read_to_eof(s):
    """Everything socket `s` still delivers until its peer closes."""
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return out
        out += chunk


def backend_of(body):
    return json.loads(body)["backend"]


# --- L4 helpers (added by the L4 work) ------------------------------------------------------
def read_response(s, head_only=False):
    """One HTTP/1.1 response with a Content-Length body (none when head_only, as for HEAD) from
    socket `s`, which stays usable for the next one. Returns (head bytes, body bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response header: %r" % buf)
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    if head_only:
        length = 0
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside the response body")
        body += chunk
    return head, body[:length]


def http_over_tcp(port, src=None, host="127.0.0.1", timeout=5.0, keep=False, path="/"):
    """One HTTP/1.1 GET over a fresh TCP connection (optionally from source address `src`).

    Returns (backend name, socket or None): the socket stays open when keep=True, so tests can
    hold connections (least-connections, pinning) and close them later.
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    s.connect((host, port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: l4.test\r\n%s\r\n" %
               (path, "" if keep else "Connection: close\r\n")).encode())
    _, body = read_response(s)
    name = json.loads(body)["backend"]
    if keep:
        return name, s
    s.close()
    return name, None


def start_nginx(tc, http_servers="", stream_servers="", name="nginx"):
    """Starts the real nginx (foreground, own prefix in tc.tmp) with the given `server { }` blocks
    for the http and stream contexts; returns the Proc. Loads the stream module when needed."""
    prefix = os.path.join(tc.tmp, name)
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    stream_mod = ""
    if stream_servers:
        for p in ("/usr/lib/nginx/modules/ngx_stream_module.so",):
            if os.path.exists(p):
                stream_mod = "load_module %s;\n" % p
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(stream_mod + "worker_processes 1;\nerror_log %s/logs/error.log info;\npid %s/nginx.pid;\n"
                "events { worker_connections 1024; }\n" % (prefix, prefix))
        f.write("http {\n  access_log off;\n  client_body_temp_path %s/tmp;\n  proxy_temp_path %s/tmp;\n"
                "  fastcgi_temp_path %s/tmp;\n  uwsgi_temp_path %s/tmp;\n  scgi_temp_path %s/tmp;\n%s\n}\n"
                % ((prefix,) * 5 + (http_servers,)))
        if stream_servers:
            f.write("stream {\n%s\n}\n" % stream_servers)
    return tc.spawn(name, ["nginx", "-p", prefix, "-e", os.path.join(prefix, "logs", "error.log"),
                           "-c", conf, "-g", "daemon off;"])


def redis_cmd(sock, *args):
    """Sends one RESP command on an open socket and returns the first reply line."""
    payload = "*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args)
    sock.sendall(payload.encode())
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf.decode().strip()


# --- mTLS between controller and dataplanes -------------------------------------------------
class Pki:
    """A throwaway PKI made with the openssl CLI in `dirpath`: CAs and leaf certificates (EC P-256).

    ca(name) -> (crt, key); issue(name, ca, sans, usage) -> (crt, key) where sans are openssl
    subjectAltName entries ("IP:127.0.0.1", "DNS:localhost") and usage an extendedKeyUsage.
    """

    def __init__(self, dirpath):
        self.dir = dirpath
        os.makedirs(dirpath, exist_ok=True)

    def _run(self, argv):
        subprocess.run(["openssl"] + argv, check=True, capture_output=True, timeout=30)

    def ca(self, name):
        crt, key = os.path.join(self.dir, name + ".crt"), os.path.join(self.dir, name + ".key")
        self._run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                   "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=" + name,
                   "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"])
        return crt, key

    def issue(self, name, ca, sans, usage):
        crt, key = os.path.join(self.dir, name + ".crt"), os.path.join(self.dir, name + ".key")
        csr, ext = os.path.join(self.dir, name + ".csr"), os.path.join(self.dir, name + ".ext")
        self._run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                   "-keyout", key, "-out", csr, "-subj", "/CN=" + name])
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nextendedKeyUsage=%s\n" % (",".join(sans), usage))
        self._run(["x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-set_serial",
                   str(int.from_bytes(os.urandom(8), "big")), "-days", "2", "-extfile", ext, "-out", crt])
        return crt, key

    def key_material(self):
        """Every base64 line of every private key made here (to prove none reaches a log)."""
        lines = []
        for f in os.listdir(self.dir):
            if f.endswith(".key"):
                with open(os.path.join(self.dir, f)) as k:
                    lines += [l.strip() for l in k if l.strip() and not l.startswith("-----")]
        return lines


def tls_flags(cert, key, ca):
    return ["--tls-cert", cert, "--tls-key", key, "--tls-ca", ca]
