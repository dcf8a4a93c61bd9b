"""deploy/: kubectl apply against the API test server, key properties, promtool on the alerts,
and RBAC least privilege checked against the requests a running controller makes.

Proven: every object in crds/ + deploy/ + deploy/monitoring/ is applied by the real kubectl
(Namespace, ServiceAccount, Service, IngressClass, CRD: kinds the sim validates; Deployment,
DaemonSet, RBAC and Prometheus Operator kinds: stored via stand-in CRDs, not validated by the
server); the alert expressions pass `promtool check rules`; RBAC rules grant every
(apiGroup, resource/subresource, verb) the controller used, and nothing it did not use; the
deploy/mtls/ patches add exactly the --tls-* flags and Secret mounts the binaries accept.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploycheck as dc  # noqa: E402
from simkube import BUILD_DIR, ROOT, Sim  # noqa: E402

STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin-crds.yaml")
RECORDED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "controller-requests.json")
CONTROLLER = os.path.join(BUILD_DIR, "controller", "doorman-controller")
DATAPLANE = os.path.join(BUILD_DIR, "dataplane", "doorman-dataplane")


def wait_until(pred, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001
            last = e
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s (%r)" % (what, last))


def request_key(r):
    res = r["resource"] + ("/" + r["subresource"] if r.get("subresource") else "")
    return (r.get("apiGroup") or "", res, r["verb"])


def granted(docs):
    cluster = dc.normalized_rules(dc.one(docs, "ClusterRole"))
    ns = dc.normalized_rules(dc.one(docs, "Role"))
    return cluster, ns


class ManifestsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = dc.deploy_docs()

    def test_properties(self):
        dc.check_controller(self, self.docs)
        dc.check_dataplane(self, self.docs)
        dc.check_ingressclass(self, self.docs)
        ns = {d["metadata"].get("namespace") for d in self.docs
              if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding", "IngressClass")}
        self.assertEqual(ns, {"doorman-system"})
        for kind in ("ServiceMonitor", "PrometheusRule", "Namespace", "Role", "RoleBinding",
                     "ClusterRoleBinding"):
            dc.one(self.docs, kind)

    def test_rbac_matches_recorded_requests(self):
        with open(RECORDED) as f:
            rec = json.load(f)
        cluster, ns = granted(self.docs)
        want_cluster = {tuple(x) for x in rec["cluster"]}
        want_ns = {tuple(x) for x in rec["namespace"]}
        self.assertEqual(cluster, want_cluster)
        self.assertEqual(ns, want_ns)

    def test_promtool_rules(self):
        self.assertTrue(shutil.which("promtool"), "promtool missing: scripts/deps.sh test installs prometheus")
        rule = dc.one(self.docs, "PrometheusRule")
        alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
        self.assertTrue({"DoormanDataplaneNotProgrammed", "DoormanConfigRejected", "DoormanBackendsDown",
                         "DoormanControllerNoLeader"} <= alerts)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump({"groups": rule["spec"]["groups"]}, f)
            f.flush()
            p = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("SUCCESS", p.stdout)


class MtlsPatchTest(unittest.TestCase):
    """deploy/mtls/*-patch.yaml (JSON patches, applied with kubectl patch --local, offline): the
    flags and Secret mounts they add, and that the binaries accept exactly those flags."""

    def patched(self, kind, patch):
        """The deploy/ object of `kind` after `kubectl patch --local` (as `kubectl patch KIND NAME`
        does to the live object)."""
        tmp = tempfile.mkdtemp(prefix="doorman-mtls-patch-")
        self.addCleanup(shutil.rmtree, tmp, True)
        obj = os.path.join(tmp, kind + ".yaml")
        with open(obj, "w") as f:
            yaml.safe_dump(dc.one(dc.deploy_docs(), kind), f)
        p = subprocess.run(["kubectl", "patch", "--local", "-f", obj, "--type", "json",
                            "--patch-file", os.path.join(ROOT, "deploy", "mtls", patch), "-o", "yaml"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return yaml.safe_load(p.stdout)

    def test_patches(self):
        dep = self.patched("Deployment", "controller-patch.yaml")
        ds = self.patched("DaemonSet", "dataplane-patch.yaml")
        for w, secret in ((dep, "doorman-controller-tls"), (ds, "doorman-dataplane-tls")):
            self.assertEqual(dc.tls_args(w), dc.MTLS_ARGS)
            dc.check_mtls_mount(self, w, secret)
        # The dataplane keeps its state volume.
        self.assertIn("/var/lib/doorman", [m["mountPath"] for m in dc.container(ds)["volumeMounts"]])
        # Unpatched, the plain manifests stay plaintext.
        for w in (dc.one(dc.deploy_docs(), "Deployment"), dc.one(dc.deploy_docs(), "DaemonSet")):
            self.assertEqual(dc.tls_args(w), [])
        dc.check_mtls_args_start_binaries(self, BUILD_DIR, dc.tls_args(dep), dc.tls_args(ds))


class ApplyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.close()

    def test_apply_all(self):
        k = self.sim.kubectl
        k("apply", "-f", STANDIN)
        k("apply", "-f", os.path.join(ROOT, "crds"))
        for crd in ("deployments.apps", "daemonsets.apps", "clusterroles.rbac.authorization.k8s.io",
                    "servicemonitors.monitoring.coreos.com", "loadbalancers.doorman.dev"):
            k("wait", "--for=condition=Established", "crd/" + crd, "--timeout=20s")
        out = k("apply", "-f", os.path.join(ROOT, "deploy")).stdout
        out += k("apply", "-f", os.path.join(ROOT, "deploy", "monitoring")).stdout
        for d in dc.deploy_docs():
            self.assertIn(d["metadata"]["name"], out)
        dep = json.loads(k("get", "deployment", "doorman-controller", "-n", "doorman-system", "-o", "json").stdout)
        self.assertEqual(dep["spec"]["replicas"], 2)
        k("get", "daemonset/doorman-dataplane", "servicemonitor/doorman", "prometheusrule/doorman",
          "role/doorman-controller-leader-election", "-n", "doorman-system")
        k("get", "ingressclass/doorman", "clusterrole/doorman-controller", "clusterrolebinding/doorman-controller")
        svc = json.loads(k("get", "svc", "doorman-controller", "-n", "doorman-system", "-o", "json").stdout)
        self.assertEqual(sorted(p["port"] for p in svc["spec"]["ports"]), [9100, 18000])
        # Re-applying unchanged manifests is a no-op (no error), as in a real rollout.
        k("apply", "-f", os.path.join(ROOT, "deploy", "00-namespace.yaml"))


OBJECTS = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerClass: doorman.dev/lb
  ports: [{name: http, port: %(svc_port)d, targetPort: 9999, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 9999, protocol: TCP}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true, serving: true, terminating: false}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  ingressClassName: doorman
  rules: [{host: web.example.com, http: {paths: [{path: /, pathType: Prefix,
           backend: {service: {name: web, port: {number: %(svc_port)d}}}}]}}]
---
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {name: lb, namespace: default}
spec:
  listeners: [{name: web, port: %(lb_port)d, protocol: HTTP}]
  routes:
    - {name: web, listener: web, backends: [{service: web, port: %(svc_port)d}]}
    - {name: bad, listener: nope, backends: [{service: web, port: %(svc_port)d}]}
"""


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveRbacTest(unittest.TestCase):
    """Runs doorman-controller (--kubeconfig, --leader-elect) + a dataplane against the API test
    server and checks the requests it made (the server's /requests log) against deploy/ RBAC."""

    def setUp(self):
        self.assertTrue(os.access(CONTROLLER, os.X_OK) and os.access(DATAPLANE, os.X_OK), "binaries not built")
        self.sim = Sim()
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="doorman-rbac-")

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        self.sim.close()
        if self._outcome.success if hasattr(self._outcome, "success") else True:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def spawn(self, name, argv):
        log = open(os.path.join(self.tmp, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(p)
        return p

    def test_requests_are_granted_and_rules_are_used(self):
        k = self.sim.kubectl
        k("apply", "-f", STANDIN)
        k("apply", "-f", os.path.join(ROOT, "crds"))
        k("wait", "--for=condition=Established", "crd/loadbalancers.doorman.dev", "--timeout=20s")
        k("apply", "-f", os.path.join(ROOT, "deploy", "00-namespace.yaml"))
        k("apply", "-f", os.path.join(ROOT, "deploy", "40-ingressclass.yaml"))
        svc_port, lb_port, grpc, metrics, dmetrics, http = (free_port() for _ in range(6))
        k("apply", "-f", "-", stdin=OBJECTS % {"svc_port": svc_port, "lb_port": lb_port})
        self.spawn("controller", [CONTROLLER, "--kubeconfig", self.sim.kubeconfig, "--pod-name", "rbac-test",
                                  "--leader-elect", "--leader-elect-namespace", "doorman-system",
                                  "--leader-elect-retry-period", "200ms", "--ingress-http-port", str(http),
                                  "--grpc-listen", "127.0.0.1:%d" % grpc,
                                  "--metrics-listen", "127.0.0.1:%d" % metrics])
        self.spawn("dataplane", [DATAPLANE, "--controller", "127.0.0.1:%d" % grpc, "--node-name", "node-a",
                                 "--advertise-address", "127.0.0.1", "--bind-address", "127.0.0.1",
                                 "--metrics-listen", "127.0.0.1:%d" % dmetrics,
                                 "--state-dir", os.path.join(self.tmp, "state")])

        def status_written():
            reqs = self.sim.admin_get("/requests?userAgent=doorman-controller")["requests"]
            keys = {request_key(r) for r in reqs if r.get("resource")}
            need = {("", "services/status", "patch"), ("networking.k8s.io", "ingresses/status", "patch"),
                    ("doorman.dev", "loadbalancers/status", "patch"), ("", "events", "create"),
                    ("coordination.k8s.io", "leases", "create")}
            return reqs if need <= keys else None
        reqs = wait_until(status_written, timeout=60, what="controller status writes")
        cluster, ns = granted(dc.deploy_docs())
        seen = set()
        for r in reqs:
            if not r.get("resource"):
                continue  # discovery/non-resource URLs: allowed to every authenticated user
            key = request_key(r)
            seen.add(key)
            if r["resource"] == "leases":
                self.assertEqual(r.get("namespace"), "doorman-system", r)
                self.assertIn(key, ns, "not granted by the leader-election Role: %r" % (r,))
            else:
                self.assertIn(key, cluster, "not granted by the ClusterRole: %r" % (r,))
        with open(RECORDED) as f:
            rec = json.load(f)
        # Everything seen is in the recorded list, so the recorded list (== the rules) is no
        # smaller than reality; rules only exercised on rare paths (409 re-reads, repeated
        # Events, lease renewals) are documented there and not required to appear here.
        recorded = {tuple(x) for x in rec["cluster"]} | {tuple(x) for x in rec["namespace"]}
        self.assertEqual(seen - recorded, set())
        self.assertTrue(seen >= {tuple(x) for x in rec["always_seen"]},
                        "rules never exercised: %r" % ({tuple(x) for x in rec["always_seen"]} - seen))


if __name__ == "__main__":
    unittest.main(verbosity=2)
