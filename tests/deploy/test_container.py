"""Dockerfile checks without a Docker engine (none runs here).

Proven: every COPY source (outside --from stages) exists in the repository and is not excluded
by .dockerignore; the build stage runs the project's own scripts; the runtime stage's apt
packages provide every shared library the built binaries need (ldd on build/, each library
mapped to its Debian package with dpkg -S), and it lists no library package they do not need;
the image runs as 65532 and copies both binaries. Not proven: that `docker build` succeeds
(no engine, no network to pull debian:12).
"""
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simkube import BUILD_DIR, ROOT  # noqa: E402

BINARIES = [os.path.join(BUILD_DIR, "controller", "doorman-controller"),
            os.path.join(BUILD_DIR, "dataplane", "doorman-dataplane")]
NOT_LIBRARIES = {"ca-certificates"}


def instructions():
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    stages, cur = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            cur = {"from": rest, "ins": []}
            stages.append(cur)
        cur["ins"].append((op, rest.strip()))
    return stages


def packages_for(binary):
    """{library path: Debian package} for every shared library ldd lists (one dpkg -S call)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = [m.group(1) for m in (re.search(r"=>\s+(/\S+)", l) for l in out.splitlines()) if m]
    self_check = [l for l in out.splitlines() if "not found" in l]
    assert not self_check, "unresolved libraries: %r" % self_check
    candidates = {}
    for lib in libs:
        cands = [lib, os.path.realpath(lib)]
        cands += ["/usr" + c for c in cands if c.startswith("/lib")]
        candidates[lib] = cands
    allpaths = sorted({c for cs in candidates.values() for c in cs})
    p = subprocess.run(["dpkg", "-S", *allpaths], capture_output=True, text=True)
    owner = {}
    for line in p.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        owner[path.strip()] = pkg.split(":")[0]
    pkgs = {}
    for lib, cands in candidates.items():
        found = [owner[c] for c in cands if c in owner]
        assert found, "no Debian package owns %s (needed by %s)" % (lib, binary)
        pkgs[lib] = found[0]
    return pkgs


class ContainerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stages = instructions()

    def test_stages(self):
        self.assertEqual(len(self.stages), 2)
        self.assertTrue(self.stages[0]["from"].startswith("debian:12 AS build"))
        self.assertTrue(self.stages[1]["from"].startswith("debian:12-slim"))
        build_runs = " ".join(r for op, r in self.stages[0]["ins"] if op == "RUN")
        self.assertIn("scripts/deps.sh build", build_runs)
        self.assertIn("scripts/build.sh", build_runs)
        runtime = self.stages[1]["ins"]
        self.assertIn(("USER", "65532:65532"), runtime)
        copies = [r for op, r in runtime if op == "COPY"]
        for b in ("doorman-controller", "doorman-dataplane"):
            self.assertTrue(any(c.startswith("--from=build") and c.endswith("/usr/local/bin/" + b) for c in copies), b)
        # The dataplane binds ports below 1024 as uid 65532: the file capability, set after the COPY.
        ops = [op + " " + r for op, r in runtime]
        setcap = [i for i, o in enumerate(ops) if "setcap cap_net_bind_service=+p /usr/local/bin/doorman-dataplane" in o]
        copy = [i for i, o in enumerate(ops) if o.startswith("COPY") and o.endswith("/usr/local/bin/doorman-dataplane")]
        self.assertTrue(setcap and setcap[0] > copy[0], ops)

    def test_copy_sources_exist(self):
        with open(os.path.join(ROOT, ".dockerignore")) as f:
            ignored = [l.strip().rstrip("/") for l in f if l.strip() and not l.startswith("#")]
        n = 0
        for st in self.stages:
            for op, rest in st["ins"]:
                if op not in ("COPY", "ADD") or rest.startswith("--from"):
                    continue
                args = shlex.split(rest)
                for src in args[:-1]:
                    n += 1
                    self.assertTrue(os.path.exists(os.path.join(ROOT, src)), "COPY source missing: " + src)
                    self.assertNotIn(src.rstrip("/"), ignored, "COPY source excluded by .dockerignore: " + src)
        self.assertGreaterEqual(n, 5)
        # Everything the CMake build needs at the top level is copied.
        copied = {shlex.split(r)[0].rstrip("/") for st in self.stages for op, r in st["ins"]
                  if op == "COPY" and not r.startswith("--from")}
        with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
            for d in re.findall(r"add_subdirectory\((\w+)\)", f.read()):
                self.assertIn(d, copied, "CMakeLists.txt needs %s/ but the Dockerfile does not copy it" % d)

    def test_runtime_packages_provide_every_library(self):
        for b in BINARIES:
            self.assertTrue(os.access(b, os.X_OK), "build the binaries first: " + b)
        runs = " ".join(r for op, r in self.stages[1]["ins"] if op == "RUN")
        m = re.search(r"apt-get install -y --no-install-recommends (.*?)(&&|$)", runs)
        self.assertTrue(m, "runtime stage installs packages with apt-get install")
        listed = set(m.group(1).split())
        needed = {}
        for b in BINARIES:
            needed.update(packages_for(b))
        need_pkgs = set(needed.values())
        self.assertIn("libgrpc++1.51", need_pkgs)  # sanity: the mapping works
        self.assertEqual(need_pkgs - listed, set(),
                         "libraries not provided by the runtime stage: %r" %
                         {lib: p for lib, p in needed.items() if p not in listed})
        self.assertEqual(listed - need_pkgs - NOT_LIBRARIES, set(), "runtime packages no binary needs")


def free_low_port():
    for port in range(990, 900, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port below 1024")


def free_high_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("setcap") and shutil.which("capsh") and shutil.which("setpriv"),
                     "needs root, setcap, capsh and setpriv (libcap2-bin, util-linux)")
class FileCapability(unittest.TestCase):
    """The image's `setcap cap_net_bind_service=+p` on the dataplane, with the binary itself: as uid
    65532 under no_new_privs with the capability permitted before exec (what a pod's
    capabilities.add gives the runtime), it binds a port below 1024 (the dataplane raises the
    capability into its effective set); without the capability in the bounding set (a container
    that drops ALL), it still starts and binds a high port (with +e, execve would fail)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="doorman-cap-")
        os.chmod(self.tmp, 0o755)
        self.bin = os.path.join(self.tmp, "doorman-dataplane")
        shutil.copy(os.path.join(BUILD_DIR, "dataplane", "doorman-dataplane"), self.bin)
        subprocess.run(["setcap", "cap_net_bind_service=+p", self.bin], check=True, timeout=10)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            p.kill()
            p.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def healthz(self, prefix, port):
        p = subprocess.Popen(prefix + ["--controller", "127.0.0.1:1", "--metrics-listen", "127.0.0.1:%d" % port],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs.append(p)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if p.poll() is not None:
                self.fail("exited %d: %s" % (p.returncode, p.stdout.read().decode()[-500:]))
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1) as r:
                    return r.status
            except OSError:
                time.sleep(0.05)
        self.fail("no /healthz on port %d" % port)

    def test_binds_a_low_port_as_non_root_under_no_new_privs(self):
        pod = ["setpriv", "--no-new-privs", "capsh", "--caps=cap_net_bind_service+ip cap_setuid,cap_setgid+ep",
               "--keep=1", "--gid=65532", "--uid=65532", "--caps=cap_net_bind_service+ip", "--shell=" + self.bin, "--"]
        self.assertEqual(self.healthz(pod, free_low_port()), 200)

    def test_starts_without_the_capability_in_the_bounding_set(self):
        no_cap = ["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups", "--bounding-set=-net_bind_service",
                  "--no-new-privs", self.bin]
        self.assertEqual(self.healthz(no_cap, free_high_port()), 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
