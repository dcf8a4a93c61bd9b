"""Starts the project's Kubernetes API test server (tests/kube-apiserver-sim) for a test and
drives it with the real kubectl. Bounded waits, no fixed sleeps; output kept for failures."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SIM = os.path.join(ROOT, "tests", "kube-apiserver-sim", "apiserver.py")
BUILD_DIR = os.environ.get("DOORMAN_BUILD_DIR") or os.path.join(ROOT, "build")


class Sim:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="doorman-deploy-")
        self.log = open(os.path.join(self.dir, "sim.log"), "w")
        self.proc = subprocess.Popen(
            ["python3", SIM, "--port", "0", "--gen-certs", os.path.join(self.dir, "pki"),
             "--token", "deploy-test", "--admin-port", "0"],
            stdout=subprocess.PIPE, stderr=self.log, text=True, start_new_session=True)
        lines = {}
        for _ in range(3):  # LISTENING, ADMIN, KUBECONFIG: printed before serving
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("apiserver sim exited: see %s" % self.log.name)
            k, _, v = line.strip().partition(" ")
            lines[k] = v
        self.kubeconfig = lines["KUBECONFIG"]
        self.admin = "http://" + lines["ADMIN"]
        self.env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=self.dir)

    def kubectl(self, *args, stdin=None, check=True, timeout=60):
        p = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True,
                           env=self.env, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("kubectl %s failed (%d): %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def admin_get(self, path):
        with urllib.request.urlopen(self.admin + path, timeout=10) as r:
            return json.loads(r.read())

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
